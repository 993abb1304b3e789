"""The claims report and the verdict rules behind it, on hand-made tables (no model)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from bench.studies.accuracy import read as accuracy
from bench.report.claims import (CONTRADICTED, INCONCLUSIVE, NOT_RUN, SUPPORTED, Claim, all_of,
                                 interval_verdict, range_verdict)
from bench.report.claims_report import Section, ordered, tally, topics
from bench.report.tables import summarize
from bench.studies.freshness import read as freshness_report
from bench.studies.scale import read as scale_report

NAN = float("nan")


def test_interval_range_and_all_of_rules_at_their_edges():
    assert interval_verdict(0.001, 0.2) == SUPPORTED
    assert interval_verdict(0.0, 0.2) == INCONCLUSIVE          # touching zero is not above it
    assert interval_verdict(-0.2, -0.001) == CONTRADICTED
    assert interval_verdict(-0.2, 0.0) == INCONCLUSIVE
    assert interval_verdict(NAN, 1.0) == "inconclusive (n=1)"     # no interval: one seed
    assert interval_verdict(0.03, 0.2, threshold=0.05) == INCONCLUSIVE   # above 0, not above 5
    assert interval_verdict(-0.2, -0.06, threshold=0.05) == CONTRADICTED
    assert range_verdict(120, 250, 100, 300) == SUPPORTED
    assert range_verdict(100, 300, 100, 300) == SUPPORTED       # the edges belong to the range
    assert range_verdict(20, 30, 100, 300) == CONTRADICTED
    assert range_verdict(310, 400, 100, 300) == CONTRADICTED
    assert range_verdict(90, 150, 100, 300) == INCONCLUSIVE
    assert range_verdict(NAN, NAN, 100, 300) == "inconclusive (n=1)"
    assert all_of([SUPPORTED, SUPPORTED]) == SUPPORTED
    assert all_of([SUPPORTED, INCONCLUSIVE]) == INCONCLUSIVE
    assert all_of([INCONCLUSIVE, CONTRADICTED, SUPPORTED]) == CONTRADICTED
    assert all_of([]) == NOT_RUN and all_of([NOT_RUN]) == NOT_RUN


# --- hand-made results folders ------------------------------------------------------------------

def write_accuracy(root: Path, means: dict, noise: dict | None = None) -> Path:
    """per_seed.csv, summary.csv and manifest.json as the accuracy experiment writes them."""
    d = root / "accuracy"
    d.mkdir(parents=True)
    noise = noise or {}
    rows = [{"arm": arm, "seed": seed, "exact_match": m + e, "rougeL": m + e, "bleu": 100 * (m + e)}
            for arm, m in means.items() for seed, e in enumerate(noise.get(arm, (0.0, 0.01, -0.01)))]
    per_seed = pd.DataFrame(rows)
    per_seed.to_csv(d / "per_seed.csv", index=False)
    summarize(per_seed, ["exact_match", "rougeL", "bleu"]).to_csv(d / "summary.csv", index=False)
    (d / "manifest.json").write_text(json.dumps({
        "experiment": "accuracy", "summary_split": "test",
        "config": {"arms": [{"name": arm, "arm": arm} for arm in means]}}))
    return d


def write_freshness(root: Path) -> Path:
    d = root / "freshness"
    d.mkdir(parents=True)
    arms = {  # arm: (changed EM after, stale after, unchanged before, unchanged after, update s)
        "rag+upsert": (0.70, 0.00, 0.70, 0.70, 3.0),
        "lora+retrain": (0.15, 0.02, 0.15, 0.15, 190.0),
        "lora+continue": (0.09, 0.05, 0.15, 0.05, 20.0)}
    rows = [{"arm": arm, "seed": seed, "changed_em_before": 0.0, "changed_em_after": a + e,
             "changed_gain": a + e, "stale_rate_before": 0.75, "stale_rate_after": s,
             "unchanged_em_before": ub, "unchanged_em_after": ua, "update_seconds": t * (1 + e)}
            for arm, (a, s, ub, ua, t) in arms.items() for seed, e in enumerate((0.0, 0.02, -0.02))]
    freshness_report.summarize(pd.DataFrame(rows)).to_csv(d / "summary.csv", index=False)
    pd.DataFrame([{"arm": "rag+upsert", "seed": s, "collection_same": True, "count_before": 900,
                   "count_after": 900} for s in range(3)]).to_csv(d / "cells.csv", index=False)
    return d


HAND_MADE = {"closed_book": 0.02, "rag": 0.68, "lora": 0.03, "hybrid": 0.60}


def test_accuracy_claims_follow_the_paired_interval_rule(tmp_path):
    d = write_accuracy(tmp_path, HAND_MADE)
    by_id = {c.id: c for c in accuracy.claims(d)}
    assert by_id["accuracy"].verdict == SUPPORTED           # rag - lora = +65 points in every seed
    assert "ROUGE-L +65.0 [" in by_id["accuracy"].measured and "reported +16%" in by_id["accuracy"].measured
    assert by_id["hybrid.lakatos"].verdict == SUPPORTED     # hybrid - rag = -8 points in every seed
    assert by_id["hybrid.raft"].verdict == CONTRADICTED     # ... so it does not beat both parts
    # rag ahead on average, but the seed-paired differences straddle zero -> inconclusive
    noisy = {"rag": (0.0, 0.10, -0.10), "lora": (0.0, -0.08, 0.08)}
    d2 = write_accuracy(tmp_path / "noisy", {"rag": 0.30, "lora": 0.28}, noisy)
    claims = {c.id: c for c in accuracy.claims(d2)}
    assert claims["accuracy"].verdict == INCONCLUSIVE
    assert claims["hybrid.lakatos"].verdict == NOT_RUN and "no hybrid" in claims["hybrid.lakatos"].measured
    d3 = write_accuracy(tmp_path / "reverse", {"rag": 0.10, "lora": 0.40})
    assert accuracy.claims(d3)[0].verdict == CONTRADICTED


def test_freshness_and_scale_claims_from_hand_made_tables(tmp_path):
    by_id = {c.id: c for c in freshness_report.claims(write_freshness(tmp_path))}
    assert by_id["freshness"].verdict == SUPPORTED            # +70 gain, 0% stale, in place
    assert by_id["freshness.retrain"].verdict == INCONCLUSIVE  # neither LoRA update absorbs
    assert by_id["freshness.update-cost"].verdict == SUPPORTED  # no LoRA update gets close
    d = tmp_path / "scale"
    d.mkdir()
    rows = []
    for size, recall, p95, total in ((1000, 0.95, 5.0, 24.0), (10000, 0.80, 6.0, 26.0)):
        for metric, value in (("recall_at_k", recall), ("rag_em", 0.7), ("search_ms_p95", p95),
                              ("total_ms_p50", total), ("search_ms_p50", 3.0), ("embed_ms_p50", 20.0)):
            rows.append({"arm": f"rag@{size}", "metric": metric, "mean": value, "ci_low": value - 1,
                         "ci_high": value + 1, "n": 3})
    pd.DataFrame(rows).to_csv(d / "summary.csv", index=False)
    (d / "manifest.json").write_text(json.dumps({"config": {"experiment": {"name": "scale"}, "study": {
        "sizes": [1000, 10000], "k": 3, "max_recall_drop": 0.05, "max_search_p95_ms": 100.0}}}))
    scale, quoted = scale_report.claims(d)
    assert scale.verdict == CONTRADICTED and "FAILS" in scale.measured   # recall drops 15 points
    assert quoted.verdict == CONTRADICTED and "26.0 [25.0, 27.0] ms" in quoted.measured


def test_every_wired_experiment_is_not_run_on_an_empty_folder(tmp_path):
    from bench.report.claims_report import claims_module

    for experiment in ("accuracy", "freshness", "scale", "latency", "cost", "coldstart"):
        module = claims_module(experiment)
        claims = module.claims(tmp_path)
        assert claims and {c.verdict for c in claims} == {NOT_RUN}, experiment
        assert module.redraw(tmp_path) == [], experiment


def test_claims_come_in_design_order_and_missing_topics_show_not_run():
    def claim(cid, experiment):
        return Claim(cid, cid, experiment, "m", SUPPORTED, "r")
    sections = [Section("scale", [claim("scale", "scale"), claim("scale.quoted", "scale")]),
                Section("accuracy", [claim("hybrid.raft", "accuracy"), claim("accuracy", "accuracy"),
                                     claim("other", "accuracy")])]
    rows = ordered(sections)
    names = [t for t, _, _ in rows]
    assert names == ["accuracy", "accuracy", "hybrid", *[t for t, _, _ in topics()[2:]], "scale"]
    assert [c.id for t, c, _ in rows if t == "accuracy"] == ["accuracy", "other"]   # unknown id -> its experiment
    assert [c.verdict for t, c, _ in rows if t == "cost"] == [NOT_RUN]
    assert {m for _, _, m in rows} == {"pocket"}
    # another model's sections add its own rows after the default model's, without not-run fill
    other = [Section("scale", [claim("scale", "scale")], model="tiny")]
    more = ordered(sections + other)
    assert more[:len(rows)] == rows and [(t, m) for t, _, m in more[len(rows):]] == [("scale", "tiny")]
    assert tally(rows).startswith(f"{len(rows)} claims: 5 supported, 0 contradicted")


def test_verdicts_side_by_side_per_model_mark_where_they_differ():
    from bench.report.claims_report import by_model, differs, held_on

    def claim(cid, verdict):
        return Claim(cid, cid, "scale", "m", verdict, "r")
    sections = [Section("scale", [claim("scale", SUPPORTED), claim("scale.quoted", CONTRADICTED)]),
                Section("scale", [claim("scale", SUPPORTED), claim("scale.quoted", SUPPORTED)], model="tiny")]
    models, rows = by_model(ordered(sections))
    assert models == ["pocket", "tiny"]
    verdicts = {c.id: v for t, c, v in rows if t == "scale"}
    assert verdicts["scale"] == {"pocket": SUPPORTED, "tiny": SUPPORTED}
    assert not differs(verdicts["scale"]) and held_on(verdicts["scale"]) == "all"
    assert differs(verdicts["scale.quoted"]) and held_on(verdicts["scale.quoted"]) == "tiny"
    cost = next(v for t, c, v in rows if t == "cost")
    assert cost == {"pocket": NOT_RUN, "tiny": NOT_RUN} and not differs(cost) and held_on(cost) == "none"
    assert held_on({"pocket": SUPPORTED, "tiny": NOT_RUN}) == "pocket"


def test_report_builds_from_saved_tables_alone_without_torch(tmp_path):
    write_accuracy(tmp_path, HAND_MADE)
    write_freshness(tmp_path)
    code = ("import sys; from bench.cli import main; rc = main(['report', '--results', sys.argv[1]]); "
            "assert rc == 0; assert 'torch' not in sys.modules and 'transformers' not in sys.modules, "
            "'the report imported the model stack'")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr
    md = (tmp_path / "report.md").read_text()
    assert md.index("## Verdicts per model") < md.index("## Every claim, measured")
    table = md.split("## Every claim, measured")[1].split("\n## ")[0]
    assert "| accuracy | RAG beats fine-tuning" in table and "**supported**" in table
    assert table.index("| hybrid |") < table.index("| latency |") < table.index("| scale |")
    for experiment in ("latency", "coldstart", "consistency", "format", "hallucination", "data-scaling",
                       "forgetting", "popularity", "lora-params", "cost", "scale"):
        row = next(line for line in table.splitlines() if line.startswith(f"| {experiment} |"))
        assert row.endswith("**not run** |"), row
    assert "claims: 4 supported, 1 contradicted, 1 inconclusive at this model scale" in md
    for png in ("accuracy/quality.png", "accuracy/latency_stages.png", "freshness/freshness.png"):
        assert (tmp_path / png).stat().st_size > 0 and f"]({png})" in md
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "<style>" in page
    assert 'color:#1a7f37">supported<' in page and not list(tmp_path.rglob("*.tmp*"))
    assert float(done.stdout.split(" in ")[-1].split(" s")[0]) < 60


def long_summary(rows) -> pd.DataFrame:
    """(arm, metric, mean, half-width) -> summary.csv rows with n = 3."""
    return pd.DataFrame([{"arm": a, "metric": m, "mean": v, "ci_low": v - h, "ci_high": v + h, "n": 3}
                         for a, m, v, h in rows])


def manifest(d: Path, arms, study=None) -> None:
    (d / "manifest.json").write_text(json.dumps({"config": {
        "experiment": {"arms": [{"name": a, "arm": a} for a in arms]}, "study": study or {}}}))


def test_operational_claims_and_plots_from_hand_made_tables(tmp_path):
    from bench.studies.coldstart import read as coldstart
    from bench.studies.cost import read as cost
    from bench.studies.latency import read as latency

    # latency: rag adds 25 ms over closed_book; the merged hybrid adds 20 ms over the merged lora
    ms = {"closed_book": 18, "rag": 43, "lora": 190, "lora_merged": 20, "hybrid": 210, "hybrid_merged": 40}
    rows = [{"label": f"{arm}@bs{bs}", "arm": arm, "batch_size": bs, "seed": seed, "item_id": i,
             "t_embed": 0.02 if "rag" in arm or "hybrid" in arm else 0.0, "t_search": 0.003, "t_prompt": 0.0,
             "t_generate": 0.01, "t_total": (t + seed + i) / 1000 / (1 if bs == 1 else 8),
             "prompt_tokens": 33 if "rag" in arm or "hybrid" in arm else 15, "completion_tokens": 2}
            for arm, t in ms.items() for bs in (1, 64) for seed in range(3) for i in range(4)]
    d = tmp_path / "latency"
    d.mkdir()
    pd.DataFrame(rows).to_csv(d / "items.csv", index=False)
    latency.summarize(pd.DataFrame(rows)).to_csv(d / "summary.csv", index=False)
    manifest(d, ["closed_book", "rag", "lora", "hybrid"])
    main, quoted = latency.claims(d)
    assert main.verdict == SUPPORTED and "hybrid_merged - lora_merged +20.0 ms" in main.measured
    assert quoted.verdict == CONTRADICTED and "rag - closed_book +25.0 ms" in quoted.measured
    # cost: cheaper up front and dearer per query in one scenario; cheaper both ways in the other
    d = tmp_path / "cost"
    d.mkdir()
    long_summary([("rag", "cpu:one_off_usd", 0.01, 0.001), ("lora", "cpu:one_off_usd", 1.0, 0.1),
                  ("rag", "cpu:per_1k_queries_usd", 0.5, 0.05), ("lora", "cpu:per_1k_queries_usd", 0.3, 0.05),
                  ("rag", "api:one_off_usd", 0.01, 0.001), ("lora", "api:one_off_usd", 1.0, 0.1),
                  ("rag", "api:per_1k_queries_usd", 0.1, 0.01), ("lora", "api:per_1k_queries_usd", 0.3, 0.01),
                  ]).to_csv(d / "summary.csv", index=False)
    pd.DataFrame([{"scenario": "cpu", "arm_a": "rag", "arm_b": "lora", "break_even_queries": 4950.0},
                  {"scenario": "api", "arm_a": "rag", "arm_b": "lora", "break_even_queries": NAN}]
                 ).to_csv(d / "break_even.csv", index=False)
    manifest(d, ["rag", "lora"], {"horizon": 1000})
    cpu, api = cost.claims(d)
    assert (cpu.id, cpu.verdict, api.verdict) == ("cost.cpu", SUPPORTED, CONTRADICTED)
    assert "break-even: 4,950 queries" in cpu.measured and "break-even: never" in api.measured
    # coldstart: the CIs of time to the first correct answer are apart, then they overlap
    d = tmp_path / "coldstart"
    d.mkdir()
    manifest(d, ["rag", "lora"])
    for lora_s, want in ((200.0, SUPPORTED), (12.5, INCONCLUSIVE), (NAN, SUPPORTED), (2.0, CONTRADICTED)):
        long_summary([("rag", "first_correct_seconds", 10.0, 2.0), ("lora", "first_correct_seconds", lora_s, 1.0),
                      ("rag", "exact_match", 0.7, 0.05), ("lora", "exact_match", 0.02, 0.01)]
                     ).to_csv(d / "summary.csv", index=False)
        assert coldstart.claims(d)[0].verdict == want, lora_s
    for module, folder, png in ((latency, "latency", "latency.png"), (cost, "cost", "cost.png"),
                                (coldstart, "coldstart", "coldstart.png")):
        assert module.redraw(tmp_path / folder) == [tmp_path / folder / png]
        assert (tmp_path / folder / png).stat().st_size > 0


def test_scale_claims_come_from_the_largest_setting_when_it_was_run(tmp_path):
    from bench.report.claims_report import results_folder

    assert results_folder(tmp_path, "scale") == tmp_path / "scale"          # neither: the default
    (tmp_path / "scale").mkdir()
    assert results_folder(tmp_path, "scale") == tmp_path / "scale"
    (tmp_path / "scale-100k").mkdir()
    assert results_folder(tmp_path, "scale") == tmp_path / "scale-100k"
    assert results_folder(tmp_path, "accuracy") == tmp_path / "accuracy"


def test_results_from_another_pocket_checkpoint_are_flagged_stale(tmp_path, monkeypatch):
    from bench.pocket import recipe
    from bench.report.claims_report import stale_note, staleness

    monkeypatch.setattr(recipe, "checkpoint_hash", lambda: "now")

    def folder(name, manifest):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps(manifest))
        return tmp_path / name

    assert staleness(folder("current", {"pocket_checkpoint": "now", "config": {}})) is None
    old = staleness(folder("old", {"pocket_checkpoint": "old"}))
    assert "checkpoint old, not the current now" in old
    assert "(`make old`)" in old      # the target that refreshes the folder read (scale-100k, not scale)
    assert "unrecorded" in staleness(folder("older", {"config": {"experiment": {"model": {"name": "pocket"}}}}))
    # an experiment on another model is never stale for the pocket model's sake
    assert staleness(folder("hf", {"config": {"model": {"name": "gpt2"}}})) is None
    claim = Claim("x.y", "a claim", "x", "1", SUPPORTED, "rule")
    note = stale_note([Section("x", [claim], stale="old"), Section("y", [claim]), Section("z", stale="old")])
    assert note[0].startswith("**Made with an older pocket model, to be rerun:** x. ")
    assert stale_note([Section("y", [claim])]) == []


def test_one_seed_gives_no_interval_and_no_verdict():
    from bench.report.claims import ONE_SEED, ONE_SEED_VERDICT, all_of, fmt_ci, range_verdict
    from bench.report.tables import mean_ci, paired

    m, lo, hi, n = mean_ci([0.95])
    assert (m, n) == (0.95, 1) and math.isnan(lo) and math.isnan(hi)
    assert fmt_ci(m, lo, hi) == f"95.0 {ONE_SEED}"
    assert interval_verdict(lo, hi) == ONE_SEED_VERDICT == "inconclusive (n=1)"
    assert range_verdict(lo, hi, 0.1, 0.3) == ONE_SEED_VERDICT
    assert all_of([SUPPORTED, ONE_SEED_VERDICT]) == ONE_SEED_VERDICT
    assert all_of([CONTRADICTED, ONE_SEED_VERDICT]) == CONTRADICTED
    assert mean_ci([0.5, 0.5])[1:3] == (0.5, 0.5)          # equal seeds: a zero-width interval
    per_seed = pd.DataFrame({"arm": ["a", "b"], "seed": [0, 0], "x": [1.0, 0.0]})
    diff = paired(per_seed, "a", "b", "x")
    assert diff[0] == 1.0 and math.isnan(diff[1]) and interval_verdict(diff[1], diff[2]) == ONE_SEED_VERDICT


def test_a_quick_run_marks_every_verdict_and_is_never_read_as_a_model(tmp_path):
    from bench.report.claims_report import build_report, model_roots

    means = {"closed_book": 0.1, "rag": 0.8, "lora": 0.3, "hybrid": 0.7}
    write_accuracy(tmp_path, means)                                  # the full run
    quick_root = tmp_path / "quick"
    d = write_accuracy(quick_root, means)                           # make quick's
    manifest = json.loads((d / "manifest.json").read_text())
    (d / "manifest.json").write_text(json.dumps({**manifest, "quick": True}))
    assert [m for m, _ in model_roots(tmp_path)] == ["pocket"]      # results/quick is not a model
    md, page, tally_line = build_report(quick_root, quick_root)
    text = md.read_text()
    accuracy_rows = [line for line in text.splitlines() if line.startswith("| accuracy |")]
    assert accuracy_rows and all("(quick)" in line for line in accuracy_rows)
    assert "Quick runs (make quick)" in text and "of them from quick runs" in tally_line
    assert "supported (quick)" in page.read_text()
    full_md, _, full_tally = build_report(tmp_path, tmp_path / "out")
    assert "(quick)" not in full_md.read_text() and "quick runs" not in full_tally


def test_suite_and_profile_refuse_an_unknown_study_in_one_line(tmp_path, capsys):
    from bench.cli import main

    for argv in (["suite", "--quick", "--root", str(tmp_path / "q"), "--studies", "accuracy,bogus"],
                 ["profile", "pocket", "--studies", "bogus"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "--studies: unknown study 'bogus'" in err
    assert not (tmp_path / "q").exists()          # refused before anything was written


def test_the_suite_stopwatch_records_each_study_the_load_and_the_executor(tmp_path, monkeypatch):
    """suite.json (bench suite) and profile.json (bench profile) come from one Stopwatch."""
    import time

    from bench import executors
    from bench.studies.suite import Stopwatch

    monkeypatch.setenv(executors.ENV, "ray")
    clock = Stopwatch()
    with clock.timing("a"):
        time.sleep(0.2)
    with clock.timing("b"):
        pass
    clock.write(tmp_path / "suite.json", quick=True, model="pocket")
    doc = json.loads((tmp_path / "suite.json").read_text())
    assert doc["quick"] is True and doc["model"] == "pocket" and doc["executor"] == "ray"
    assert list(doc["studies"]) == ["a", "b"] and doc["studies"]["a"] >= 0.2 > doc["studies"]["b"]
    assert doc["total_seconds"] >= doc["studies"]["a"]
    assert len(doc["load_average_1_5_15"]["start"]) == 3 and doc["cpu_count"] == os.cpu_count()
