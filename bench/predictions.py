"""Predictions on disk, one JSONL file per run cell, appended and fsynced batch by batch.

A killed run leaves at most one partial last line; reopening drops it, so a resumed run
answers exactly the items that have no complete row, and no item is ever written twice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class PredictionLog:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()

    def _repair(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):     # interrupted mid-line: cut the torn row
            self.path.write_bytes(data[: data.rfind(b"\n") + 1])

    def rows(self) -> list[dict]:
        """One row per item, the first written: the results-folder lock keeps a second run from
        appending to this log, and reading drops any duplicate that got in anyway."""
        if not self.path.exists():
            return []
        rows, seen = [], set()
        for line in self.path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                if row["item_id"] not in seen:
                    seen.add(row["item_id"])
                    rows.append(row)
        return rows

    def done_ids(self) -> set[str]:
        return {row["item_id"] for row in self.rows()}

    def append(self, rows: list[dict]) -> None:
        done = self.done_ids()
        rows = [r for r in rows if r["item_id"] not in done]   # never a second line for an item
        with self.path.open("a") as f:
            f.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
            f.flush()
            os.fsync(f.fileno())
