"""Successive halving: the same decisions as synchronous successive halving, whatever the
order results arrive in, and promotions as soon as they are certain."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyses.studies.search.halving import Rungs, SuccessiveHalving


def synchronous(scores: dict[str, list[float | None]], rungs: Rungs) -> list[set[str]]:
    """The textbook algorithm: rung by rung, keep the best n_{k+1} that did not fail."""
    entrants = [set(scores)]
    sizes = rungs.sizes(len(scores))
    for k in range(len(rungs.epochs) - 1):
        ok = [t for t in entrants[k] if scores[t][k] is not None]
        ranked = sorted(ok, key=lambda t: (scores[t][k], t))
        entrants.append(set(ranked[: sizes[k + 1]]))
    return entrants


def drive(
    sh: SuccessiveHalving, scores: dict[str, list[float | None]], rng: random.Random
) -> list[tuple[str, int]]:
    """Run every handed-out (trial, rung) in a random order, a random number at a time."""
    running: list[tuple[str, int]] = []
    handed: list[tuple[str, int]] = []
    while True:
        new = sh.ready()
        handed += new
        running += new
        if not running:
            break
        rng.shuffle(running)
        for _ in range(rng.randint(1, len(running))):
            trial, rung = running.pop()
            score = scores[trial][rung]
            sh.report(trial, rung, None if score is None else (score, trial))
    return handed


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 40),
    eta=st.integers(2, 4),
    depth=st.integers(1, 3),
    fail=st.floats(0, 0.3),
    seed=st.integers(0, 10_000),
)
def test_decisions_equal_synchronous_halving_in_any_order(
    n: int, eta: int, depth: int, fail: float, seed: int
) -> None:
    rng = random.Random(seed)
    rungs = Rungs(tuple(range(1, depth + 1)), eta)
    names = [f"t{i:02d}" for i in range(n)]
    scores: dict[str, list[float | None]] = {
        t: [
            None if rng.random() < fail else rng.choice([0.1, 0.2, 0.3, rng.random()])
            for _ in range(depth)
        ]
        for t in names
    }
    sh = SuccessiveHalving(names, rungs)
    handed = drive(sh, scores, rng)
    assert sh.done()
    assert all(sh.settled(t) for t in names)
    assert len(handed) == len(set(handed)), "a (trial, rung) was handed out twice"
    expected = synchronous(scores, rungs)
    for k in range(depth):
        assert set(sh.entrants(k)) == expected[k]
        assert {t for t, r in handed if r == k} == expected[k]


def test_the_best_trials_are_promoted_before_the_rung_is_complete() -> None:
    rungs = Rungs((1, 3), 3)
    names = [f"t{i}" for i in range(9)]
    sh = SuccessiveHalving(names, rungs)
    assert [r for _, r in sh.ready()] == [0] * 9
    # the rung keeps 3 of 9; the best report first. After 7 reports t0 is certain (at
    # most the 2 runs still out could beat it), t1 not yet (1 better + 2 pending = 3)
    for i, t in enumerate(names[:7]):
        sh.report(t, 0, (i, t))
    promoted = sh.ready()
    assert promoted == [("t0", 1)], "t0 is certain: at most 2 of the 2 pending could beat it"
    # settled: in the last rung (t0) or stopped (t6: 6 are better); t1 and t2 not yet
    assert sh.settled("t0") and sh.settled("t6")
    assert not sh.settled("t1") and not sh.settled("t2")
    sh.report("t7", 0, (7, "t7"))
    assert sh.ready() == [("t1", 1)]
    sh.report("t8", 0, (8, "t8"))
    assert sh.ready() == [("t2", 1)]
    assert set(sh.stopped(0)) == set(names[3:])
    assert all(sh.settled(t) for t in names)


def test_a_failed_trial_is_never_promoted_and_the_next_rung_shrinks() -> None:
    sh = SuccessiveHalving(["a", "b", "c"], Rungs((1, 2), 3))
    sh.ready()
    sh.report("a", 0, None)
    sh.report("b", 0, None)
    sh.report("c", 0, None)
    assert sh.ready() == []
    assert sh.done()
    assert sh.entrants(1) == ()


def test_bad_reports_and_settings_are_refused() -> None:
    sh = SuccessiveHalving(["a", "b"], Rungs((1, 2), 2))
    sh.ready()
    with pytest.raises(ValueError, match="did not enter rung 1"):
        sh.report("a", 1, (0.0, "a"))
    sh.report("a", 0, (0.0, "a"))
    with pytest.raises(ValueError, match="already reported"):
        sh.report("a", 0, (0.0, "a"))
    with pytest.raises(ValueError, match="must increase"):
        Rungs((3, 1), 3)
    with pytest.raises(ValueError, match="eta"):
        Rungs((1, 3), 1)
    with pytest.raises(ValueError, match="distinct"):
        SuccessiveHalving(["a", "a"], Rungs())
    assert Rungs((1, 3, 10), 3).sizes(48) == (48, 16, 5)
    assert Rungs((1, 3, 10), 3).start(2) == 3
