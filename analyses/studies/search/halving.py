"""Successive halving whose decisions do not depend on the order results arrive in.

Every trial trains to the first rung (a number of epochs); about the best ``1/eta`` of
a rung's trials are promoted to the next rung, where they resume from their checkpoint;
the others stop. Asynchronous successive halving (ASHA, as in Optuna and Ray Tune)
promotes a trial as soon as it is in the top ``1/eta`` of the results seen so far, so
its choices depend on which runs happen to finish first. Here a trial is promoted as
soon as it is *certain* to be in the top ``1/eta`` of its whole rung, and stopped as soon
as it is certain not to be: a rung's best trials move on while its slower runs are
still training, and the outcome is the same as synchronous successive halving's on
every executor, after any interruption, bit for bit.

Trial t at rung k is in the final top m_k exactly when fewer than m_k trials of the
rung rank above it. Of those, ``better`` have finished; at most ``pending`` (the
rung's entrants still running or yet to be promoted into it) could still. t is promoted
once ``better + pending < m_k`` and stopped once ``better >= m_k``. A failed trial
(diverged, or its run raised) is never promoted and ranks below every other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import attrs

from fmlp.types import is_int

RankKey = tuple[float | str, ...]
"""Lower is better; keys must be distinct (end them with the trial's name)."""

__all__ = ["Rungs", "SuccessiveHalving"]


@attrs.frozen
class Rungs:
    """Rung ``k`` ends after ``epochs[k]`` epochs; about ``1/eta`` of a rung's trials
    move on to the next."""

    epochs: tuple[int, ...] = (1, 3, 10)
    eta: int = 3

    def __attrs_post_init__(self) -> None:
        if not self.epochs or any(not is_int(e) or e <= 0 for e in self.epochs):
            raise ValueError(f"rung epochs must be positive integers, got {self.epochs}")
        if any(b <= a for a, b in zip(self.epochs, self.epochs[1:], strict=False)):
            raise ValueError(f"rung epochs must increase, got {self.epochs}")
        if not is_int(self.eta) or self.eta < 2:
            raise ValueError(f"eta must be an integer >= 2, got {self.eta}")

    def sizes(self, n_trials: int) -> tuple[int, ...]:
        """How many trials each rung holds: n, n // eta, n // eta^2, ... (at least 1)."""
        out = [n_trials]
        for _ in self.epochs[1:]:
            out.append(max(1, out[-1] // self.eta))
        return tuple(out)

    def start(self, rung: int) -> int:
        """The epoch rung ``rung`` resumes from (0 for the first)."""
        return 0 if rung == 0 else self.epochs[rung - 1]


@attrs.define
class _Rung:
    size: int  # how many trials this rung holds when none fails (its promotion target)
    finished: dict[str, RankKey] = attrs.field(factory=dict)
    failed: set[str] = attrs.field(factory=set)
    promoted: list[str] = attrs.field(factory=list)
    stopped: list[str] = attrs.field(factory=list)
    entrants: list[str] = attrs.field(factory=list)


class SuccessiveHalving:
    """The decisions of one search: which trial runs which rung next.

    ``ready()`` hands out each (trial, rung) once it may run; ``report()`` takes the
    trial's rank key at the end of that rung (``None``: the run failed).
    """

    def __init__(self, trials: Sequence[str], rungs: Rungs) -> None:
        if not trials:
            raise ValueError("a search needs at least one trial")
        if len(set(trials)) != len(trials):
            raise ValueError("trial names must be distinct")
        self.trials: Final = tuple(trials)
        self.rungs: Final = rungs
        sizes = rungs.sizes(len(trials))
        # rung k's promotion target is the next rung's size
        self._rungs = [_Rung(size=s) for s in sizes]
        self._rungs[0].entrants = list(trials)
        self._queue: list[tuple[str, int]] = [(t, 0) for t in trials]

    @property
    def last(self) -> int:
        return len(self._rungs) - 1

    def ready(self) -> list[tuple[str, int]]:
        """The (trial, rung) pairs that became runnable since the last call."""
        out, self._queue = self._queue, []
        return out

    def report(self, trial: str, rung: int, key: RankKey | None) -> None:
        """Trial ``trial`` finished rung ``rung`` with rank key ``key`` (None: failed)."""
        r = self._rungs[rung]
        if trial not in r.entrants:
            raise ValueError(f"trial {trial} did not enter rung {rung}")
        if trial in r.finished or trial in r.failed:
            raise ValueError(f"trial {trial} already reported rung {rung}")
        if key is None:
            r.failed.add(trial)
        else:
            r.finished[trial] = key
        self._decide()

    def _decide(self) -> None:
        for k in range(self.last):
            r, nxt = self._rungs[k], self._rungs[k + 1]
            target = nxt.size
            undecided_entrants = self._pending_entrants(k)
            decided = set(r.promoted) | set(r.stopped)
            for t in sorted(r.failed - decided):
                r.stopped.append(t)
            for t, key in sorted(r.finished.items(), key=lambda kv: kv[1]):
                if t in decided:
                    continue
                better = sum(1 for other in r.finished.values() if other < key)
                pending = undecided_entrants - len(r.finished) - len(r.failed)
                if better + pending < target:
                    r.promoted.append(t)
                    nxt.entrants.append(t)
                    self._queue.append((t, k + 1))
                elif better >= target:
                    r.stopped.append(t)

    def _pending_entrants(self, k: int) -> int:
        """How many trials rung ``k`` will hold in all: known once the rung before it
        has decided every trial, else bounded by that rung's promotion target."""
        if k == 0:
            return len(self.trials)
        before = self._rungs[k - 1]
        if len(before.promoted) + len(before.stopped) == len(before.entrants) and self._complete(
            k - 1
        ):
            return len(before.promoted)
        return self._rungs[k].size

    def _complete(self, k: int) -> bool:
        """Every trial that will ever enter rung ``k`` has entered it."""
        if k == 0:
            return True
        before = self._rungs[k - 1]
        return self._complete(k - 1) and len(before.promoted) + len(before.stopped) == len(
            before.entrants
        )

    def done(self) -> bool:
        """Every trial has stopped or finished the last rung."""
        last = self._rungs[-1]
        return self._complete(self.last) and len(last.finished) + len(last.failed) == len(
            last.entrants
        )

    def promoted(self, rung: int) -> tuple[str, ...]:
        return tuple(self._rungs[rung].promoted)

    def stopped(self, rung: int) -> tuple[str, ...]:
        return tuple(self._rungs[rung].stopped)

    def entrants(self, rung: int) -> tuple[str, ...]:
        return tuple(self._rungs[rung].entrants)

    def settled(self, trial: str) -> bool:
        """Whether ``trial``'s fate is decided: stopped at some rung (failures included),
        or entered into the last rung. A settled trial's rungs never change again."""
        return trial in self._rungs[-1].entrants or any(
            trial in r.stopped for r in self._rungs[:-1]
        )

    def last_rung(self, trial: str) -> int:
        """The highest rung ``trial`` entered."""
        return max(k for k, r in enumerate(self._rungs) if trial in r.entrants)
