"""The one atomic writer: every result file and cache entry is written under a temporary name
unique to this process and renamed into place, so an interrupted write (or a second run writing
the same file) never leaves a half-written file behind; a reader sees the old or the new one.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable


def _tmp_name(path: Path) -> Path:
    # keep the suffix last, so writers that pick a format by suffix (savefig, to_parquet) still can
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


def atomic_write(path: Path | str, write: Callable[[Path], object]) -> Path:
    """Call write(tmp) and rename tmp to path; on any error the temporary file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_text(text: str, path: Path | str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


def write_json(obj, path: Path | str) -> Path:
    return write_text(json.dumps(obj, indent=1, default=str), path)


def write_csv(df, path: Path | str, float_format: str | None = "%.6g") -> Path:
    return atomic_write(path, lambda p: df.to_csv(p, index=False, float_format=float_format))


@contextmanager
def atomic_folder(folder: Path | str):
    """Yield a temporary folder; on success it replaces `folder` whole (a cache entry such as an
    adapter: a killed run leaves only a `.tmp-<pid>` folder, never a half-written entry)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
