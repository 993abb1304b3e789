"""The study arithmetic that does not need a model: prices, break-even, config sections."""

import math

import pytest

from bench.config import ConfigError
from bench.studies import cost
from bench.studies.common import load_study


def test_price_model_matches_a_hand_computation():
    p = cost.Prices(compute_per_hour=3.6, per_1m_prompt_tokens=2.0, per_1m_completion_tokens=10.0,
                    storage_per_gb_month=0.5, months=2)
    # (100 s train + 20 s index) at $3.6/h = $0.12; 2 GB stored for 2 months at $0.5 = $2
    assert cost.one_off_cost(p, 100, 20, 2e9) == pytest.approx(0.12 + 2.0)
    # 0.5 s at $3.6/h = $0.0005; 1000 prompt tokens = $0.002; 10 completion tokens = $0.0001
    assert cost.per_query_cost(p, 0.5, 1000, 10) == pytest.approx(0.0005 + 0.002 + 0.0001)


def test_break_even_is_where_the_total_cost_lines_cross():
    # a: $10 up front, $0.001 per query; b: $0 up front, $0.003 per query -> equal after 5,000
    q = cost.break_even(10.0, 0.001, 0.0, 0.003)
    assert q == pytest.approx(5000)
    assert 10.0 + q * 0.001 == pytest.approx(0.0 + q * 0.003)
    assert math.isnan(cost.break_even(10.0, 0.003, 0.0, 0.001))   # a dearer both ways: never
    assert math.isnan(cost.break_even(1.0, 0.002, 2.0, 0.002))    # parallel lines


def test_break_even_table_pairs_every_arm():
    import pandas as pd

    costs = pd.DataFrame([
        {"scenario": "s", "arm": "rag", "seed": 0, "one_off_usd": 0.0, "per_query_usd": 0.003},
        {"scenario": "s", "arm": "lora", "seed": 0, "one_off_usd": 10.0, "per_query_usd": 0.001},
        {"scenario": "s", "arm": "hybrid", "seed": 0, "one_off_usd": 10.0, "per_query_usd": 0.004}])
    be = cost.break_even_table(costs).set_index(["arm_a", "arm_b"])["break_even_queries"]
    assert be[("rag", "lora")] == pytest.approx(5000)
    assert math.isnan(be[("lora", "hybrid")])          # hybrid never gets cheaper than lora


def test_study_sections_are_validated_with_their_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: c\nstudy:\n  scenarios: {x: {compute_per_hour: -1}}\n"
                    "data: {world: {entities: 10}}\narms: [{arm: rag}]\n")
    with pytest.raises(ConfigError, match=r"study.scenarios.x.compute_per_hour: expected >= 0"):
        load_study(path, cost.Settings)
    path.write_text("name: c\nstudy: {max_itmes: 3, scenarios: {x: {}}}\narms: [{arm: rag}]\n")
    with pytest.raises(ConfigError, match=r"study.max_itmes: unknown key"):
        load_study(path, cost.Settings)


@pytest.mark.parametrize("name", ["latency", "cost", "coldstart"])
def test_shipped_study_configs_load_in_both_settings(name):
    from bench.studies import get_legacy

    module = get_legacy(name)
    cfg, full = load_study(f"experiments/{name}.yaml", module.Settings)
    _, quick = load_study(f"experiments/{name}.yaml", module.Settings, quick=True)
    assert cfg.name == name and full != quick
