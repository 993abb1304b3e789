"""Experiment YAML -> typed, validated config. Every mistake is reported before any work starts.

A config has five small sections (data, model, retrieval defaults, seeds, arms); each arm names
its kind explicitly (`arm: rag`) and carries only the settings of that kind, checked against
the kind's own settings dataclass. Unknown keys, wrong types and bad values are errors that
name the file and the key path (`arms[2].lora.rnak`), never silently ignored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path



class ConfigError(ValueError):
    pass


# Where adapters, indexes and embeddings are cached by content hash. Defined here, not in
# bench.runner, so studies can name it without importing the model stack (the report path).
# BENCH_CACHE_DIR moves it (a shared disk, a scratch folder for a test).
CACHE_DIR = Path(os.environ.get("BENCH_CACHE_DIR", ".cache"))
# the model every shipped study runs on unless told otherwise (results/<study>/; any other
# model's results go to results/<model>/<study>/)
DEFAULT_MODEL = "pocket"


SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

# A field added after results were cached carries this metadata: at its default value it is left
# out of every content hash (cell keys, config hashes), so older configs keep their cache keys.
KEY_OMIT_DEFAULT = {"key_omit_default": True}


def key_dict(obj) -> dict:
    """dataclasses.asdict(obj), minus fields marked KEY_OMIT_DEFAULT that hold their default."""
    d = dataclasses.asdict(obj)
    _prune(obj, d)
    return d


def _prune(obj, d: dict) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("key_omit_default") and value == _default(f):
            d.pop(f.name, None)
        elif dataclasses.is_dataclass(value) and isinstance(d.get(f.name), dict):
            _prune(value, d[f.name])
        elif isinstance(value, (tuple, list)) and isinstance(d.get(f.name), (tuple, list)):
            for v, sub in zip(value, d[f.name]):
                if dataclasses.is_dataclass(v) and isinstance(sub, dict):
                    _prune(v, sub)


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


@dataclass(frozen=True)
class WorldData:
    entities: int = 200            # people in the synthetic world
    seed_offset: int = 0           # world seed = run seed + offset (each seed is a fresh world)


@dataclass(frozen=True)
class DataConfig:
    world: WorldData | None = None     # the synthetic world (default) ...
    corpus: str | None = None          # ... or the user's own JSONL files
    qa: str | None = None
    eval_splits: tuple[str, ...] = ("test",)
    max_items: int | None = None       # per split, a deterministic sample (None = all)
    # every paraphrase of a sampled question becomes its own item (id `<id>.p<j>`, meta.group =
    # the question's id), for the consistency experiment; training data is unaffected
    paraphrases_as_items: bool = field(default=False, metadata=KEY_OMIT_DEFAULT)

    def validate(self, where: str) -> None:
        if self.world is None and self.corpus is None:
            raise ConfigError(f"{where}: give either `world:` or both `corpus:` and `qa:`")
        if self.world is not None and (self.corpus or self.qa):
            raise ConfigError(f"{where}: `world:` and `corpus:`/`qa:` exclude each other")
        if self.corpus is not None and not self.qa:
            raise ConfigError(f"{where}.qa: required with `corpus:`")
        for key in ("corpus", "qa"):
            value = getattr(self, key)
            if value is not None and not Path(value).exists():
                raise ConfigError(f"{where}.{key}: file not found: {value}")
        if self.max_items is not None and self.max_items < 1:
            raise ConfigError(f"{where}.max_items: expected >= 1 (or leave it out for all items), got {self.max_items}")
        bad = [s for s in self.eval_splits if s not in ("train", "test")]
        if bad or not self.eval_splits:
            raise ConfigError(f"{where}.eval_splits: expected a non-empty list of 'train'/'test', "
                              f"got {list(self.eval_splits)}")


@dataclass(frozen=True)
class ModelConfig:
    name: str = DEFAULT_MODEL          # 'pocket', a local folder, or a Hugging Face name
    device: str = "auto"
    max_new_tokens: int = 8
    batch_size: int = 64
    trust_remote_code: bool = False
    # 0 = greedy (the default); > 0 samples at this temperature, seeded by the run seed
    temperature: float = field(default=0.0, metadata=KEY_OMIT_DEFAULT)
    # serve a LoRA adapter merged into the base weights (as deployed): same answers up to float
    # rounding, no per-layer adapter overhead at answer time
    merge_adapter: bool = field(default=False, metadata=KEY_OMIT_DEFAULT)
    # torch intra-op threads while this run's arms answer and train; 0 = torch's default
    threads: int = field(default=0, metadata=KEY_OMIT_DEFAULT)
    # instruct models: prompts through the tokenizer's chat template (bench.models.chat):
    # auto (when it has one), on, off; `demos` worked turns (0-4) go before the question
    chat: str = field(default="auto", metadata=KEY_OMIT_DEFAULT)
    demos: int = field(default=4, metadata=KEY_OMIT_DEFAULT)
    # bf16 where the device supports it (a GPU); CPU runs stay float32
    dtype: str = field(default="auto", metadata=KEY_OMIT_DEFAULT)

    def validate(self, where: str) -> None:
        from bench.models.chat import CHAT_MODES, CONTEXT_DEMOS

        if self.chat not in CHAT_MODES:
            raise ConfigError(f"{where}.chat: expected one of {list(CHAT_MODES)}, got {self.chat!r}")
        if not 0 <= self.demos <= len(CONTEXT_DEMOS):
            raise ConfigError(f"{where}.demos: expected 0 to {len(CONTEXT_DEMOS)}, got {self.demos}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"{where}.dtype: expected one of {list(DTYPES)}, got {self.dtype!r}")
        for key in ("max_new_tokens", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key}: expected >= 1, got {getattr(self, key)}")
        device = self.device.split(":")[0]
        if device not in ("auto", "cpu", "cuda", "mps"):
            raise ConfigError(f"{where}.device: expected auto, cpu, cuda[:N] or mps, got {self.device!r}")
        if not 0.0 <= self.temperature <= 5.0:
            raise ConfigError(f"{where}.temperature: expected 0 (greedy) <= x <= 5, got {self.temperature}")
        if self.threads < 0:
            raise ConfigError(f"{where}.threads: expected 0 (torch default) or a positive count, got {self.threads}")


DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class ArmConfig:
    name: str                          # the label in tables and plots
    arm: str                           # the registered kind: closed_book | rag | lora | hybrid
    settings: typing.Any               # the kind's own settings dataclass


@dataclass(frozen=True)
class ExperimentConfig:
    name: str
    claim: str = ""
    description: str = ""
    data: DataConfig = field(default_factory=lambda: DataConfig(world=WorldData()))
    model: ModelConfig = field(default_factory=ModelConfig)
    seeds: tuple[int, ...] = (0, 1, 2)
    arms: tuple[ArmConfig, ...] = ()
    source: str = ""                   # the file it came from (not hashed)

    def validate(self, where: str) -> None:
        # the name can become a results folder (bench run): a slug, never a path
        if not SAFE_NAME.fullmatch(self.name or ""):
            raise ConfigError(f"{where}.name: expected letters, digits, '.', '_' or '-' (starting with a "
                              f"letter or digit), got {self.name!r}")

    def to_json(self) -> dict:
        d = key_dict(self)
        d.pop("source")
        return d

    def hash(self) -> str:
        return content_hash(self.to_json())


def content_hash(obj, n: int = 16) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def build(cls, raw, where: str):
    """A frozen dataclass from a mapping, strictly: unknown keys and wrong types are errors."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key; expected one of {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {key: _coerce(hints[key], value, f"{where}.{key}") for key, value in raw.items()}
    try:
        obj = cls(**kwargs)
    except TypeError as e:   # a required field is missing
        raise ConfigError(f"{where}: {e}") from None
    if hasattr(obj, "validate"):
        obj.validate(where)
    return obj


def _coerce(tp, value, where: str):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
        return value
    return value


def parse_experiment(raw: dict, source: str = "<config>", arms_required: bool = True) -> ExperimentConfig:
    """The experiment sections of a raw mapping (other top-level keys are errors). Each arm
    starts from `arm_defaults[<its kind>]` and overrides what it names."""
    from bench.arms.registry import ARMS, get_arm_class   # arms register their settings types
    from bench.config_files import deep_merge

    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    raw = dict(raw)
    arms_raw = raw.pop("arms", None)
    defaults = raw.pop("arm_defaults", None) or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{source}: arm_defaults: expected a mapping of arm kind -> settings")
    get_arm_class("closed_book")   # registers the built-in kinds
    for kind, value in defaults.items():
        if kind not in ARMS:
            raise ConfigError(f"{source}: arm_defaults.{kind}: unknown arm kind; registered: {sorted(ARMS)}")
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: arm_defaults.{kind}: expected a mapping of settings")
    if arms_raw is None and not arms_required:
        arms_raw = []
    elif not arms_raw or not isinstance(arms_raw, list):
        raise ConfigError(f"{source}: arms: expected a non-empty list of arms")
    arms, labels = [], set()
    for i, entry in enumerate(arms_raw):
        where = f"{source}: arms[{i}]"
        if not isinstance(entry, dict) or "arm" not in entry:
            raise ConfigError(f"{where}: expected a mapping with `arm:` (the arm kind)")
        entry = dict(entry)
        kind = entry.pop("arm")
        try:
            cls = get_arm_class(kind)
        except KeyError as e:
            raise ConfigError(f"{where}.arm: {e.args[0]}") from None
        entry = deep_merge(defaults.get(kind, {}), entry)
        name = entry.pop("name", kind)
        if name in labels:
            raise ConfigError(f"{where}.name: duplicate arm name '{name}'")
        labels.add(name)
        arms.append(ArmConfig(name, kind, build(cls.Settings, entry, where)))
    cfg = build(ExperimentConfig, {**raw, "source": source}, f"{source}: config")
    if not cfg.seeds:
        raise ConfigError(f"{source}: seeds: expected at least one seed")
    if len(set(cfg.seeds)) != len(cfg.seeds):
        raise ConfigError(f"{source}: seeds: duplicates in {list(cfg.seeds)}")
    return dataclasses.replace(cfg, arms=tuple(arms))


def load_experiment(path: str | Path, model: str | None = None) -> ExperimentConfig:
    """An experiment file (no study section): includes merged, the model switched."""
    from bench.config_files import load_config_raw

    raw, _ = load_config_raw(path, model=model)
    return parse_experiment(raw, str(path))


# -- variations of a config (sweeps and the quick patch) -----------------------------------------

def with_changes(cfg: ExperimentConfig, **model_or_data) -> ExperimentConfig:
    """A copy of cfg with model/data fields replaced (e.g. batch_size for a latency sweep)."""
    model = dataclasses.replace(cfg.model, **{k: v for k, v in model_or_data.items() if hasattr(cfg.model, k)})
    data = dataclasses.replace(cfg.data, **{k: v for k, v in model_or_data.items() if hasattr(cfg.data, k)})
    return dataclasses.replace(cfg, model=model, data=data)


def with_lora_steps(arm: ArmConfig, steps: int, name: str | None = None) -> ArmConfig:
    """A copy of an adapted arm that trains for `steps` (everything else unchanged)."""
    settings = dataclasses.replace(arm.settings, lora=dataclasses.replace(arm.settings.lora, steps=steps))
    return dataclasses.replace(arm, name=name or arm.name, settings=settings)
