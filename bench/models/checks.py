"""What can be checked about a model before it loads, so a run refuses in a second, with a
one-line error, instead of failing after minutes of work: the folder has safetensors weights,
a model that ships its own code is only run with `trust_remote_code`, the device exists, and
every LoRA target module names layers the model has (read from the weights' index, not loaded).
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.config import ConfigError, ExperimentConfig
from bench.models.resolve import ModelNotFound, resolve_model


def check_device(device: str, where: str) -> None:
    kind = device.split(":")[0]
    if kind not in ("cuda", "mps"):
        return
    import torch

    available = torch.cuda.is_available() if kind == "cuda" else torch.backends.mps.is_available()
    if not available:
        raise ConfigError(f"{where}.device: {device} asked for, but this machine has none "
                          f"(use auto or cpu)")


def weight_modules(folder: Path) -> set[str] | None:
    """The names of the model's weight-bearing layers (`q_proj`, `c_attn`, ...) from its
    safetensors headers; None when the folder has no safetensors file."""
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    names: set[str] = set()
    for path in files:
        with safe_open(str(path), framework="numpy") as f:
            names.update(k.rsplit(".", 2)[-2] for k in f.keys() if k.count(".") >= 1)
    return names


def check_model(cfg: ExperimentConfig) -> None:
    """Raise ConfigError / ModelNotFound (both exit 2 from the CLI) for a model that would fail."""
    where = f"{cfg.source}: model"
    check_device(cfg.model.device, where)
    folder = Path(resolve_model(cfg.model.name))
    if not folder.is_dir():
        return   # a hub name, online: transformers checks it as it downloads
    config = json.loads((folder / "config.json").read_text())
    if config.get("auto_map") and not cfg.model.trust_remote_code:
        raise ConfigError(f"{folder}/config.json: the model runs code of its own (auto_map); set "
                          f"{where}.trust_remote_code: true if you trust that code")
    from bench.models.chat import template_in_folder

    if cfg.model.chat == "on" and not template_in_folder(folder):
        raise ConfigError(f"{where}.chat: on, but {cfg.model.name}'s tokenizer has no chat template "
                          f"(use auto or off)")
    modules = weight_modules(folder)
    if modules is None:
        raise ModelNotFound(f"{folder}: no *.safetensors weights (only safetensors are loaded; "
                            f"save the model with save_pretrained(..., safe_serialization=True))")
    for i, arm in enumerate(cfg.arms):
        lora = getattr(arm.settings, "lora", None)
        missing = [t for t in (lora.target_modules if lora else ()) if t not in modules]
        if missing:
            raise ConfigError(f"{cfg.source}: arms[{i}].lora.target_modules: {missing} match no layer of "
                              f"{cfg.model.name}; its layers include {sorted(modules)[:12]}")
