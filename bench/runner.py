"""config -> cells (arm x seed) -> predictions (resumable) -> scored table.

Everything that can be wrong with a config or its data is checked before the first model
loads. Each cell answers in batches and appends every batch to its prediction log, so a killed
run resumes where it stopped. One arm's model is closed before the next arm's loads.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from bench.arms.base import STAGES, ArmEnv
from bench.arms.registry import get_arm_class
from bench.config import CACHE_DIR, ArmConfig, ExperimentConfig, content_hash, key_dict
from bench.data.dataset import Dataset, build_dataset
from bench.models.resolve import model_identity, resolve_model
from bench.predictions import PredictionLog

# Bump when code changes what an arm answers (prompting, retrieval, decoding): saved
# predictions from older code then stop matching and are recomputed, not silently replayed.
ANSWER_CODE_VERSION = 2


@dataclass(frozen=True)
class Cell:
    arm: ArmConfig
    seed: int

    @property
    def label(self) -> str:
        return f"{self.arm.name}-s{self.seed}"

    def key(self, cfg: ExperimentConfig) -> str:
        """Everything that changes this cell's answers; timings and labels do not count."""
        return content_hash({"code": ANSWER_CODE_VERSION, "kind": self.arm.arm, "settings": key_dict(self.arm.settings),
                             "seed": self.seed, "model": key_dict(cfg.model), "data": key_dict(cfg.data),
                             "model_identity": model_identity(cfg.model.name)},
                            n=12)


def cells(cfg: ExperimentConfig) -> list[Cell]:
    return [Cell(arm, seed) for arm in cfg.arms for seed in cfg.seeds]


def eval_items(cfg: ExperimentConfig, dataset: Dataset, seed: int):
    d = cfg.data
    return dataset.eval_items(d.eval_splits, d.max_items, seed, paraphrases=d.paraphrases_as_items)


def preflight(cfg: ExperimentConfig) -> dict[int, Dataset]:
    """Fail before any training: the model must resolve and every seed's data must load."""
    resolve_model(cfg.model.name)
    datasets = {seed: build_dataset(cfg.data, seed) for seed in cfg.seeds}
    for seed, ds in datasets.items():
        if not eval_items(cfg, ds, seed):
            raise ValueError(f"{ds.name}: no QA items in split(s) {list(cfg.data.eval_splits)}")
    return datasets


def item_row(item, cell: Cell) -> dict:
    meta = item.meta or {}
    return {"item_id": item.id, "arm": cell.arm.name, "arm_kind": cell.arm.arm, "seed": cell.seed,
            "split": item.split, "kind": meta.get("kind", "answerable" if item.answers else "unanswerable"),
            "popularity": meta.get("popularity"), "question": item.question,
            "answers": list(item.answers), "gold_ids": list(item.gold_ids),
            "meta": json.dumps(meta, sort_keys=True)}


def run_cell(cfg: ExperimentConfig, cell: Cell, dataset: Dataset, out_dir: Path,
             cache_dir: Path, progress: bool) -> list[dict]:
    log = PredictionLog(out_dir / "predictions" / f"{cell.label}-{cell.key(cfg)}.jsonl")
    stats_path = log.path.with_suffix(".prepare.json")
    items = eval_items(cfg, dataset, cell.seed)
    done = log.done_ids()
    todo = [q for q in items if q.id not in done]
    if todo:
        arm = get_arm_class(cell.arm.arm)(cell.arm.settings, ArmEnv(cfg.model, dataset, cell.seed,
                                                                    cache_dir, progress))
        try:
            start = time.perf_counter()
            stats = arm.prepare()
            stats["prepare_seconds"] = round(time.perf_counter() - start, 3)
            stats_path.write_text(json.dumps(stats, indent=1, default=str))
            size = cfg.model.batch_size
            bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=cell.label,
                       disable=not progress, leave=False)
            for i in range(0, len(todo), size):
                batch = todo[i:i + size]
                rows = []
                for item, a in zip(batch, arm.answer(batch)):
                    row = item_row(item, cell)
                    row.update(prediction=a.prediction, prompt_tokens=a.prompt_tokens,
                               completion_tokens=a.completion_tokens, contexts=a.contexts,
                               retrieved_ids=a.retrieved_ids, retrieval_scores=a.scores,
                               **{f"t_{s}": a.seconds[s] for s in STAGES})
                    rows.append(row)
                log.append(rows)
                bar.update(len(batch))
            bar.close()
        finally:
            arm.close()   # free this arm's model before the next one loads
    wanted = {q.id for q in items}
    rows = [r for r in log.rows() if r["item_id"] in wanted]
    return rows


def cell_stats(cfg: ExperimentConfig, out_dir: Path) -> pd.DataFrame:
    rows = []
    for cell in cells(cfg):
        path = out_dir / "predictions" / f"{cell.label}-{cell.key(cfg)}.prepare.json"
        stats = json.loads(path.read_text()) if path.exists() else {}
        rows.append({"arm": cell.arm.name, "arm_kind": cell.arm.arm, "seed": cell.seed, **stats})
    return pd.DataFrame(rows)


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


def run_experiment(cfg: ExperimentConfig, out_dir: Path | str, cache_dir: Path | str = CACHE_DIR,
                   progress: bool = True) -> pd.DataFrame:
    """Answer every cell (resuming finished work) and return the scored per-item table."""
    from bench.metrics.table import score_rows

    out_dir, cache_dir = Path(out_dir), Path(cache_dir)
    datasets = preflight(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    with torch_threads(cfg.model.threads):
        for cell in tqdm(cells(cfg), desc=cfg.name, disable=not progress):
            rows += run_cell(cfg, cell, datasets[cell.seed], out_dir, cache_dir, progress)
    order = {arm.name: i for i, arm in enumerate(cfg.arms)}
    rows.sort(key=lambda r: (order[r["arm"]], r["seed"], r["item_id"]))
    return score_rows(rows, progress=progress)
