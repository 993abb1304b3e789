"""Every study in one go, timed: `make quick` (`python -m bench suite --quick`) runs each at its
small `quick:` setting into results/quick/<study>/, then writes the claims report beside them
with every verdict marked (quick): the whole report in minutes, a new user's first look.

Every config is checked before the first model loads; a rerun replays finished studies from
their prediction logs (each study resumes as it does alone). The seconds of each study, the
machine's load and the total go to <root>/suite.json.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path

from bench.config import CACHE_DIR, DEFAULT_MODEL, ConfigError
from bench.io import write_json

# make all's order (the Makefile's `all`), probes aside: they are not a study
SUITE = ("accuracy", "latency", "cost", "coldstart", "freshness", "scale", "hallucination",
         "consistency", "format", "data-scaling", "injection", "forgetting", "popularity", "lora-params")


# a study whose own `quick:` setting is what its make target runs (make scale) has a smaller
# one for the quick suite here, as an experiments/quick/<study>.yaml that includes its YAML
QUICK_CONFIGS = Path("experiments/quick")


def config_of(name: str, quick: bool) -> Path:
    own = QUICK_CONFIGS / f"{name}.yaml"
    return own if quick and own.exists() else Path(f"experiments/{name}.yaml")


def check(names: list[str], quick: bool, model: str | None) -> None:
    from bench.studies.driver import load_study_config
    from bench.studies.registry import get_study, study_names

    unknown = [n for n in names if n not in study_names()]
    if unknown:
        raise ConfigError(f"--studies: unknown study '{unknown[0]}'; registered: {study_names()}")
    for name in names:   # every config checked before the first model loads
        load_study_config(get_study(name), config_of(name, quick), quick, model)


class Stopwatch:
    """Seconds per study over a sequence of runs, with the machine's load at the start and the
    end: suite.json (bench suite) and profile.json (bench profile) are its record."""

    def __init__(self):
        self.load_start, self.start, self.seconds = os.getloadavg(), time.perf_counter(), {}

    @contextmanager
    def timing(self, name: str):
        t = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - t, 1)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def write(self, path: Path, **head) -> None:
        from bench.executors import current

        write_json({**head, "studies": self.seconds, "total_seconds": round(self.elapsed(), 1),
                    "executor": current(), "cache_dir": str(CACHE_DIR), "cpu_count": os.cpu_count(),
                    "load_average_1_5_15": {"start": [round(x, 2) for x in self.load_start],
                                            "end": [round(x, 2) for x in os.getloadavg()]}}, path)


def run_suite(root: Path, names: list[str] | None = None, quick: bool = False, model: str | None = None,
              probes: bool = True, progress: bool = True) -> Path:
    """Run `names` (default: every study of make all) into root/<study>/, then the claims report
    into root/; returns the report's path."""
    from bench.report.claims_report import build_report
    from bench.studies.driver import run_study

    names = list(names or SUITE)
    check(names, quick, model)
    root = Path(root)
    clock = Stopwatch()
    # the probes (is the pocket model fit to stand in?) train a 1,000-step LoRA probe: a quick
    # suite skips them; they are not claims
    if probes and not quick and (model or DEFAULT_MODEL) == DEFAULT_MODEL:
        with clock.timing("probes"):
            run_probes(root / "probes")
    for name in names:
        with clock.timing(name):
            run_study(name, config_of(name, quick), out=root / name, model=model, quick=quick, progress=progress)
        print(f"suite: {name} in {clock.seconds[name]:.0f} s ({clock.elapsed():.0f} s so far)", flush=True)
    with clock.timing("report"):
        md, _, tally = build_report(root, root)
    clock.write(root / "suite.json", quick=quick, model=model or DEFAULT_MODEL)
    print(f"suite: {tally}; {clock.elapsed():.0f} s in all; report {md}")
    return md


def run_probes(out: Path) -> None:
    """The pocket model's probes (python -m bench probes)."""
    from bench.cli import main

    if main(["probes", "--out", str(out)]) != 0:
        raise RuntimeError(f"probes into {out} failed")
