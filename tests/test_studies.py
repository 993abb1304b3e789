"""The study arithmetic that does not need a model: prices, break-even, config sections, the
latency passes and the cost repricing from saved inputs."""

import math

import pytest

from bench.config import ConfigError
from bench.studies.cost import prices as cost
from bench.studies.driver import load_study_config
from bench.studies.registry import get_study


def load_study(path, name="cost", quick=False):
    return load_study_config(get_study(name), path, quick)


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


def test_training_is_priced_by_the_share_of_the_machine_it_held():
    """An adapter trained by a Ray task on one of two cores (share 0.5) took ~1.4x the seconds of
    a lone two-thread run while the other core trained another; its machine time is half its
    seconds. Adapters without a recorded share (older caches, index-only arms) count whole."""
    import pandas as pd

    table = pd.DataFrame([{"arm": a, "seed": 0, "t_total": 0.1, "prompt_tokens": 10, "completion_tokens": 2}
                          for a in ("rag", "lora", "hybrid")])
    cells = pd.DataFrame([
        {"arm": "rag", "seed": 0, "index_build_seconds": 4.0, "index_disk_bytes": 1e6},
        {"arm": "lora", "seed": 0, "train_seconds": 300.0, "adapter_disk_bytes": 2e6, "train_machine_share": 0.5},
        {"arm": "hybrid", "seed": 0, "train_seconds": 300.0, "adapter_disk_bytes": 2e6, "index_build_seconds": 4.0}])
    m = cost.measured(table, cells).set_index("arm")
    assert m.loc["lora", "train_seconds"] == 150.0 and m.loc["hybrid", "train_seconds"] == 300.0
    assert m.loc["rag", "train_seconds"] == 0.0
    p = cost.Prices(compute_per_hour=3.6)
    priced = cost.priced(m.reset_index(), {"s": p}).set_index("arm")["one_off_usd"]
    assert priced["lora"] == pytest.approx(0.15) and priced["hybrid"] == pytest.approx(0.304)


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
        load_study(path)
    path.write_text("name: c\nstudy: {max_itmes: 3, scenarios: {x: {}}}\narms: [{arm: rag}]\n")
    with pytest.raises(ConfigError, match=r"study.max_itmes: unknown key"):
        load_study(path)


@pytest.mark.parametrize("name", ["latency", "cost", "coldstart"])
def test_shipped_study_configs_load_in_both_settings(name):
    cfg, full = load_study(f"experiments/{name}.yaml", name)
    quick_cfg, quick = load_study(f"experiments/{name}.yaml", name, quick=True)
    assert cfg.name == name and (cfg, full) != (quick_cfg, quick)
    assert cfg.data.max_items > quick_cfg.data.max_items          # the quick patch caps the items


def test_latency_runs_each_batch_size_then_the_merged_adapters():
    from bench.studies.latency.measure import passes

    cfg, s = load_study("experiments/latency.yaml", "latency")
    adapted = [a for a in cfg.arms if a.arm in ("lora", "hybrid")]
    runs = passes(cfg, s, adapted)
    assert [(folder, suffix, bs) for _, folder, suffix, bs in runs] == [
        ("bs1", "", 1), ("bs1-merged", "_merged", 1), ("bs64", "", 64), ("bs64-merged", "_merged", 64)]
    assert [c.model.batch_size for c, *_ in runs] == [1, 1, 64, 64]
    assert [c.model.merge_adapter for c, *_ in runs] == [False, True, False, True]
    assert [a.name for a in runs[1][0].arms] == ["lora", "hybrid"] and runs[0][0].arms == cfg.arms
    assert {c.data.max_items for c, *_ in runs} == {200}
    assert [folder for _, folder, _, _ in passes(cfg, type(s)(batch_sizes=(1,), serve_merged=False), adapted)] \
        == ["bs1"]


def test_cost_reprices_saved_inputs_and_keeps_older_priced_tables(tmp_path):
    import pandas as pd

    from bench.studies.cost import read

    study = get_study("cost")
    settings = study.Settings(scenarios={"cpu": {"compute_per_hour": 3.6}})
    run = type("Run", (), {"settings": settings})
    with pytest.raises(ConfigError, match=r"inputs.csv: no saved table"):
        study.derive(tmp_path, run)
    for name in (read.SUMMARY_CSV, read.BREAK_EVEN_CSV):
        (tmp_path / name).write_text("saved\n")
    assert study.derive(tmp_path, run) == {}              # results from before inputs.csv: kept as saved
    pd.DataFrame([{"arm": arm, "seed": seed, "t_total": t, "prompt_tokens": 10,
                   "completion_tokens": 2, "train_seconds": train, "index_build_seconds": index,
                   "stored_bytes": 0.0}
                  for seed in (0, 1) for arm, t, train, index in (("rag", 0.5, 0, 10), ("lora", 0.25, 100, 0))]
                 ).to_csv(tmp_path / read.INPUTS_CSV, index=False)
    tables = study.derive(tmp_path, run)
    summary = tables[read.SUMMARY_CSV].set_index(["arm", "metric"])["mean"]
    assert summary[("rag", "cpu:one_off_usd")] == pytest.approx(0.01)           # 10 s at $3.6/h
    assert summary[("lora", "cpu:per_1k_queries_usd")] == pytest.approx(0.25)   # 1000 x 0.25 s at $3.6/h
    be = tables[read.BREAK_EVEN_CSV].iloc[0]
    assert (be["arm_a"], be["arm_b"]) == ("rag", "lora") and be["break_even_queries"] == pytest.approx(360)
    for name, df in tables.items():
        df.to_csv(tmp_path / name, index=False)
    (tmp_path / "manifest.json").write_text('{"config": {"experiment": {"arms": [{"name": "rag", "arm": "rag"}, '
                                            '{"name": "lora", "arm": "lora"}]}}}')
    assert [(c.id, c.verdict) for c in read.claims(tmp_path)] == [("cost.cpu", "supported")]
    run.cfg = type("Cfg", (), {"claim": "c", "description": "d"})
    assert "| rag | 0.0 | 10.0 | 0.00 | 0.5000 | 10.0 | 2.0 |" in study.report(tmp_path, run)
