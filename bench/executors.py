"""Where `bench.engine.run_jobs` runs its jobs: `local` (here, one after another: the default) or
`ray` (each job a Ray task on a local or remote cluster).

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
from pathlib import Path
from typing import Sequence

from bench.config import ConfigError

EXECUTORS = ("local", "ray")
ENV = "BENCH_EXECUTOR"

# the CLI's --executor while a command runs (None: BENCH_EXECUTOR decides)
_chosen: str | None = None

# one entry per Ray task of this process, as the worker reported it: {"label", "pid", "node_id"};
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


# -- the Ray path -----------------------------------------------------------------------------------

def trains(job) -> bool:
    """An arm that trains an adapter (lora, hybrid, or any kind with LoRA settings)."""
    return job.arm.arm in ("lora", "hybrid") or getattr(job.arm.settings, "lora", None) is not None


def resources(job, cluster_gpus: float) -> dict:
    """The task's request: its torch threads as CPUs (0, torch's default, asks for one), and a GPU
    for a training job, or any job of a model pinned to cuda, where the cluster has GPUs. Ray
    hides the GPUs from a task that asks for none (CUDA_VISIBLE_DEVICES=""), so `device: auto`
    answers on the CPU there."""
    gpu = cluster_gpus > 0 and (trains(job) or job.model.device.startswith("cuda"))
    return {"num_cpus": max(1, job.model.threads), "num_gpus": 1 if gpu else 0}


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


def _task(job, dataset, out_dir: str, cache_dir: str, cwd: str, cpus: int, after=None):
    """In the worker: the job (its dataset handed over once per cluster as an object), run by
    the local executor's own run_job. `after` only orders jobs sharing a prediction log."""
    import ray

    from bench.engine import run_job, torch_threads

    if os.path.isdir(cwd):   # relative paths in a config (a model folder) mean the driver's
        os.chdir(cwd)
    job = dataclasses.replace(job, dataset=dataset)
    with torch_threads(cpus):   # exactly the CPUs Ray granted, whatever torch would pick
        result = run_job(job, Path(out_dir), Path(cache_dir), progress=False)
    where = {"label": job.label, "pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id()}
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
        ray.init()   # RAY_ADDRESS (Ray's own variable) names a cluster; unset, a local one starts
    gpus = ray.cluster_resources().get("GPU", 0)
    out, cache, cwd, env = str(Path(out_dir).resolve()), str(Path(cache_dir).resolve()), os.getcwd(), worker_env()
    datasets, last_on_log, refs = {}, {}, []
    for job in jobs:
        # each Dataset goes to the object store once, not once per job that answers on it
        if id(job.dataset) not in datasets:
            datasets[id(job.dataset)] = ray.put(job.dataset)
        res = resources(job, gpus)
        bare = dataclasses.replace(job, dataset=None)
        log = job.log_path(out_dir)   # two jobs on one log (same key) run one after the other
        ref = _remote().options(**res, runtime_env=env, name=f"bench:{job.label}").remote(
            bare, datasets[id(job.dataset)], out, cache, cwd, res["num_cpus"], last_on_log.get(log))
        last_on_log[log] = ref
        refs.append(ref)

    order = {ref: i for i, ref in enumerate(refs)}
    results: list = [None] * len(jobs)
    bar = tqdm(total=len(refs), desc=f"{desc} (ray)", disable=not progress)
    pending = list(refs)
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
