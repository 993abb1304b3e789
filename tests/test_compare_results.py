"""scripts/compare_results.py: a rerun's tables against a reference, timings left out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "compare_results.py"


def results(folder: Path, prediction="Paris", em=1.0, t_total=0.5, latency=40.0, score=0.8) -> Path:
    study = folder / "study"
    study.mkdir(parents=True)
    pd.DataFrame({"arm": ["rag", "lora"], "item_id": ["q1", "q1"], "prediction": ["Paris", prediction],
                  "exact_match": [1.0, em], "semantic_similarity": [0.9, score], "t_total": [0.1, t_total],
                  "abstained": [False, False], "empty": [None, None]}).to_csv(study / "items.csv", index=False)
    # a long table: one row per metric, so timing rows are left out by the metric's name
    pd.DataFrame({"arm": ["lora", "lora"], "metric": ["exact_match", "latency_ms"], "mean": [em, latency],
                  "ci_low": [em, latency], "ci_high": [em, latency], "n": [3, 3]}).to_csv(study / "summary.csv", index=False)
    (folder / "perf").mkdir()
    pd.DataFrame({"target": ["a"], "seconds": [latency]}).to_csv(folder / "perf" / "make-all.csv", index=False)
    return folder


def run(a: Path, b: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(a), str(b)], capture_output=True, text=True)


def test_timings_and_last_bit_noise_do_not_count(tmp_path):
    a = results(tmp_path / "a")
    # 0.123457 against 0.123456: the last printed digit, 1e-6 apart up to float noise
    b = results(tmp_path / "b", t_total=9.0, latency=99.0, score=0.8 + 3e-7)
    pd.read_csv(a / "study" / "summary.csv").assign(ci_low=0.123456).to_csv(a / "study" / "summary.csv", index=False)
    pd.read_csv(b / "study" / "summary.csv").assign(ci_low=0.123457).to_csv(b / "study" / "summary.csv", index=False)
    done = run(a, b)
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines() == ["study/items.csv: same", "study/summary.csv: same"]   # perf/ left out


def test_a_changed_answer_is_named_by_file_column_metric_and_arm(tmp_path):
    a = results(tmp_path / "a")
    b = results(tmp_path / "b", prediction="Lyon", em=0.0)
    done = run(a, b)
    assert done.returncode == 1
    items, summary = done.stdout.splitlines()
    assert items.startswith("study/items.csv: ") and "prediction: 1 rows" in items
    assert "exact_match: 1 rows, max |d| 1" in items and "predictions differ: lora 1 of 1" in items
    assert "t_total" not in items and "empty" not in items          # missing equals missing
    assert "metrics: exact_match" in summary and "latency_ms" not in summary


def test_files_in_one_folder_only_or_with_other_columns_are_listed(tmp_path):
    a = results(tmp_path / "a")
    b = results(tmp_path / "b")
    (a / "study" / "extra.csv").write_text("x\n1\n")
    pd.read_csv(b / "study" / "items.csv").assign(new_score=1.0).to_csv(b / "study" / "items.csv", index=False)
    done = run(a, b)
    assert done.returncode == 1
    assert f"study/extra.csv: only in {a}" in done.stdout
    assert "study/items.csv: other columns or rows" in done.stdout and "new_score" in done.stdout


def test_a_missing_folder_is_one_line_and_exit_2(tmp_path):
    done = run(tmp_path / "nope", tmp_path)
    assert done.returncode == 2 and done.stderr.strip() == f"error: {tmp_path / 'nope'}: not a folder"
