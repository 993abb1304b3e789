"""--executor processes: a small accuracy study on the micro pocket model, once here (local) and
once in worker processes, into separate results and cache folders: the same predictions and
scores (timings aside), jobs run in workers two at a time, jobs sharing an adapter one after the
other. An interrupted or killed run stops its workers and resumes without losing or repeating
answers."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bench import executors, processes
from bench.report.outputs import load_item_table
from bench.studies.driver import run_study

ROOT = Path(__file__).resolve().parent.parent
LORA = "{rank: 4, alpha: 8, steps: 3, batch_size: 4}"


def config(path: Path, model: Path, lora: str = LORA, seeds: str = "[0, 1]") -> Path:
    # threads: 1 in both runs: matrix products summed over another thread count may differ in
    # the last bits (unset, each worker job takes its share of the cores: one each of two)
    path.write_text(
        "name: accuracy\n"
        "data: {world: {entities: 8}, eval_splits: [test, train], max_items: 3}\n"
        f"seeds: {seeds}\nmodel: {{name: {model}, max_new_tokens: 3, batch_size: 4, threads: 1}}\n"
        "arms:\n  - {name: closed_book, arm: closed_book}\n"
        "  - {name: rag, arm: rag, retrieval: {k: 1}}\n"
        f"  - {{name: lora, arm: lora, lora: {lora}}}\n"
        f"  - {{name: hybrid, arm: hybrid, retrieval: {{k: 1}}, lora: {lora}}}\n")
    return path


@pytest.fixture(scope="module")
def two_runs(micro_pocket, tmp_path_factory):
    root = tmp_path_factory.mktemp("processes-executor")
    cfg = config(root / "accuracy.yaml", micro_pocket[0])
    with executors.using("local"):
        run_study("accuracy", cfg, root / "local", cache_dir=root / "cache-local", progress=False)
    processes.TASKS.clear()
    with executors.using("processes"):
        run_study("accuracy", cfg, root / "processes", cache_dir=root / "cache-processes", progress=False)
        tasks = list(processes.TASKS)
        # run again (every answer is in its log): the same workers take the jobs, not new ones
        run_study("accuracy", cfg, root / "processes", cache_dir=root / "cache-processes", progress=False)
    again = processes.TASKS[len(tasks):]
    processes.TASKS.clear()
    return root, tasks, again


def test_a_processes_run_writes_what_a_local_run_writes(two_runs):
    root, _, _ = two_runs
    local, pooled = (load_item_table(root / d / "items.csv") for d in ("local", "processes"))
    assert len(local) == 4 * 2 * 6
    keep = [c for c in local.columns if not c.startswith("t_")]   # per-stage seconds
    assert list(pooled.columns) == list(local.columns)
    pd.testing.assert_frame_equal(local[keep], pooled[keep])
    logs = {d: sorted(p.name for p in (root / d / "predictions").glob("*.jsonl")) for d in ("local", "processes")}
    assert logs["local"] == logs["processes"] and len(logs["local"]) == 8   # the same job keys


def test_jobs_ran_in_workers_beside_each_other_and_adapters_in_turn(two_runs):
    root, tasks, _ = two_runs
    assert len(tasks) == 8 and all(t["pid"] != os.getpid() for t in tasks)
    assert {t["threads"] for t in tasks} == {1}
    by = {t["label"]: t for t in tasks}
    for seed in (0, 1):   # hybrid loads the adapter lora trained: it starts after lora ends
        assert by[f"hybrid-s{seed}"]["start"] >= by[f"lora-s{seed}"]["end"]
    if processes.machine_cpus() >= 2:   # two one-thread jobs at a time, in two workers
        assert len({t["pid"] for t in tasks}) == 2
        spans = sorted((t["start"], t["end"]) for t in tasks)
        assert any(b[0] < a[1] for a, b in zip(spans, spans[1:])), spans
    # two adapters (one a seed), each trained once, in a worker holding its share of the machine
    adapters = sorted((root / "cache-processes" / "adapters").iterdir())
    assert len(adapters) == 2
    for adapter in adapters:
        share = json.loads((adapter / "stats.json").read_text())["train_machine_share"]
        assert share == pytest.approx(min(1.0, 1 / processes.machine_cpus()), abs=1e-4)


def test_a_later_call_reuses_the_workers(two_runs):
    _, tasks, again = two_runs
    assert len(again) == 8 and {t["pid"] for t in again} <= {t["pid"] for t in tasks}


def test_the_plan_orders_jobs_like_ray_and_splits_the_cores(four_arms, tmp_path):
    import dataclasses

    from bench.engine import Job

    jobs = [Job(arm, seed, four_arms.model, four_arms.data) for seed in (0, 1) for arm in four_arms.arms]
    kinds = [job.arm.arm for job in jobs]
    order, after, threads = processes.plan(jobs, tmp_path, cpus=2)
    assert order == executors.submission_order(jobs)
    for seed in (0, 1):
        lora, hybrid = (kinds.index(k, 4 * seed) for k in ("lora", "hybrid"))
        assert after[hybrid] == {lora} and after[lora] == set()   # one adapter: lora trains it first
    assert all(not after[i] for i, k in enumerate(kinds) if k in ("closed_book", "rag"))
    assert threads == [1] * 8                                  # 8 jobs on 2 cores
    assert processes.plan(jobs[:1], tmp_path, cpus=2)[2] == [2]   # a lone job gets both
    pinned = [dataclasses.replace(j, model=dataclasses.replace(j.model, threads=3)) for j in jobs]
    assert processes.plan(pinned, tmp_path, cpus=2)[2] == [3] * 8
    # the same job twice (one prediction log): the second waits for the first
    _, after, _ = processes.plan([jobs[0], jobs[0]], tmp_path, cpus=2)
    assert after == {0: set(), 1: {0}}


def test_a_live_vector_store_cannot_go_to_a_worker(four_arms, tmp_path):
    from bench.config import ConfigError
    from bench.engine import Job, run_jobs

    job = Job(four_arms.arms[0], 0, four_arms.model, four_arms.data, store=object())
    with executors.using("processes"), pytest.raises(ConfigError, match="--executor local"):
        run_jobs([job], tmp_path)


def test_a_timed_study_runs_here_when_only_the_variable_asks_for_processes(monkeypatch):
    monkeypatch.setenv(executors.ENV, "processes")
    with executors.using(None):
        with executors.timing_here(True):
            assert executors.current() == "local"
        assert executors.current() == "processes"


# -- stopping: Ctrl-C, kill -9, then resume ---------------------------------------------------------

def workers_of(pid: int) -> set[int]:
    """The driver's spawned workers (their command line runs multiprocessing's spawn_main)."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if entry.name.isdigit() and int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in cmd:
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"   # a zombie has stopped


def start_and_stop(cfg: Path, out: Path, cache: Path, sig: int) -> tuple[set[int], float]:
    """Start the study on processes, wait until a job has written answers while another still
    trains, send `sig` to the driver alone; (its workers, seconds until the last one was gone)."""
    env = {**os.environ, "BENCH_CACHE_DIR": str(cache)}
    driver = subprocess.Popen([sys.executable, "-m", "bench", "study", "accuracy", "--config", str(cfg),
                               "--out", str(out), "--executor", "processes", "--quiet"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    workers: set[int] = set()
    deadline = time.time() + 120
    while time.time() < deadline and driver.poll() is None:
        workers |= workers_of(driver.pid)
        if any(p.stat().st_size for p in out.glob("predictions/*.jsonl")):
            break
        time.sleep(0.1)
    assert driver.poll() is None, "the run ended before it could be stopped: " + driver.stderr.read().decode()[-500:]
    workers |= workers_of(driver.pid)
    sent = time.time()
    driver.send_signal(sig)
    driver.wait(timeout=60)
    while any(alive(w) for w in workers) and time.time() < sent + 30:
        time.sleep(0.1)
    return workers, time.time() - sent


@pytest.mark.skipif(processes.machine_cpus() < 2, reason="needs two cores: a job answering beside one training")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_a_stopped_run_stops_its_workers_and_resumes_without_repeats(sig, micro_pocket, tmp_path):
    # lora trains first (400 steps, ~10 s); closed_book and rag answer in the other worker
    # meanwhile: the run is stopped once they have written answers, while lora still trains
    cfg = config(tmp_path / "accuracy.yaml", micro_pocket[0], seeds="[0]",
                 lora="{rank: 4, alpha: 8, steps: 400, batch_size: 4}")
    out, cache = tmp_path / "out", tmp_path / "cache"
    workers, gone_after = start_and_stop(cfg, out, cache, sig)
    assert len(workers) >= 1 and not any(alive(w) for w in workers)
    # Ctrl-C terminates them mid-job; after kill -9 each notices within a second that its driver
    # is gone: lora's adapter, still training, was never finished (not left to train on unseen)
    assert gone_after < 5
    assert not list(cache.glob("adapters/*/stats.json"))
    kept = {p.name: p.read_text() for p in out.glob("predictions/*.jsonl") if p.stat().st_size}
    assert kept and not (out / "items.csv").exists()
    with executors.using("processes"):
        run_study("accuracy", cfg, out, cache_dir=cache, progress=False)
    items = load_item_table(out / "items.csv")
    assert len(items) == 4 * 6 and not items.duplicated(["item_id", "arm", "seed"]).any()
    for name, text in kept.items():   # finished answers were kept, not answered again
        assert (out / "predictions" / name).read_text().startswith(text)
