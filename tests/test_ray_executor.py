"""--executor ray: a small accuracy study on the micro pocket model, once here (local) and once as
Ray tasks on a two-CPU local cluster, into separate results and cache folders. The two runs must
agree on every prediction and score (timings aside), and the Ray run's jobs, LoRA training
included, must have run in Ray workers. Also: a bad executor name is one line and exit 2."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench import executors
from bench.report.outputs import load_item_table
from bench.studies.driver import run_study

ROOT = Path(__file__).resolve().parent.parent
LORA = "{rank: 4, alpha: 8, steps: 3, batch_size: 4}"


def timing(col: str) -> bool:
    return col.startswith("t_")   # per-stage seconds, the only wall-clock columns of a row


@pytest.fixture(scope="module")
def two_runs(micro_pocket, tmp_path_factory):
    if importlib.util.find_spec("ray") is None:   # find_spec: the local run below must import it itself
        pytest.skip("ray is not installed")
    root = tmp_path_factory.mktemp("ray-executor")
    config = root / "accuracy.yaml"
    # threads: 1 in both runs: a Ray task gets its num_cpus as torch threads, and matrix products
    # summed over a different thread count may differ in the last bits
    config.write_text(
        "name: accuracy\n"
        "data: {world: {entities: 8}, eval_splits: [test, train], max_items: 3}\n"
        f"seeds: [0]\nmodel: {{name: {micro_pocket[0]}, max_new_tokens: 3, batch_size: 4, threads: 1}}\n"
        "arms:\n  - {name: closed_book, arm: closed_book}\n"
        "  - {name: rag, arm: rag, retrieval: {k: 1}}\n"
        f"  - {{name: lora, arm: lora, lora: {LORA}}}\n"
        f"  - {{name: hybrid, arm: hybrid, retrieval: {{k: 1}}, lora: {LORA}}}\n")
    ray_loaded = "ray" in sys.modules   # by an earlier test of this session (then the check is moot)
    with executors.using("local"):
        run_study("accuracy", config, root / "local", cache_dir=root / "cache-local", progress=False)
    local_imported_ray = not ray_loaded and "ray" in sys.modules

    import ray

    auth_mode = os.environ.get("RAY_AUTH_MODE")   # a local cluster sets it in this process
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        executors.RAY_TASKS.clear()
        with executors.using("ray"):
            run_study("accuracy", config, root / "ray", cache_dir=root / "cache-ray", progress=False)
        tasks = list(executors.RAY_TASKS)
    finally:
        ray.shutdown()   # stops the local cluster's processes
        executors.RAY_TASKS.clear()
        if auth_mode is None:
            os.environ.pop("RAY_AUTH_MODE", None)
    return root, tasks, local_imported_ray


def test_a_ray_run_writes_what_a_local_run_writes(two_runs):
    root, _, _ = two_runs
    local, remote = (load_item_table(root / d / "items.csv") for d in ("local", "ray"))
    assert len(local) == 4 * 6 and set(local["arm"]) == {"closed_book", "rag", "lora", "hybrid"}
    keep = [c for c in local.columns if not timing(c)]
    assert list(remote.columns) == list(local.columns)
    pd.testing.assert_frame_equal(local[keep], remote[keep])
    # the prediction logs: the same files (same job keys), the same rows but for timings
    logs = {d: sorted((root / d / "predictions").glob("*.jsonl")) for d in ("local", "ray")}
    assert [p.name for p in logs["local"]] == [p.name for p in logs["ray"]] and len(logs["local"]) == 4

    def rows(path):
        return [{k: v for k, v in json.loads(line).items() if not timing(k)}
                for line in path.read_text().splitlines()]
    for a, b in zip(logs["local"], logs["ray"]):
        assert rows(a) == rows(b), a.name


def test_the_jobs_and_the_lora_training_ran_in_ray_workers(two_runs):
    root, tasks, _ = two_runs
    assert sorted(t["label"] for t in tasks) == ["closed_book-s0", "hybrid-s0", "lora-s0", "rag-s0"]
    assert all(t["pid"] != os.getpid() for t in tasks)      # not this (the driver's) process
    # one adapter, trained in a worker (the driver ran no job) into the Ray run's cache folder,
    # shared by lora and hybrid through its entry lock
    (adapter,) = (root / "cache-ray" / "adapters").iterdir()
    assert (adapter / "stats.json").exists()
    assert [p.name for p in (root / "cache-local" / "adapters").iterdir()] == [adapter.name]
    cells = pd.read_csv(root / "ray" / "cells.csv").set_index("arm")
    assert cells.loc["lora", "adapter_key"] == cells.loc["hybrid", "adapter_key"] == adapter.name
    assert sorted(cells["adapter_cached"].dropna().astype(str)) == ["False", "True"]   # trained once
    # hybrid waited for lora's task (one adapter): it never sat on a CPU waiting for the lock
    by = {t["label"]: t for t in tasks}
    assert by["hybrid-s0"]["start"] >= by["lora-s0"]["end"]
    assert {t["threads"] for t in tasks} == {1}   # threads: 1 in the config is each task's request
    # the adapter trained on one CPU of the machine beside other tasks: cost prices that share;
    # the local run's adapter held the machine
    share = json.loads((adapter / "stats.json").read_text())["train_machine_share"]
    assert share == pytest.approx(min(1.0, 1 / os.cpu_count()), abs=1e-4)
    (local_adapter,) = (root / "cache-local" / "adapters").iterdir()
    assert json.loads((local_adapter / "stats.json").read_text())["train_machine_share"] == 1.0


def test_the_local_executor_never_imports_ray(two_runs):
    assert not two_runs[2]


def test_resources_follow_threads_and_training(four_arms):
    import dataclasses

    from bench.engine import Job

    arms = {a.arm: a for a in four_arms.arms}
    for threads, share, cpus in ((0, 1, 1), (0, 2, 2), (3, 1, 3)):
        model = dataclasses.replace(four_arms.model, threads=threads)
        jobs = {kind: Job(arm, 0, model, four_arms.data) for kind, arm in arms.items()}
        assert executors.resources(jobs["rag"], 2, share) == {"num_cpus": cpus, "num_gpus": 0}
        assert executors.resources(jobs["lora"], 2, share) == {"num_cpus": cpus, "num_gpus": 1}
        assert executors.resources(jobs["hybrid"], 0, share) == {"num_cpus": cpus, "num_gpus": 0}   # no GPU in the cluster


@pytest.mark.parametrize("jobs, cluster, node, share", [
    (1, 2, 2, 2),      # a lone job gets the whole machine
    (4, 2, 2, 1),      # two cores, many jobs: one thread each, two at once
    (3, 6, 2, 2),      # three nodes of two: a node each
    (2, 64, 16, 16),   # never more than one node has
    (100, 8, 8, 1),
])
def test_a_jobs_cpu_share(jobs, cluster, node, share):
    assert executors.cpu_share(jobs, cluster, node) == share


def test_jobs_sharing_an_adapter_are_grouped(four_arms):
    import dataclasses

    from bench.engine import Job

    arms = {a.arm: a for a in four_arms.arms}
    group = {kind: executors.adapter_group(Job(arm, 0, four_arms.model, four_arms.data))
             for kind, arm in arms.items()}
    assert group["closed_book"] is None and group["rag"] is None
    assert group["lora"] is not None and group["lora"] == group["hybrid"]   # one adapter, two arms
    other_seed = executors.adapter_group(Job(arms["lora"], 1, four_arms.model, four_arms.data))
    longer = dataclasses.replace(arms["lora"], settings=dataclasses.replace(
        arms["lora"].settings, lora=dataclasses.replace(arms["lora"].settings.lora, steps=999)))
    assert other_seed != group["lora"]
    assert executors.adapter_group(Job(longer, 0, four_arms.model, four_arms.data)) != group["lora"]


def test_jobs_go_to_ray_longest_training_first(four_arms):
    import dataclasses

    from bench.engine import Job

    arms = {a.arm: a for a in four_arms.arms}
    longer = dataclasses.replace(arms["lora"], name="lora_long", settings=dataclasses.replace(
        arms["lora"].settings, lora=dataclasses.replace(arms["lora"].settings.lora, steps=999)))
    jobs = [Job(arm, 0, four_arms.model, four_arms.data)
            for arm in (arms["closed_book"], arms["lora"], arms["rag"], arms["hybrid"], longer)]
    assert executors.training_work(jobs[4]) == 999 * arms["lora"].settings.lora.batch_size
    assert executors.training_work(jobs[0]) == executors.training_work(jobs[2]) == 0
    # the long adapter first; lora before the hybrid that loads its adapter; answer-only jobs last
    assert [jobs[i].arm.name for i in executors.submission_order(jobs)] == [
        "lora_long", arms["lora"].name, arms["hybrid"].name, arms["closed_book"].name, arms["rag"].name]


def test_a_timed_study_runs_here_unless_the_flag_says_ray(monkeypatch, capsys):
    monkeypatch.setenv(executors.ENV, "ray")
    with executors.using(None):
        with executors.timing_here(True):
            assert executors.current() == "local"
        assert "executor: local for this study" in capsys.readouterr().out
        with executors.timing_here(False):
            assert executors.current() == "ray"
        assert executors.current() == "ray"
    with executors.using("ray"), executors.timing_here(True):
        assert executors.current() == "ray"   # --executor ray given: the user asked for it


# -- choosing the executor -------------------------------------------------------------------------

def test_the_flag_wins_over_the_variable_and_both_end_with_the_command(monkeypatch):
    from bench import cli

    seen = []
    monkeypatch.setattr(cli, "cmd_study", lambda args: seen.append(executors.current()) or 0)
    monkeypatch.delenv(executors.ENV, raising=False)
    assert cli.main(["study", "accuracy", "--executor", "ray"]) == 0
    monkeypatch.setenv(executors.ENV, "ray")
    assert cli.main(["study", "accuracy"]) == 0
    assert cli.main(["study", "accuracy", "--executor", "local"]) == 0
    assert seen == ["ray", "ray", "local"]
    monkeypatch.delenv(executors.ENV)
    assert executors.current() == "local"


@pytest.mark.parametrize("argv, env, named", [
    (["study", "accuracy", "--executor", "bogus"], None, "--executor"),
    (["run", "experiments/accuracy.yaml"], "bogus", "BENCH_EXECUTOR"),
])
def test_an_unknown_executor_is_one_line_and_exit_2(argv, env, named, monkeypatch, capsys):
    from bench.cli import main

    if env is None:
        monkeypatch.delenv(executors.ENV, raising=False)
    else:
        monkeypatch.setenv(executors.ENV, env)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {named}: unknown executor 'bogus'; choices: local, processes, ray"


def test_make_with_a_bad_executor_fails_at_once():
    """As `make all BENCH_EXECUTOR=bogus` runs it: a process, exit 2, one line on stderr."""
    env = {**os.environ, executors.ENV: "bogus"}
    p = subprocess.run([sys.executable, "-m", "bench", "study", "accuracy", "--quiet"], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == ["error: BENCH_EXECUTOR: unknown executor 'bogus'; choices: local, processes, ray"]


def test_adapter_seconds_by_label_gives_each_setting_its_row(tmp_path):
    script = ROOT / "scripts" / "adapter_seconds.py"
    logs = tmp_path / "data-scaling" / "predictions"
    logs.mkdir(parents=True)
    for label, seed, seconds in (("lora-n=50", 0, 10.0), ("lora-n=50", 1, 12.0), ("lora-n=50+para+recipe", 0, 40.0)):
        (logs / f"{label}-s{seed}-0123456789ab.prepare.json").write_text(json.dumps(
            {"adapter_key": f"{label}{seed}", "train_seconds": seconds, "train_machine_share": 0.5}))
    (logs / "hybrid-n=50-s0-ba9876543210.prepare.json").write_text(json.dumps(   # found the adapter
        {"adapter_key": "lora-n=500", "adapter_cached": True, "train_seconds": 10.0}))
    done = subprocess.run([sys.executable, str(script), str(tmp_path), "--by-label", "--csv", str(tmp_path / "t.csv")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(tmp_path / "t.csv").set_index("folder")
    assert table.loc["data-scaling/lora-n=50", ["adapters", "train_seconds", "machine_seconds"]].tolist() == [2, 22, 11]
    assert table.loc["data-scaling/lora-n=50+para+recipe", "machine_seconds"] == 20
    assert list(table.index) == ["data-scaling/lora-n=50+para+recipe", "data-scaling/lora-n=50", "total"]


def test_adapter_seconds_counts_each_trained_adapter_once_at_its_machine_share(two_runs, tmp_path):
    root, _, _ = two_runs
    script = ROOT / "scripts" / "adapter_seconds.py"
    for run, cache in (("ray", "cache-ray"), ("local", "cache-local")):
        out = tmp_path / f"{run}.csv"
        done = subprocess.run([sys.executable, str(script), str(root / run), "--csv", str(out)],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        table = pd.read_csv(out).set_index("folder")
        (adapter,) = (root / cache / "adapters").iterdir()
        stats = json.loads((adapter / "stats.json").read_text())
        # lora trained it, hybrid found it in the cache: one adapter, its seconds once
        assert table.loc["total", "adapters"] == 1 and table.loc["total", "trained_again"] == 0
        assert table.loc["total", "train_seconds"] == pytest.approx(stats["train_seconds"], abs=0.06)
        assert table.loc["total", "machine_seconds"] == pytest.approx(
            stats["train_seconds"] * stats["train_machine_share"], abs=0.06)
    # a second study training the same recipe again (the store missed it): listed, its seconds not added
    twice = tmp_path / "twice"
    for folder, cached in (("accuracy", False), ("forgetting", True), ("hallucination", False)):
        (twice / folder / "predictions").mkdir(parents=True)
        (twice / folder / "predictions" / "lora-s0.prepare.json").write_text(json.dumps(
            {"adapter_key": "k1", "adapter_cached": cached, "train_seconds": 10.0, "train_machine_share": 0.5}))
    done = subprocess.run([sys.executable, str(script), str(twice), "--csv", str(tmp_path / "twice.csv")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(tmp_path / "twice.csv").set_index("folder")
    assert table.loc["total", ["adapters", "train_seconds", "machine_seconds", "trained_again"]].tolist() == [1, 10, 5, 1]
    assert table.loc["hallucination", "trained_again"] == 1 and table.loc["accuracy", "trained_again"] == 0
    assert "hallucination/predictions/lora-s0.prepare.json (first: accuracy/predictions/lora-s0.prepare.json)" in done.stdout
    missing = subprocess.run([sys.executable, str(script), str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert missing.returncode == 2 and "nowhere" in missing.stderr and len(missing.stderr.splitlines()) == 1
    # a prepare file cut short (a job killed as it wrote it): one line naming the file, no table
    cut = tmp_path / "cut" / "predictions" / "lora-s0.prepare.json"
    cut.parent.mkdir(parents=True)
    cut.write_text('{"adapter_key": "ab')
    bad = subprocess.run([sys.executable, str(script), str(tmp_path / "cut"), "--csv", str(tmp_path / "cut.csv")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and str(cut) in bad.stderr and len(bad.stderr.splitlines()) == 1
    assert not (tmp_path / "cut.csv").exists()
