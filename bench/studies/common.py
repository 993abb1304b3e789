"""What every study shares: a YAML with the usual experiment sections plus a `study:` section
checked against the study's own settings dataclass, and a folder-writing helper."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from bench.config import ConfigError, ExperimentConfig, build, parse_experiment
from bench.io import write_csv, write_text  # noqa: F401  (re-exported for the studies)


def load_study(path: Path, settings_type: type, quick: bool = False):
    """(experiment config, study settings). `quick:` overrides apply with --quick."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: study file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ConfigError(f"{path}{f':{mark.line + 1}' if mark else ''}: not valid YAML") from None
    raw = dict(raw)
    study_raw = dict(raw.pop("study", None) or {})
    quick_raw = study_raw.pop("quick", None) or {}
    settings = build(settings_type, study_raw, f"{path}: study")
    if quick:
        settings = build(settings_type, {**study_raw, **quick_raw}, f"{path}: study.quick")
    cfg = parse_experiment(raw, str(path))
    return cfg, settings


def with_changes(cfg: ExperimentConfig, **model_or_data) -> ExperimentConfig:
    """A copy of cfg with model/data fields replaced (e.g. batch_size for a latency sweep)."""
    model = dataclasses.replace(cfg.model, **{k: v for k, v in model_or_data.items()
                                              if hasattr(cfg.model, k)})
    data = dataclasses.replace(cfg.data, **{k: v for k, v in model_or_data.items()
                                            if hasattr(cfg.data, k)})
    return dataclasses.replace(cfg, model=model, data=data)


