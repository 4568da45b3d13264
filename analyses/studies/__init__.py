"""The studies and their settings: the full study suite, or the quick smoke run.

Each study is a package of its own (``init``, ``search``, ``gradcheck``, ``cnn``); none
imports another. What passes between them is a declared artifact (``artifacts``), and
this module only lists them for the pipeline.
"""

from __future__ import annotations

from typing import Any

import attrs

from analyses.common import DataSpec, quick_data
from analyses.pipeline.driver import Study
from analyses.studies.cnn import CnnOptions, CnnStudy
from analyses.studies.gradcheck import GradcheckOptions, GradcheckStudy
from analyses.studies.init import InitOptions, InitStudy
from analyses.studies.search import SearchOptions, SearchStudy


@attrs.frozen
class SuiteOptions:
    """The settings of every study: the full suite, or the quick one (the same studies on
    600 / 200 samples for an epoch or two)."""

    data: DataSpec
    init: InitOptions
    search: SearchOptions
    gradcheck: GradcheckOptions
    cnn: CnnOptions

    @classmethod
    def full(cls, dataset: str = "mnist") -> SuiteOptions:
        return cls(
            data=DataSpec(dataset),
            init=InitOptions(),
            search=SearchOptions.full(),
            gradcheck=GradcheckOptions.full(),
            cnn=CnnOptions(),
        )

    @classmethod
    def quick(cls, dataset: str = "mnist") -> SuiteOptions:
        return cls(
            data=quick_data(dataset),
            init=InitOptions.quick(),
            search=SearchOptions.quick(),
            gradcheck=GradcheckOptions.quick(),
            cnn=CnnOptions.quick(),
        )


def suite(options: SuiteOptions) -> list[Study[Any]]:
    """Every study, configured."""
    return [
        InitStudy(options.data, options.init),
        SearchStudy(options.data, options.search),
        GradcheckStudy(options.data, options.gradcheck),
        CnnStudy(options.data, options.cnn),
    ]


STUDY_NAMES: tuple[str, ...] = ("init", "search", "gradcheck", "cnn")
