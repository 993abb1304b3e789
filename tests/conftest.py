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
