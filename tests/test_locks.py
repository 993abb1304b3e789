"""Two runs never corrupt each other: a results folder has one run at a time (a second refuses,
naming the holder's pid), a cache entry is built by one run while another waits, a killed
holder frees its locks, and a prediction log never keeps two rows for an item."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from bench.locks import FolderBusy, entry_lock, folder_lock
from bench.predictions import PredictionLog

ROOT = Path(__file__).parents[1]
HOLD = ("import sys, time; from bench.locks import folder_lock\n"
        "with folder_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(120)\n")


def hold_in_another_process(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_held_folder_refuses_a_second_run_and_a_killed_holder_frees_it(tmp_path):
    holder = hold_in_another_process(tmp_path / "out")
    try:
        with pytest.raises(FolderBusy, match=rf"out: in use by another run \(pid {holder.pid}, since "):
            with folder_lock(tmp_path / "out"):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with folder_lock(tmp_path / "out"):          # the kernel dropped the dead holder's lock
        assert f"pid {os.getpid()}" in (tmp_path / "out" / ".lock").read_text()


def test_one_run_builds_a_cache_entry_while_another_waits(tmp_path):
    spans = []

    def build(name):
        with entry_lock(tmp_path, "index-x"):
            start = time.monotonic()
            time.sleep(0.3)
            spans.append((start, time.monotonic(), name))

    threads = [threading.Thread(target=build, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (s1, e1, _), (s2, e2, _) = sorted(spans)
    assert e1 <= s2                                # never two builders at once
    assert sorted(p.name for p in (tmp_path / "locks").iterdir()) == ["index-x.lock"]


def test_a_prediction_log_keeps_one_row_per_item(tmp_path):
    log = PredictionLog(tmp_path / "p.jsonl")
    log.append([{"item_id": "a", "prediction": "x"}, {"item_id": "b", "prediction": "y"}])
    log.append([{"item_id": "a", "prediction": "other"}, {"item_id": "c", "prediction": "z"}])
    assert len(log.path.read_text().splitlines()) == 3          # no second line for 'a'
    with log.path.open("a") as f:                               # a duplicate that got in anyway
        f.write(json.dumps({"item_id": "b", "prediction": "dup"}) + "\n")
    assert [(r["item_id"], r["prediction"]) for r in log.rows()] == [("a", "x"), ("b", "y"), ("c", "z")]


def test_a_second_run_on_a_busy_results_folder_refuses_and_the_table_stays_a_single_runs(micro_pocket, tmp_path):
    config = tmp_path / "p.yaml"
    config.write_text("name: popularity\nstudy: {bucket_starts: [1, 2], min_items_per_bucket: 1}\n"
                      "data: {world: {entities: 8}, eval_splits: [test]}\nseeds: [0]\n"
                      f"model: {{name: '{micro_pocket[0]}', max_new_tokens: 3, batch_size: 8}}\n"
                      "arms: [{arm: closed_book}, {arm: rag, retrieval: {k: 1}}]\n")

    def run(out: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bench", "study", "popularity", "--config", str(config),
                               "--out", str(out), "--quiet"], capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "BENCH_CACHE_DIR": str(tmp_path / "cache")})

    out = tmp_path / "out"
    holder = hold_in_another_process(out)          # the first run, still going
    try:
        second = run(out)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert second.returncode == 2
    errors = second.stderr.strip().splitlines()
    assert errors == [f"error: {out}: in use by another run (pid {holder.pid}, since "
                      f"{errors[0].split('since ')[1]}"]          # one line, naming the holder
    assert sorted(p.name for p in out.iterdir()) == [".lock"]   # nothing written
    assert run(out).returncode == 0                 # the folder is free once the holder is gone
    assert run(out).returncode == 0                 # and a rerun replays, adding nothing
    alone = tmp_path / "alone"
    assert run(alone).returncode == 0
    items, single = pd.read_csv(out / "items.csv"), pd.read_csv(alone / "items.csv")
    assert not items.duplicated(["arm", "seed", "item_id"]).any()
    cols = ["arm", "seed", "item_id", "prediction", "exact_match"]
    pd.testing.assert_frame_equal(items[cols], single[cols])
    assert all(len(p.read_text().splitlines()) == len({json.loads(line)["item_id"] for line in
                                                        p.read_text().splitlines()})
               for p in (out / "predictions").glob("*.jsonl"))


def _open_client(root: str, barrier) -> str:
    from bench.retrieval.store import _client

    barrier.wait()   # every process opens the fresh root at the same moment
    try:
        _client(Path(root)).heartbeat()
        return "ok"
    except Exception as e:   # noqa: BLE001 - the message is the result
        return f"{type(e).__name__}: {e}"


def test_processes_opening_one_fresh_chroma_root_at_once_all_succeed(tmp_path):
    """Two Ray workers building their first index under one cache root at once: chroma creates
    its tables on a root's first open, and two creators failed with 'table collections already
    exists' (seen in a `make quick` through Ray) until the open took the root's lock."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    for attempt in range(3):
        with ctx.Manager() as manager, ctx.Pool(4) as pool:
            barrier = manager.Barrier(4)
            root = str(tmp_path / f"chroma-{attempt}")
            assert pool.starmap(_open_client, [(root, barrier)] * 4) == ["ok"] * 4
