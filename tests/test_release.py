"""bench.models.release: a closed arm's models are freed at once, without the full garbage
collection that used to cost ~0.3 s a close (a quarter of `make quick`)."""

import gc
import weakref

import pytest

from bench.models.generator import Generator
from bench.models.release import release
from bench.retrieval.embedder import Embedder
from tests.test_models import save_tiny


@pytest.fixture
def collections(monkeypatch):
    """Counts full garbage collections while the test runs."""
    calls = []
    real = gc.collect
    monkeypatch.setattr(gc, "collect", lambda *a: calls.append(a) or real(*a))
    return calls


def _freed_on_close(owner) -> bool:
    ref = weakref.ref(owner.model)
    owner.close()
    return owner.model is None and ref() is None


def test_a_causal_lm_and_its_lora_wrapper_are_freed_by_reference_counting(tmp_path, collections):
    from peft import LoraConfig, get_peft_model

    gen = Generator.load(str(save_tiny(tmp_path / "tiny")), max_new_tokens=3)
    assert gen.generate(["Tavo"])
    assert _freed_on_close(gen) and collections == []
    gen = Generator.load(str(tmp_path / "tiny"), max_new_tokens=3)
    gen.model = get_peft_model(gen.model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    assert gen.generate(["Tavo"])
    assert _freed_on_close(gen) and collections == []


def test_minilm_is_freed_once_its_model_card_lets_go_of_it(collections):
    emb = Embedder.load()
    assert emb.encode(["Tavo Selin plays the harp."]).shape == (1, emb.dimension)
    card = emb.model.model_card_data
    assert card.model is emb.model   # the cycle release() cuts: without the cut it needs the collector
    assert _freed_on_close(emb) and collections == []
    assert card.model is None
    with pytest.raises(RuntimeError, match="closed"):
        emb.encode(["again"])


class _Cyclic:
    def __init__(self):
        self.me = self


class _Holder:
    def __init__(self, model):
        self.model = model


def test_a_model_held_by_a_cycle_it_does_not_know_is_still_collected(collections):
    holder = _Holder(_Cyclic())
    ref = weakref.ref(holder.model)
    assert release(holder) is True and len(collections) == 1
    assert holder.model is None and ref() is None
    assert release(holder) is False and len(collections) == 1   # nothing held: nothing to do
