"""`--executor processes`: a study's jobs in worker processes on this machine, several at once,
each held to its share of the cores; what `--executor ray` does on one node (the same packing,
the same thread counts, the same ordering of jobs that share a log or an adapter), without Ray.

Why: the pocket model's matrices are too small to keep two cores busy in one job, so `local`
(one job at a time with every core) leaves part of the machine idle, while two one-thread jobs
at once use it (`make accuracy` 472 s that way on Ray against 579 s local, the same morning,
results/perf/make-all.csv). Each job gets the threads a Ray task would get
(`bench.executors.cpu_share`), so a processes run's tables equal a Ray run's. Workers are
spawned, not forked (a forked torch with live threads can hang), and kept for the process's
later `run_jobs` calls (a study may make several, `bench suite` one per study): each worker pays
for importing torch once.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Sequence

from bench.config import ConfigError

# one entry per job of this process's processes runs, as its worker reported it: {"label", "pid",
# "threads", "start", "end"}; says where and beside what each job ran (a check for tests)
TASKS: list[dict] = []


def machine_cpus() -> int:
    """The cores this process may use (its affinity, which a container's cpuset narrows)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not on Linux
        return os.cpu_count() or 1


def _watch_parent(parent: int) -> None:
    """In each worker: exit when the driver is gone (killed with -9, it cannot stop its pool;
    the worker would otherwise wait on its queue forever, holding a core's worth of memory)."""
    def watch():
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


def _task(job, out_dir: str, cache_dir: str, threads: int, cpus: int):
    """In the worker: the local executor's own run_job, at `threads` torch threads, recording
    that it held threads/cpus of the machine (the cost study prices that share)."""
    from bench.engine import machine_share, run_job, torch_threads

    start = time.time()
    with torch_threads(threads), machine_share(threads / cpus):
        result = run_job(job, Path(out_dir), Path(cache_dir), progress=False)
    where = {"label": job.label, "pid": os.getpid(), "threads": threads, "start": start, "end": time.time()}
    return result.rows, result.stats, where


def plan(jobs: Sequence, out_dir: Path, cpus: int) -> tuple[list[int], dict[int, set], list[int]]:
    """(start order, {job: jobs it waits for}, threads per job). Order: the most training first
    (as on Ray); a job waits for the latest earlier job on its log or adapter; threads: the
    job's own `threads`, else the machine split among the study's jobs."""
    from bench.executors import cpu_share, serial_keys, submission_order

    order = submission_order(jobs)
    share = cpu_share(len(jobs), cpus, cpus)
    last: dict = {}
    after: dict[int, set] = {}
    for i in order:
        keys = serial_keys(jobs[i], out_dir)
        after[i] = {last[k] for k in keys if k in last}
        last.update(dict.fromkeys(keys, i))
    threads = [job.model.threads if job.model.threads > 0 else share for job in jobs]
    return order, after, threads


# this process's workers, and what they were spawned with (see _pool)
_POOL: ProcessPoolExecutor | None = None
_POOL_KEY: tuple = ()


def _pool() -> ProcessPoolExecutor:
    """The process's pool, one worker per core at most (spawned as jobs need them). Reused while
    the environment and folder it was spawned in hold: a worker reads BENCH_CACHE_DIR and the
    offline switches once, at import, so a changed environment gets fresh workers."""
    import multiprocessing

    global _POOL, _POOL_KEY
    key = (tuple(sorted(os.environ.items())), os.getcwd(), machine_cpus())
    if _POOL is None or key != _POOL_KEY:
        if _POOL is not None:
            _POOL.shutdown(wait=True)
        _POOL = ProcessPoolExecutor(machine_cpus(), mp_context=multiprocessing.get_context("spawn"),
                                    initializer=_watch_parent, initargs=(os.getpid(),))
        _POOL_KEY = key
    return _POOL


def _stop(pool: ProcessPoolExecutor) -> None:
    """Stop the workers now, mid-job: an interrupted run keeps what its logs hold (every answered
    batch was fsynced) and resumes from there; waiting for a job to finish could take minutes.
    The next call spawns new ones."""
    global _POOL
    for proc in list(getattr(pool, "_processes", {}).values()):
        proc.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    _POOL = None


def run_jobs_processes(jobs: Sequence, out_dir: Path, cache_dir: Path, progress: bool, desc: str) -> list:
    """Every job in a worker process, as many at once as their threads fit the cores; results in
    the jobs' order, a progress bar over finished jobs."""
    from tqdm import tqdm

    from bench.engine import JobResult

    if not jobs:
        return []
    if any(job.store is not None for job in jobs):
        raise ConfigError("executor processes: a job answering from a vector store handed in (a live "
                          "object of this process) cannot go to a worker; run it with --executor local")
    cpus = machine_cpus()
    order, after, threads = plan(jobs, out_dir, cpus)
    # a job asking for more threads than the machine has still runs, alone
    need = [min(t, cpus) for t in threads]
    out, cache = str(Path(out_dir).resolve()), str(Path(cache_dir).resolve())
    waiting, running, done, used = list(order), {}, set(), 0
    results: list = [None] * len(jobs)
    pool = _pool()
    bar = tqdm(total=len(jobs), desc=f"{desc} (processes)", disable=not progress)
    try:
        while waiting or running:
            for i in list(waiting):   # in start order; a job waiting on another lets later ones pass
                if after[i] <= done and (used + need[i] <= cpus or not running):
                    running[pool.submit(_task, jobs[i], out, cache, threads[i], cpus)] = i
                    used += need[i]
                    waiting.remove(i)
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                i = running.pop(future)
                used -= need[i]
                rows, stats, where = future.result()   # a job's error is raised here, as it was raised
                results[i] = JobResult(jobs[i], rows, stats)
                TASKS.append(where)
                done.add(i)
                bar.set_postfix_str(jobs[i].label)
                bar.update(1)
    except BaseException:
        _stop(pool)   # a failed or interrupted run stops its other jobs, as a local one would
        raise
    finally:
        bar.close()
    return results
