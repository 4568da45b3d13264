"""What a study is to the pipeline: a name, a priority, the artifacts it needs and
provides (typed keys, see :class:`ArtifactKey`), its summary's type, and its plan.

:func:`check_order` checks, before anything runs, that every artifact a study needs is
provided by a study of this pipeline or can be read from an earlier run's summary on
disk, and that no studies need each other's artifacts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, Protocol, TypeAlias, TypeVar

import attrs

from analyses.pipeline.plan import StudyPlan
from analyses.pipeline.records import JsonRecord, RecordError
from analyses.pipeline.store import ResultStore
from analyses.pipeline.tasks import RunContext

T = TypeVar("T")
S = TypeVar("S", bound=JsonRecord)

__all__ = [
    "AnyPlan",
    "AnyStudy",
    "ArtifactKey",
    "ArtifactValues",
    "Artifacts",
    "MissingArtifact",
    "PipelineError",
    "Study",
    "check_order",
]


class PipelineError(RuntimeError):
    """The pipeline cannot go on; the message says why and what to do."""


class MissingArtifact(PipelineError):
    """A study needs an artifact that nothing provides."""


@attrs.frozen
class ArtifactKey(Generic[T]):
    """The name and type of something one study hands to another (a chosen model, say)."""

    name: str
    type: type[T]


class Artifacts:
    """The artifacts available so far, read by typed key."""

    def __init__(self, values: Mapping[str, object] | None = None) -> None:
        self._values: dict[str, object] = dict(values or {})

    def __contains__(self, key: AnyKey) -> bool:
        return key.name in self._values

    def __getitem__(self, key: ArtifactKey[T]) -> T:
        value = self._values[key.name]
        if not isinstance(value, key.type):
            raise TypeError(
                f"artifact {key.name} is a {type(value).__name__}, not a {key.type.__name__}"
            )
        return value

    def add(self, values: Mapping[AnyKey, object]) -> None:
        for key, value in values.items():
            if not isinstance(value, key.type):
                raise TypeError(
                    f"artifact {key.name} must be a {key.type.__name__}, got {type(value).__name__}"
                )
            self._values[key.name] = value

    def names(self) -> list[str]:
        return sorted(self._values)


class Study(Protocol[S]):
    """A study: its name, the artifacts it needs and provides, its summary's type, and
    its priority (when runs of several studies wait for a worker, the study of lower
    priority goes first: the runs on the pipeline's critical path)."""

    @property
    def name(self) -> str: ...

    @property
    def priority(self) -> int: ...

    @property
    def needs(self) -> tuple[AnyKey, ...]: ...

    @property
    def provides(self) -> tuple[AnyKey, ...]: ...

    @property
    def summary_type(self) -> type[S]: ...

    def plan(self, artifacts: Artifacts, ctx: RunContext) -> AnyPlan[S]:
        """Its runs, given the artifacts it needs."""
        ...

    def artifacts(self, summary: S) -> ArtifactValues:
        """What it provides, read from its summary."""
        ...


AnyKey: TypeAlias = "ArtifactKey[Any]"
"""An artifact key of any type (a study's needs and provides mix them)."""
ArtifactValues: TypeAlias = "dict[ArtifactKey[Any], object]"
"""Artifacts by key, as a study provides them (each value checked against its key)."""
AnyPlan: TypeAlias = "StudyPlan[Any, Any, S]"
"""A study's plan as the driver sees it: its tasks and results are the study's own."""
AnyStudy: TypeAlias = "Study[Any]"
"""A study of any summary type (the pipeline runs several)."""


def _load_artifacts(study: AnyStudy, store: ResultStore) -> ArtifactValues:
    summary = store.read_summary(study.name, study.summary_type)
    return study.artifacts(summary)


def check_order(
    selected: Sequence[AnyStudy], available: Sequence[AnyStudy], store: ResultStore
) -> Artifacts:
    """The artifacts the selected studies need from studies outside the selection, read
    from their summaries on disk. MissingArtifact names an artifact that neither a
    selected study provides nor a stored summary holds, or a cycle."""
    provided = {key.name: study.name for study in selected for key in study.provides}
    artifacts = Artifacts()
    for study in selected:
        for key in study.needs:
            if key.name in provided or key in artifacts:
                continue
            owners = [s for s in available if key in s.provides]
            hint = ""
            for owner in owners:
                try:
                    artifacts.add(_load_artifacts(owner, store))
                except FileNotFoundError:
                    hint = (
                        f"; run the {owner.name} study too (drop --only, or add --only "
                        f"{owner.name})"
                    )
                except RecordError as exc:
                    hint = f"; the stored results of {owner.name} cannot be read ({exc})"
            if key not in artifacts:
                raise MissingArtifact(
                    f"the {study.name} study needs the artifact {key.name!r}, which no study of "
                    f"this run provides and {store.out} holds no results for{hint}"
                )
    # a cycle among the selected studies would wait forever: refuse it up front
    pending = {s.name: {k.name for k in s.needs if k.name in provided} for s in selected}
    done: set[str] = set()
    while pending:
        ready = [n for n, needs in pending.items() if all(provided[k] in done for k in needs)]
        if not ready:
            raise MissingArtifact(
                f"the studies {sorted(pending)} need each other's artifacts: a cycle"
            )
        for n in ready:
            done.add(n)
            del pending[n]
    return artifacts
