"""The one driver every study runs through (HELM's runner: one path for every run spec):

    YAML -> validated config and settings (before any model loads) -> the study's measuring half
    (jobs through the executor) -> base tables -> derived tables -> plots, claims, report.md,
    manifest.json

`--report-only` skips the measuring half: the derived tables, plots and report are rewritten
from the saved base tables, and the manifest (what ran, when, how long) is kept as it was.
Results for the default model go to results/<study>/, for any other to results/<model>/<study>/.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.config import (CACHE_DIR, DEFAULT_MODEL, SAFE_NAME, ConfigError, ExperimentConfig, build,
                          parse_experiment, with_lora_steps)
from bench.config_files import load_config_raw
from bench.io import write_csv, write_text
from bench.locks import folder_lock
from bench.studies.registry import Study, get_study, settings_dict

RESULTS = Path("results")


@dataclass
class StudyRun:
    """What the two halves of a study see: the validated config, where to write, the flags."""
    study: Study
    cfg: ExperimentConfig
    settings: object
    config: Path
    out: Path
    quick: bool = False
    cache_dir: Path = CACHE_DIR
    progress: bool = True
    timings: dict = field(default_factory=dict)      # seconds, filled by measure (or the manifest)
    extra: dict = field(default_factory=dict)        # more for the manifest, filled by measure
    invocation: object = None                        # this run's line in the ledger (ledger.py)


def model_slug(name: str) -> str:
    """A results-folder name for a model: a local folder's own name, a hub name with '/' -> '--'."""
    path = Path(name)
    if path.is_dir():
        return path.resolve().name
    return name.strip("/").replace("/", "--")


def results_folder(folder: str, model: str, root: Path | None = None) -> Path:
    """results/<folder> for the default model, results/<model>/<folder> for any other."""
    root = RESULTS if root is None else root
    return root / folder if model == DEFAULT_MODEL else root / model_slug(model) / folder


def load_study_config(study: Study, config: Path, quick: bool = False, model: str | None = None):
    """(experiment config, study settings), every key checked; nothing of the model stack loads."""
    raw, patch = load_config_raw(config, quick, model)
    settings = build(study.Settings, raw.pop("study", None), f"{config}: study")
    cfg = parse_experiment(raw, str(config), arms_required=study.arms_required)
    if patch is not None and patch.lora_steps is not None:   # every adapted arm, named in the YAML or not
        cfg = dataclasses.replace(cfg, arms=tuple(with_lora_steps(a, patch.lora_steps) if hasattr(a.settings, "lora")
                                                  else a for a in cfg.arms))
    study.check(cfg, settings, str(config))
    return cfg, settings


def prepare(name: str, config: Path | str | None = None, out: Path | str | None = None,
            model: str | None = None, quick: bool = False, cache_dir: Path = CACHE_DIR,
            progress: bool = True, folder: str | None = None) -> StudyRun:
    study = get_study(name)
    config = Path(config or f"experiments/{name}.yaml")
    cfg, settings = load_study_config(study, config, quick, model)
    if folder is not None and not SAFE_NAME.fullmatch(folder):
        raise ConfigError(f"--folder: expected a folder name of letters, digits, '.', '_' or '-', got {folder!r}")
    out = Path(out) if out else results_folder(folder or name, cfg.model.name)
    return StudyRun(study, cfg, settings, config, out, quick, Path(cache_dir), progress)


def write_tables(tables: dict, folder: Path, exact: bool) -> None:
    for name, df in tables.items():
        if name.endswith(".parquet"):
            from bench.io import atomic_write
            atomic_write(folder / name, lambda p, df=df: df.to_parquet(p, index=False))
        else:   # base tables keep every digit, so tables derived from them match on a rerun
            write_csv(df, folder / name, float_format=None if exact else "%.6g")


def measure(run: StudyRun) -> None:
    """The measuring half: base tables into run.out, timings into run.timings."""
    from bench.executors import timing_here
    from bench.studies.ledger import Invocation

    start = time.perf_counter()
    run.out.mkdir(parents=True, exist_ok=True)
    with Invocation(run.out) as invocation, timing_here(run.study.timed):
        module = importlib.import_module(run.study.measure)
        tables = module.measure(run)
        write_tables(tables, run.out, exact=True)
    total = round(time.perf_counter() - start, 1)
    run.timings = {"total": total, **run.timings}
    if invocation.earlier:   # resumed: this run's clock misses the work it reused
        run.timings["earlier_unfinished_runs"] = invocation.earlier
        run.timings["total_with_earlier_runs"] = round(total + sum(r["seconds"] for r in invocation.earlier), 1)
    run.invocation = invocation


def read(run: StudyRun) -> Path:
    """The reading half: derived tables, plots, claims and report.md from the saved tables."""
    write_tables(run.study.derive(run.out, run), run.out, exact=False)
    run.study.redraw(run.out)
    return write_text(run.study.report(run.out, run), run.out / "report.md")


def write_run_manifest(run: StudyRun, with_verdicts: bool = True) -> None:
    from bench.report.manifest import write_manifest

    verdicts = {c.id: c.verdict for c in run.study.claims(run.out)} if with_verdicts else {}
    write_manifest(run.out / "manifest.json", run.cfg.name,
                   {"experiment": run.cfg.to_json(), "study": settings_dict(run.settings)},
                   str(run.config), run.timings,
                   {"study": run.study.name, "quick": run.quick, "model": run.cfg.model.name,
                    "verdicts": verdicts, **run.extra})


def run_study(name: str, config=None, out=None, model: str | None = None, quick: bool = False,
              report_only: bool = False, cache_dir: Path = CACHE_DIR, progress: bool = True,
              folder: str | None = None) -> Path:
    """Run (or, with report_only, re-read) one study; returns its report.md."""
    from bench.report.claims import read_manifest

    if report_only:   # the saved results say whether they were a quick run
        study = get_study(name)
        probe = Path(out) if out else results_folder(folder or name, model or _yaml_model(study, config))
        quick = quick or bool(read_manifest(probe).get("quick", False))
    run = prepare(name, config, out, model, quick, cache_dir, progress, folder)
    if report_only:
        missing = [t for t in run.study.base_tables if not (run.out / t).exists()]
        if missing:
            raise ConfigError(f"{run.out}/{missing[0]}: no saved table; run without --report-only first")
    else:
        from bench.models.checks import check_model

        check_model(run.cfg)   # weights, remote code, device, LoRA targets: before anything is written
        if run.cfg.data.corpus:   # the user's files: every line checked (file:line errors), the
            from bench.runner import preflight   # evaluated split and each k, all up front

            preflight(run.cfg)
    with folder_lock(run.out):   # a second run on this folder refuses, naming this one's pid
        if report_only:
            run.timings = read_manifest(run.out).get("timings_seconds") or {}
            return read(run)
        measure(run)
        write_run_manifest(run, with_verdicts=False)   # the reading half reads this run's manifest
        path = read(run)
        write_run_manifest(run)
        run.invocation.clear()
        return path


def _yaml_model(study: Study, config) -> str:
    raw, _ = load_config_raw(Path(config or f"experiments/{study.name}.yaml"))
    return (raw.get("model") or {}).get("name", DEFAULT_MODEL)
