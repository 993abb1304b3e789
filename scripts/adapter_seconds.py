"""How much of a run was LoRA training: the adapters each study trained (not found in the cache)
and their recorded seconds, from the `*.prepare.json` stats every adapted job writes beside its
prediction log.

`machine_seconds` is seconds x the share of the machine the training held (`train_machine_share`:
a Ray task's CPUs over its node's, 1 for a local run; 1 where an older adapter did not record
it). Summed, it is the least wall time those adapters can take on this machine however the jobs
are packed: with `make all BENCH_EXECUTOR=ray` on two cores, two one-thread adapters at a time,
each holding half the machine. Training outside the adapter store (probes' adapter, freshness's
retraining, coldstart's timed starts) is not counted.

`trained_again`: prepare files of jobs that trained an adapter an earlier job (first in path
order) had trained already, instead of finding it in the shared adapter store; their seconds are
not added. One `make all` from an empty cache should have none: each is listed by path.

Run: .venv/bin/python scripts/adapter_seconds.py [results] [--csv out.csv] [--by-label]
(--csv also writes the table, total row last, for a report to cite).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path


# a prepare file's name: <job label>-s<seed>-<log key>.prepare.json
LABEL = re.compile(r"^(?P<label>.+)-s\d+-[0-9a-f]+\.prepare\.json$")


def adapters(results: Path, by_label: bool = False) -> tuple[dict[str, dict], list[tuple[Path, Path]]]:
    """({folder: {"trained", "seconds", "machine_seconds", "trained_again"}}, repeats): each adapter counted once
    (its key); folder: where a study keeps its prediction logs, under `results` (accuracy,
    format/runs, ...), or with `by_label` folder/label, the job's label without its seed (one row
    per arm or setting: data-scaling's lora-n=500+para+recipe). repeats: (prepare file, the first
    one's) for every adapter a second job trained again instead of finding it in the store; one
    run of `make all` should have none."""
    first: dict[str, Path] = {}
    out: dict[str, dict] = {}
    repeats: list[tuple[Path, Path]] = []
    for stats_file in sorted(results.glob("**/predictions/*.prepare.json")):
        try:
            stats = json.loads(stats_file.read_text())
        except ValueError as e:   # written atomically now; runs before 629b3ac could leave one cut short
            raise ValueError(f"{stats_file}: not JSON ({e}); expected a job's prepare stats") from None
        key = stats.get("adapter_key")
        if key is None or stats.get("adapter_cached") or "train_seconds" not in stats:
            continue
        folder = stats_file.parent.parent.relative_to(results).as_posix()
        label = LABEL.match(stats_file.name)
        if by_label:
            folder += "/" + (label["label"] if label else stats_file.name.removesuffix(".prepare.json"))
        row = out.setdefault(folder, {"trained": 0, "seconds": 0.0, "machine_seconds": 0.0, "trained_again": 0})
        if key in first:
            repeats.append((stats_file, first[key]))
            row["trained_again"] += 1
            continue
        first[key] = stats_file
        row["trained"] += 1
        row["seconds"] += stats["train_seconds"]
        row["machine_seconds"] += stats["train_seconds"] * stats.get("train_machine_share", 1.0)
    return out, repeats


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="LoRA training seconds of a run, by study folder")
    parser.add_argument("results", nargs="?", default="results", type=Path)
    parser.add_argument("--csv", type=Path, help="also write the table here (total row last)")
    parser.add_argument("--by-label", action="store_true",
                        help="one row per study folder and job label (the arm or setting, seeds summed)")
    args = parser.parse_args(argv)
    results, out = args.results, args.csv
    if not results.is_dir():
        print(f"adapter_seconds: {results}: no such results folder (expected the folder a run wrote)", file=sys.stderr)
        return 2
    try:
        by_folder, repeats = adapters(results, args.by_label)
    except ValueError as e:
        print(f"adapter_seconds: {e}", file=sys.stderr)
        return 2
    rows = sorted(by_folder.items(), key=lambda kv: -kv[1]["machine_seconds"])
    total = {k: sum(r[k] for _, r in rows) for k in ("trained", "seconds", "machine_seconds", "trained_again")}
    rows.append(("total", total))
    width = max(24, *(len(study) for study, _ in rows))
    print(f"{'folder':{width}s} {'adapters':>8s} {'train_s':>9s} {'machine_s':>10s} {'again':>6s}")
    for study, r in rows:
        print(f"{study:{width}s} {r['trained']:8d} {r['seconds']:9.0f} {r['machine_seconds']:10.0f} "
              f"{r['trained_again']:6d}")
    # "nothing trained twice": a repeat is an adapter the store held and a job trained anyway
    for again, before in repeats:
        print(f"  {again.relative_to(results)} (first: {before.relative_to(results)})")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["folder", "adapters", "train_seconds", "machine_seconds", "trained_again"])
            w.writerows([study, r["trained"], round(r["seconds"], 1), round(r["machine_seconds"], 1),
                         r["trained_again"]] for study, r in rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
