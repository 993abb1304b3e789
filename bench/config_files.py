"""Study YAML files -> one raw mapping: `include:` bases merged in, the `quick:` patch applied
when asked, the model switched by `--model`. Typed validation happens after, in bench.config.

The dialect, one for every study:

    include: base/pocket-four-arms.yaml   # bases (paths relative to this file), merged under it
    name: popularity
    claim: ...; description: ...
    data / model / seeds                  # the experiment sections (bench.config)
    arm_defaults: {lora: {...}}           # settings every arm of a kind starts from
    arms: [...]                           # each arm: name, arm (kind), its own settings
    study: {...}                          # the study's own settings (its Settings dataclass)
    quick: {seeds, entities, max_items, lora_steps, study}   # the small setting (--quick)

A model with a profile (experiments/models/<model>.yaml, e.g. smollm2-135m) gets it merged over
the study's settings before the quick patch: `all:` for every study, `studies: {<name>: ...}`.

Merging: mappings merge key by key (the including file wins), anything else (lists, scalars)
is replaced whole. `quick:` is checked strictly whether or not --quick is given.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.config import ConfigError, build


def deep_merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_yaml(path: Path) -> dict:
    if not path.exists():
        raise ConfigError(f"{path}: file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return raw


def load_raw(path: Path | str, _seen: tuple = ()) -> dict:
    """The file with its `include:` bases merged in (a base's own includes first)."""
    path = Path(path)
    if path.resolve() in _seen:
        raise ConfigError(f"{path}: include: a file includes itself ({' -> '.join(map(str, _seen))})")
    raw = read_yaml(path)
    includes = raw.pop("include", None) or []
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigError(f"{path}: include: expected a file name or a list of them")
    merged: dict = {}
    for name in includes:
        base = path.parent / name
        if not base.exists():
            raise ConfigError(f"{path}: include: file not found: {base}")
        merged = deep_merge(merged, load_raw(base, (*_seen, path.resolve())))
    return deep_merge(merged, raw)


@dataclass(frozen=True)
class QuickPatch:
    """The small setting every study offers: the same few knobs everywhere, plus the study's own."""
    seeds: tuple[int, ...] | None = None       # replaces `seeds`
    entities: int | None = None                # replaces data.world.entities
    max_items: int | None = None               # replaces data.max_items
    lora_steps: int | None = None              # every adapted arm trains this many steps
    study: dict | None = None                  # merged into `study:`

    def validate(self, where: str) -> None:
        for key in ("entities", "max_items", "lora_steps"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ConfigError(f"{where}.{key}: expected >= 1, got {value}")
        if self.seeds is not None and not self.seeds:
            raise ConfigError(f"{where}.seeds: expected at least one seed")
        if self.study is not None and not isinstance(self.study, dict):
            raise ConfigError(f"{where}.study: expected a mapping of study settings")


def apply_quick(raw: dict, patch: QuickPatch, where: str) -> dict:
    raw = copy.deepcopy(raw)
    if patch.seeds is not None:
        raw["seeds"] = list(patch.seeds)
    if patch.entities is not None:
        world = (raw.get("data") or {}).get("world")
        if not isinstance(world, dict):
            raise ConfigError(f"{where}.entities: the config has no data.world to shrink")
        world["entities"] = patch.entities
    if patch.max_items is not None:
        raw.setdefault("data", {})["max_items"] = patch.max_items
    # lora_steps applies to the parsed arms (bench.config.with_lora_steps), where every
    # adapted arm is known, whether or not its YAML names a `lora:` section
    if patch.study:
        raw["study"] = deep_merge(raw.get("study") or {}, patch.study)
    return raw


def load_config_raw(path: Path | str, quick: bool = False,
                    model: str | None = None) -> tuple[dict, QuickPatch | None]:
    """(raw mapping, the quick patch in force or None): includes merged, the quick patch
    applied with `quick`, the model switched by `model`. Typed validation comes next."""
    path = Path(path)
    raw = load_raw(path)
    patch = build(QuickPatch, raw.pop("quick", None), f"{path}: quick")
    if model is not None:
        raw["model"] = {**(raw.get("model") or {}), "name": model}
    raw = apply_profile(raw, (raw.get("model") or {}).get("name"))
    if quick:
        raw = apply_quick(raw, patch, f"{path}: quick")
    return raw, patch if quick else None


PROFILES = Path(__file__).resolve().parents[1] / "experiments" / "models"


def profile_path(model: str | None) -> Path | None:
    """experiments/models/<model>.yaml: how the studies are sized for a model (a real model
    on two CPU cores cannot run the pocket model's worlds and steps), or None."""
    if not model or "/" in model or model.startswith("."):
        return None
    path = PROFILES / f"{model}.yaml"
    return path if path.is_file() else None


def apply_profile(raw: dict, model: str | None) -> dict:
    """The model's profile merged over the study's settings: `all:` for every study, then the
    section named after the study (`name:`). A study without a synthetic world gets no `world`."""
    path = profile_path(model)
    if path is None:
        return raw
    profile = read_yaml(path)
    unknown = sorted(set(profile) - {"all", "studies"})
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r}; expected all, studies")
    studies = profile.get("studies") or {}
    if not isinstance(studies, dict):
        raise ConfigError(f"{path}: studies: expected a mapping of study name -> settings")
    for section in (profile.get("all") or {}, studies.get(raw.get("name"), {})):
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: expected a mapping of settings, got {section!r}")
        section = copy.deepcopy(section)
        if "world" in (section.get("data") or {}) and not (raw.get("data") or {}).get("world"):
            del section["data"]["world"]   # the user's own files: nothing to size
        raw = deep_merge(raw, section)
    return raw
