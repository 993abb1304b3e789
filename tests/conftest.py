import os

import pytest

os.environ.setdefault("BENCH_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def micro_pocket(tmp_path_factory):
    """A pocket model built by the real recipe code, scaled down to seconds."""
    from bench.pocket.recipe import micro_recipe
    from bench.pocket.train import build_pocket

    out = tmp_path_factory.mktemp("pocket") / "micro"
    summary = build_pocket(micro_recipe(), out, progress=False)
    return out, summary


@pytest.fixture(scope="session")
def four_arms():
    """experiments/base/four-arms.yaml as an experiment: today's recipe, the arms most studies
    include. accuracy.yaml's lora_plain trains the same adapter (tests/test_injection.py checks)."""
    from bench.config import parse_experiment
    from bench.config_files import load_config_raw

    raw, _ = load_config_raw("experiments/base/four-arms.yaml")
    return parse_experiment({**raw, "name": "four-arms"}, "experiments/base/four-arms.yaml")
