"""How long a study really took when it was interrupted and resumed.

A resumed run skips the work its killed predecessors finished, so its own clock understates the
study. Each invocation appends a start line (and, if it gets there, an end line) to
`<results>/runs/invocations.jsonl`; the run that completes adds the earlier, unfinished ones to
its manifest (a killed one is timed to the last file it wrote in the results folder) and
clears the ledger.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

LEDGER = Path("runs") / "invocations.jsonl"


def _append(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _last_write_after(folder: Path, start: float, before: float) -> float:
    times = [p.stat().st_mtime for p in folder.rglob("*") if p.is_file() and p.name != LEDGER.name]
    times = [t for t in times if start <= t < before]
    return max(times, default=start)


def earlier_invocations(folder: Path) -> list[dict]:
    """The ledger's invocations that did not complete: start time and seconds of work (to their
    end line if they failed, to their last written file if they were killed)."""
    path = folder / LEDGER
    if not path.exists():
        return []
    starts, ends = {}, {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:   # a line cut by a kill
            continue
        (ends if "seconds" in r else starts)[r["id"]] = r
    now, out = time.time(), []
    ordered = sorted(starts.values(), key=lambda r: r["start"])
    for r, nxt in zip(ordered, ordered[1:] + [None]):
        if r["id"] in ends:
            seconds = ends[r["id"]]["seconds"]
        else:
            seconds = _last_write_after(folder, r["start"], nxt["start"] if nxt else now) - r["start"]
        out.append({"started": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(r["start"])),
                    "seconds": round(seconds, 1), "ended": "failed" if r["id"] in ends else "killed"})
    return out


class Invocation:
    """with Invocation(folder) as inv: ... -> inv.earlier (unfinished runs before this one)."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / LEDGER
        self.earlier = earlier_invocations(Path(folder))
        self.id = f"{os.getpid()}-{time.time_ns()}"
        self.start = time.time()

    def __enter__(self) -> "Invocation":
        _append(self.path, {"id": self.id, "start": self.start})
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is not None:   # failed: its finished work is reused by the next run
            _append(self.path, {"id": self.id, "seconds": time.time() - self.start})

    def clear(self) -> None:
        """The study completed: the next run starts a fresh ledger."""
        self.path.unlink(missing_ok=True)
