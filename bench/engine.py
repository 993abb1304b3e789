"""The executor: jobs -> cached, resumable predictions. Every study that answers questions
comes through here.

A job is one arm (kind + settings, with its label), one model, one seed, one view of the data
and the items to answer. Its answers go to a prediction log named by the job's key, a hash of
everything that changes them (code version, arm kind and settings, model settings and identity,
data config, view, seed); timings and labels do not count. A job whose log already holds every
item loads no model. Otherwise the arm is prepared (model loaded, adapter trained or loaded from
its content-hash cache, index built or opened), answers the missing items in batches, and each
batch is appended and fsynced, so a killed run resumes where it stopped. One job's model is
closed before the next job's loads. `run_jobs` runs the jobs here, in order, or with
`--executor processes` / `ray` in worker processes or Ray tasks, each the same `run_job` in a
worker (bench.executors).

Studies that must act between answers (freshness updates the arm in place between its two
passes) use the same pieces: `open_arm` and `answer_rows`.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from bench.config import CACHE_DIR, ArmConfig, DataConfig, ModelConfig, content_hash, key_dict
from bench.io import write_json

# Bump when code changes what an arm answers (prompting, retrieval, decoding): saved
# predictions from older code then stop matching and are recomputed, not silently replayed.
ANSWER_CODE_VERSION = 2
# items handed to an arm at once, in generator batches (see run_job)
ANSWER_CHUNK_BATCHES = 4


@dataclass(frozen=True)
class Job:
    arm: ArmConfig
    seed: int
    model: ModelConfig
    data: DataConfig                    # what the dataset was built from (part of the key)
    dataset: object = field(default=None, compare=False, repr=False)   # the Dataset the arm prepares on
    items: tuple = field(default=(), compare=False, repr=False)        # the QA items to answer
    view: str | None = None             # a named view of the data (a training subset, a probe set)
    tag: str = ""                       # extra label in the log's file name
    store: object = field(default=None, compare=False, repr=False)   # a vector store to answer from

    @property
    def label(self) -> str:
        return f"{self.arm.name}{self.tag}-s{self.seed}"

    def key(self) -> str:
        from bench.models.chat import chat_identity
        from bench.models.resolve import model_identity

        parts = {"code": ANSWER_CODE_VERSION, "kind": self.arm.arm, "settings": key_dict(self.arm.settings),
                 "seed": self.seed, "model": key_dict(self.model), "data": key_dict(self.data),
                 "model_identity": model_identity(self.model.name)}
        if self.view is not None:
            parts["view"] = self.view
        chat = chat_identity(self.model)   # an instruct model's system message and demonstrations
        if chat is not None:
            parts["chat"] = chat
        return content_hash(parts, n=12)

    def log_path(self, out_dir: Path) -> Path:
        return Path(out_dir) / "predictions" / f"{self.label}-{self.key()}.jsonl"


@dataclass
class JobResult:
    job: Job
    rows: list[dict]                    # one per item of the job, in the log's order
    stats: dict                         # what prepare() measured (train/index seconds, cache hits)

    def stats_row(self) -> dict:
        return {"arm": self.job.arm.name, "arm_kind": self.job.arm.arm, "seed": self.job.seed, **self.stats}


def item_row(item, job: Job) -> dict:
    meta = item.meta or {}
    return {"item_id": item.id, "arm": job.arm.name, "arm_kind": job.arm.arm, "seed": job.seed,
            "split": item.split, "kind": meta.get("kind", "answerable" if item.answers else "unanswerable"),
            "popularity": meta.get("popularity"), "question": item.question,
            "answers": list(item.answers), "gold_ids": list(item.gold_ids),
            "meta": json.dumps(meta, sort_keys=True)}


@contextlib.contextmanager
def open_arm(job: Job, cache_dir: Path = CACHE_DIR, progress: bool = True):
    """(prepared arm, prepare stats); the arm's models are freed on exit."""
    from bench.arms.base import ArmEnv
    from bench.arms.registry import get_arm_class

    env = ArmEnv(job.model, job.dataset, job.seed, Path(cache_dir), progress, store=job.store)
    arm = get_arm_class(job.arm.arm)(job.arm.settings, env)
    try:
        start = time.perf_counter()
        stats = arm.prepare()
        stats["prepare_seconds"] = round(time.perf_counter() - start, 3)
        yield arm, stats
    finally:
        arm.close()   # free this arm's model before the next one loads


def answer_rows(arm, job: Job, items: Sequence) -> list[dict]:
    """The arm's answers to `items` as prediction rows (one batch)."""
    from bench.arms.base import STAGES

    rows = []
    for item, a in zip(items, arm.answer(items)):
        row = item_row(item, job)
        row.update(prediction=a.prediction, prompt_tokens=a.prompt_tokens,
                   completion_tokens=a.completion_tokens, contexts=a.contexts,
                   retrieved_ids=a.retrieved_ids, retrieval_scores=a.scores,
                   **{f"t_{s}": a.seconds[s] for s in STAGES})
        rows.append(row)
    return rows


def run_job(job: Job, out_dir: Path, cache_dir: Path = CACHE_DIR, progress: bool = True) -> JobResult:
    from bench.predictions import PredictionLog

    log = PredictionLog(job.log_path(out_dir))
    stats_path = log.path.with_suffix(".prepare.json")
    done = log.done_ids()
    todo = [q for q in job.items if q.id not in done]
    if todo:
        with open_arm(job, cache_dir, progress) as (arm, stats):
            write_json(stats, stats_path)   # atomic: a job killed here leaves no half file
            # a few batches at a time: the generator sorts them by prompt length, so each batch
            # pads less; every chunk is appended and fsynced before the next
            size = job.model.batch_size * ANSWER_CHUNK_BATCHES
            bar = tqdm(total=len(job.items), initial=len(job.items) - len(todo), desc=job.label,
                       disable=not progress, leave=False)
            for i in range(0, len(todo), size):
                batch = todo[i:i + size]
                log.append(answer_rows(arm, job, batch))
                bar.update(len(batch))
            bar.close()
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    wanted = {q.id for q in job.items}
    return JobResult(job, [r for r in log.rows() if r["item_id"] in wanted], stats)


@contextlib.contextmanager
def torch_threads(n: int):
    """Run with n torch intra-op threads (0 = leave torch's default), restored afterwards."""
    if n <= 0:
        yield
        return
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# The share of this machine the running job holds: 1 on the local executor (one job at a time,
# the machine is its own), a Ray task's CPUs over its node's. A trained adapter records it, so
# the cost study prices the machine time a job really took, not a half machine's seconds as a
# whole one's (two one-thread jobs at once each take longer than one two-thread job).
_MACHINE_SHARE = 1.0


@contextlib.contextmanager
def machine_share(share: float):
    global _MACHINE_SHARE
    before, _MACHINE_SHARE = _MACHINE_SHARE, min(1.0, max(share, 0.0))
    try:
        yield
    finally:
        _MACHINE_SHARE = before


def current_machine_share() -> float:
    return _MACHINE_SHARE


def run_jobs(jobs: Sequence[Job], out_dir: Path | str, cache_dir: Path | str = CACHE_DIR,
             progress: bool = True, desc: str = "jobs") -> list[JobResult]:
    """Run every job (resuming finished work); one result per job, in the jobs' order. The
    executor in force (bench.executors: --executor / BENCH_EXECUTOR) runs them here, in order
    (local), in worker processes several at once (processes), or as Ray tasks (ray)."""
    from bench.executors import current

    out_dir, cache_dir = Path(out_dir), Path(cache_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if current() == "ray":
        from bench.executors import run_jobs_ray   # imports ray only on this path

        return run_jobs_ray(jobs, out_dir, cache_dir, progress, desc)
    if current() == "processes":
        from bench.processes import run_jobs_processes

        return run_jobs_processes(jobs, out_dir, cache_dir, progress, desc)
    results = []
    bar = tqdm(jobs, desc=desc, disable=not progress)
    for job in bar:
        bar.set_postfix_str(job.label)
        with torch_threads(job.model.threads):
            results.append(run_job(job, out_dir, cache_dir, progress))
    return results
