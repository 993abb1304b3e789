"""Where `bench.engine.run_jobs` runs its jobs: `local` (here, one after another: the default),
`processes` (worker processes on this machine, several jobs at once: bench.processes) or `ray`
(each job a Ray task on a local or remote cluster).

The choice: `--executor` on `bench run/study/profile`, else the `BENCH_EXECUTOR` variable (so
`make all BENCH_EXECUTOR=ray` works), else local. With ray, Ray's own `RAY_ADDRESS` picks the
cluster (`auto`, `ray://head:10001`); unset, `ray.init()` starts a local one. Ray is imported
only on the ray path, so a local run never loads it.

A Ray task runs the very `run_job` a local run does, so logs and caches keep their layout and a
Ray run's prediction logs and per-item table equal a local run's (timings aside). The workers
write them, so `out_dir` and `cache_dir` are handed over as absolute paths and must be folders
every node sees (one machine, or a shared filesystem: NFS, EFS, a ReadWriteMany volume). Jobs
that share a cache entry (lora and hybrid train one adapter) may run at once on different
nodes: the entry's `bench.locks.entry_lock` (an flock in `<cache_dir>/locks/`) makes the second
wait for the first and reuse its work, which holds on a shared filesystem whose locks reach
every node (NFSv4, EFS; not a node-local disk).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path
from typing import Sequence

from bench.config import ConfigError

EXECUTORS = ("local", "processes", "ray")
ENV = "BENCH_EXECUTOR"

# the CLI's --executor while a command runs (None: BENCH_EXECUTOR decides)
_chosen: str | None = None

# one entry per Ray task of this process, as the worker reported it: {"label", "pid", "node_id",
# "threads", "start", "end"};
# says where each job ran (a check for tests, a trace for users)
RAY_TASKS: list[dict] = []

# the variables a worker must share with the driver: offline switches, the cache folder (models
# converted once, e.g. the packaged GGUFs, are found through it), tokenizer threads, the hub cache
PASSED_ENV = ("BENCH_OFFLINE", "HF_HUB_OFFLINE", "TOKENIZERS_PARALLELISM", "HF_HOME")


def check(name: str, where: str) -> str:
    if name not in EXECUTORS:
        raise ConfigError(f"{where}: unknown executor {name!r}; choices: {', '.join(EXECUTORS)}")
    return name


def current() -> str:
    """The executor in force: --executor, else BENCH_EXECUTOR, else local."""
    if _chosen is not None:
        return check(_chosen, "--executor")
    return check(os.environ.get(ENV) or "local", ENV)


@contextlib.contextmanager
def using(name: str | None):
    """Run with this executor (None: BENCH_EXECUTOR decides), checked on entry, restored after."""
    global _chosen
    before = _chosen
    if name is not None:
        check(name, "--executor")
    _chosen = name
    try:
        current()   # a bad BENCH_EXECUTOR fails here, before any model loads
        yield
    finally:
        _chosen = before


@contextlib.contextmanager
def timing_here(timed: bool):
    """For a study that measures wall time: its jobs run here, one after another, when only
    BENCH_EXECUTOR asks for workers (`make all`, whose default is processes, or
    `make all BENCH_EXECUTOR=ray`): workers sharing the cores would time each other's load, at
    another thread count. `--executor ray` / `processes` on the command line still sends them
    to the workers."""
    if not timed or _chosen is not None or current() == "local":
        yield
        return
    print(f"executor: local for this study, which measures time ({ENV}={current()} ignored; "
          f"--executor {current()} overrides)", flush=True)
    with using("local"):
        yield


# -- the Ray path -----------------------------------------------------------------------------------

def trains(job) -> bool:
    """An arm that trains an adapter (lora, hybrid, or any kind with LoRA settings)."""
    return job.arm.arm in ("lora", "hybrid") or getattr(job.arm.settings, "lora", None) is not None


def resources(job, cluster_gpus: float, share: int = 1) -> dict:
    """The task's request: its torch threads as CPUs (0, torch's default, asks for `share`: see
    cpu_share), and a GPU for a training job, or any job of a model pinned to cuda, where the
    cluster has GPUs. Ray hides the GPUs from a task that asks for none (CUDA_VISIBLE_DEVICES=""),
    so `device: auto` answers on the CPU there."""
    gpu = cluster_gpus > 0 and (trains(job) or job.model.device.startswith("cuda"))
    return {"num_cpus": job.model.threads if job.model.threads > 0 else max(1, share),
            "num_gpus": 1 if gpu else 0}


def cpu_share(n_jobs: int, cluster_cpus: float, node_cpus: float) -> int:
    """CPUs for each job whose threads are 0: the cluster's CPUs split among the jobs, at most
    one node's. On two cores two jobs get one thread each (the pocket model's matrices are too
    small to keep two cores busy in one job: `make accuracy` 638 s this way against 890 s one
    two-thread job at a time, results/perf/make-all.csv), while a study's lone job gets both."""
    return max(1, min(int(node_cpus), int(cluster_cpus // max(1, n_jobs))))


def adapter_group(job) -> str | None:
    """Jobs that need the same adapter (same model, data, view, seed, training data and LoRA
    settings: lora and hybrid of one recipe) share this; None for a job that trains nothing.
    They run one after the other, so the second loads the adapter the first trained instead of
    holding CPUs while it waits on the adapter's lock."""
    from bench.config import content_hash, key_dict

    if not trains(job):
        return None
    settings = job.arm.settings
    parts = {"model": key_dict(job.model), "data": key_dict(job.data), "view": job.view, "seed": job.seed,
             "lora": key_dict(settings.lora)}
    if getattr(settings, "training", None) is not None:
        parts["training"] = key_dict(settings.training)
    return content_hash(parts)


def training_work(job) -> int:
    """A job's LoRA work in examples (steps x batch size; 0 for a job that trains nothing): a
    proxy for how long its task runs, which is mostly training."""
    lora = getattr(job.arm.settings, "lora", None)
    return lora.steps * lora.batch_size if trains(job) and lora is not None else 0


def submission_order(jobs: Sequence) -> list[int]:
    """Job indices, the most training first (ties keep their order: lora before the hybrid that
    loads its adapter). Ray starts tasks in the order they arrive, so submitted as listed a
    study's longest adapter could start last and train alone on one thread at the end; longest
    first, the short jobs fill the other CPUs at the end instead."""
    return sorted(range(len(jobs)), key=lambda i: -training_work(jobs[i]))


def serial_keys(job, out_dir: Path) -> list[tuple]:
    """What a job shares with others that must run before or after it, not beside it: its
    prediction log (two jobs with one key) and its adapter (lora and hybrid of one recipe). An
    executor that runs jobs at once starts a job only after the latest earlier job holding any
    of its keys has finished."""
    group = adapter_group(job)
    return [("log", job.log_path(out_dir))] + ([("adapter", group)] if group else [])


def worker_env() -> dict:
    """runtime_env for the tasks: the driver's settings, and its checkout on PYTHONPATH so a
    node whose venv lacks the editable install still imports `bench` from the shared folder
    (Ray expands ${PYTHONPATH} on the node, to nothing when unset there)."""
    from bench.config import CACHE_DIR

    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    env["BENCH_CACHE_DIR"] = str(Path(CACHE_DIR).resolve())   # relative .cache means the driver's
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + "${PYTHONPATH}"
    return {"env_vars": env}


def _task(job, dataset, out_dir: str, cache_dir: str, cwd: str, cpus: int, *after):
    """In the worker: the job (its dataset handed over once per cluster as an object), run by
    the local executor's own run_job. `after` (results of earlier tasks, resolved by Ray before
    this one starts) only orders jobs sharing a prediction log or an adapter."""
    import ray

    from bench.engine import machine_share, run_job, torch_threads

    if os.path.isdir(cwd):   # relative paths in a config (a model folder) mean the driver's
        os.chdir(cwd)
    job = dataclasses.replace(job, dataset=dataset)
    start = time.time()
    # exactly the CPUs Ray granted, whatever torch would pick; the rest of the node runs other tasks
    with torch_threads(cpus), machine_share(cpus / (os.cpu_count() or cpus)):
        result = run_job(job, Path(out_dir), Path(cache_dir), progress=False)
    where = {"label": job.label, "pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id(),
             "threads": cpus, "start": start, "end": time.time()}
    return result.rows, result.stats, where


_REMOTE = None


def _remote():
    import ray

    global _REMOTE
    if _REMOTE is None:
        # failed jobs are not retried as exceptions (a config error stays one); a lost worker is
        # retried by Ray's default, and run_job resumes its log where the worker stopped
        _REMOTE = ray.remote(_task)
    return _REMOTE


def run_jobs_ray(jobs: Sequence, out_dir: Path, cache_dir: Path, progress: bool, desc: str) -> list:
    """Every job as a Ray task; results in the jobs' order, a progress bar over finished tasks."""
    try:
        import ray
    except ImportError:
        raise ConfigError("executor ray: the ray package is not installed (pip install 'ray>=2.50')") from None
    from ray.exceptions import RayTaskError
    from tqdm import tqdm

    from bench.data.loaders import DataError
    from bench.engine import JobResult
    from bench.models.resolve import ModelNotFound

    if not jobs:   # nothing to run: no cluster to start or join
        return []
    if any(job.store is not None for job in jobs):
        raise ConfigError("executor ray: a job answering from a vector store handed in (a live "
                          "object of this process) cannot go to a worker; run it with --executor local")
    if not ray.is_initialized():
        # RAY_ADDRESS (Ray's own variable) names a cluster; unset, a local one starts, without
        # the dashboard (a process that would take CPU from the jobs)
        ray.init(**({} if os.environ.get("RAY_ADDRESS") else {"include_dashboard": False}))
    cluster = ray.cluster_resources()
    gpus = cluster.get("GPU", 0)
    node_cpus = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=1)
    share = cpu_share(len(jobs), cluster.get("CPU", 1), node_cpus)
    out, cache, cwd, env = str(Path(out_dir).resolve()), str(Path(cache_dir).resolve()), os.getcwd(), worker_env()
    # last: the latest task on a prediction log / an adapter; order: each task's job index
    datasets, last, order = {}, {}, {}
    for i in submission_order(jobs):
        job = jobs[i]
        # each Dataset goes to the object store once, not once per job that answers on it
        if id(job.dataset) not in datasets:
            datasets[id(job.dataset)] = ray.put(job.dataset)
        res = resources(job, gpus, share)
        bare = dataclasses.replace(job, dataset=None)
        keys = serial_keys(job, out_dir)
        after = list({id(last[k]): last[k] for k in keys if k in last}.values())   # each task once
        ref = _remote().options(**res, runtime_env=env, name=f"bench:{job.label}").remote(
            bare, datasets[id(job.dataset)], out, cache, cwd, res["num_cpus"], *after)
        last.update(dict.fromkeys(keys, ref))
        order[ref] = i

    results: list = [None] * len(jobs)
    bar = tqdm(total=len(order), desc=f"{desc} (ray)", disable=not progress)
    pending = list(order)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            i = order[done[0]]
            rows, stats, where = ray.get(done[0])
            results[i] = JobResult(jobs[i], rows, stats)
            RAY_TASKS.append(where)
            bar.set_postfix_str(jobs[i].label)
            bar.update(1)
    except BaseException as e:
        for ref in pending:   # a failed or interrupted run stops its other jobs, as a local one would
            ray.cancel(ref)
        cause = e.cause if isinstance(e, RayTaskError) else None
        if isinstance(cause, (ConfigError, DataError, ModelNotFound)):
            raise cause from None   # the bench's one-line errors (config, data, model) stay one line
        raise
    finally:
        bar.close()
    return results
