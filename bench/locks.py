"""Locks between runs, so two runs never corrupt each other:

- one per results folder: a second run on the same folder refuses at once, with a one-line
  error naming the holder's pid (two runs appending to one prediction log is the failure this
  prevents);
- one per cache entry (an index build, an adapter's training, a world's embeddings): a second
  run that needs the same entry waits while the first builds it, then reuses it.

They are `fcntl.flock` locks, which the kernel drops when their process dies: a lock left by a
killed run is free again, and the next run to take it finds the half-built entry and removes it
(the entry's own completeness flag says so), never a live run's work in progress.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path

from bench.config import ConfigError

LOCK_FILE = ".lock"


class FolderBusy(ConfigError):
    """Another run holds the results folder (a one-line error, exit code 2)."""


@contextmanager
def folder_lock(folder: Path | str):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    f = (folder / LOCK_FILE).open("a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "pid unknown"
        f.close()
        raise FolderBusy(f"{folder}: in use by another run ({holder}); wait for it to finish "
                         f"or write elsewhere with --out") from None
    try:
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        f.flush()
        yield
    finally:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


@contextmanager
def entry_lock(cache_dir: Path | str, key: str):
    """Held while one cache entry is checked and, if missing or half-built, built; the lock
    files sit in `<cache_dir>/locks/`, apart from the entries."""
    path = Path(cache_dir) / "locks" / f"{key}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)   # waits while another run builds the same entry
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
