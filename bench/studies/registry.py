"""Studies by name, as in lm-evaluation-harness's registry: `@register_study` on a class that
declares the study's settings, the claims it tests, where its measuring half lives, and its
reading half (derived tables, claims, plots, report) as methods over saved tables.

Registration sits in the study package's `__init__`, which imports no model code: the CLI, the
claims report and the Makefile check all read this registry, and only the driver imports a
study's measuring module (`measure`), when it runs it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pandas as pd

STUDIES: dict[str, "Study"] = {}


@dataclass(frozen=True)
class NoSettings:
    """For a study whose YAML needs no `study:` section."""


class Study:
    name: ClassVar[str]
    Settings: ClassVar[type] = NoSettings
    # (topic, the claim as the articles state it): one row each in the claims report, in order
    topics: ClassVar[tuple[tuple[str, str], ...]] = ()
    # module with `measure(run) -> dict[file name, DataFrame]`: the tables that need a model
    measure: ClassVar[str]
    # files `measure` writes that the reading half needs (checked before --report-only)
    base_tables: ClassVar[tuple[str, ...]] = ()
    arms_required: ClassVar[bool] = True
    # other results folders of the same study, most telling first (`make scale-100k`)
    folders: ClassVar[tuple[str, ...]] = ()
    # one-line description (the Makefile help and README list it)
    summary: ClassVar[str] = ""
    # where its claims sit in the claims report (DESIGN.md's order of the claims); ties by name
    order: ClassVar[int] = 1000
    # measures wall time (latency, cost, cold start): its jobs run on the local executor unless
    # --executor says otherwise (bench.executors.timing_here)
    timed: ClassVar[bool] = False

    # -- checks before anything runs ------------------------------------------------------------
    def check(self, cfg, settings, source: str) -> None:
        """Cross-checks of the config and settings (raise ConfigError); no model may load here."""

    # -- the reading half: saved tables only ------------------------------------------------------
    def derive(self, folder: Path, run) -> dict[str, pd.DataFrame]:
        """Tables computed from the base tables (summaries, intervals); rewritten by --report-only."""
        return {}

    def claims(self, folder: Path) -> list:
        return []

    def redraw(self, folder: Path) -> list[Path]:
        return []

    def report(self, folder: Path, run) -> str:
        """report.md, from the saved tables, the run's config and the manifest's timings."""
        raise NotImplementedError


def register_study(name: str):
    def decorate(cls):
        if name in STUDIES:
            raise ValueError(f"study '{name}' is registered twice")
        cls.name = name
        STUDIES[name] = cls()
        return cls
    return decorate


def _load_builtin() -> None:
    import bench.studies  # noqa: F401  (the built-in studies register on import)


def get_study(name: str) -> Study:
    _load_builtin()
    if name not in STUDIES:
        raise KeyError(f"unknown study '{name}'; registered: {list(STUDIES)}")
    return STUDIES[name]


def study_names() -> list[str]:
    """Every registered study, in claims-report order."""
    _load_builtin()
    return sorted(STUDIES, key=lambda name: (STUDIES[name].order, name))


def settings_dict(settings) -> dict:
    return dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else {}
