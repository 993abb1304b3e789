"""`make all`'s wall time by target: what each study's manifest says it took, beside what
scripts/time_make_all.sh measured around each `make <target>` when it was run.

The manifests give a study's own seconds (`timings_seconds.total`, or `seconds` for probes) and
when and under what load it ran; they cover the study's work, not the `pocket-model-if-stale`
check or the interpreter start. The log (results/perf/make-all.csv, one line per target run:
target,start,end,seconds,exit_code,load_1m,executor,cpu,lora_step_ms) is the wall time a user waits,
beside the machine it ran on (its CPU model and the bench's LoRA step there, timed by the script
before the first target: machines of one CPU name differ in speed); its latest
line per target and executor is used: `make_*` columns for the local executor (also lines
without an executor, from before it was logged), `processes_make_*` for BENCH_EXECUTOR=processes
(the Makefile's default), `ray_make_*` for BENCH_EXECUTOR=ray. A target with none (report: it
has no manifest) shows blanks.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pandas as pd

# each executor's column prefix
PREFIXES = {"local": "make", "processes": "processes_make", "ray": "ray_make"}
FIELDS = ("seconds", "exit_code", "end", "load_1m", "cpu", "lora_step_ms")
COLUMNS = ["target", "manifest_seconds", "manifest_written_at", "manifest_load_1m", "quick",
           *(f"{prefix}_{field}" for prefix in PREFIXES.values() for field in FIELDS)]
LOG = Path("results/perf/make-all.csv")


def all_targets(makefile: Path = Path("Makefile")) -> list[str]:
    """The prerequisites of `all:` in order (the rule may continue over backslashed lines)."""
    text = Path(makefile).read_text()
    m = re.search(r"^all: (.*?)(?<!\\)\n", text, re.M | re.S)
    return [t for t in m.group(1).replace("\\", " ").split()] if m else []


def manifest_seconds(folder: Path) -> dict:
    f = folder / "manifest.json"
    if not f.is_file():
        return {}
    try:
        doc = json.loads(f.read_text())
    except ValueError:
        return {}
    timings = doc.get("timings_seconds")
    seconds = timings.get("total") if isinstance(timings, dict) else None
    load = (doc.get("hardware") or {}).get("load_average_1_5_15") or [None]
    return {"manifest_seconds": seconds if seconds is not None else doc.get("seconds"),
            "manifest_written_at": doc.get("written_at"), "manifest_load_1m": load[0],
            "quick": doc.get("quick")}


def read_log(log: Path, executor: str = "local") -> dict[str, dict]:
    """The latest logged run of each target with this executor."""
    if not Path(log).is_file():
        return {}
    latest: dict[str, dict] = {}
    with Path(log).open(newline="") as f:
        for row in csv.DictReader(f):
            if row.get("target") and (row.get("executor") or "local") == executor:
                latest[row["target"]] = row
    return latest


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def table(results: Path = Path("results"), makefile: Path = Path("Makefile"), log: Path = LOG) -> pd.DataFrame:
    logged = {prefix: read_log(log, executor) for executor, prefix in PREFIXES.items()}
    rows = []
    for target in all_targets(makefile):
        row = {"target": target, **manifest_seconds(Path(results) / target)}
        for prefix, runs in logged.items():
            if target in runs:
                got = runs[target]
                row.update({f"{prefix}_seconds": _number(got.get("seconds")), f"{prefix}_exit_code": got.get("exit_code"),
                            f"{prefix}_end": got.get("end"), f"{prefix}_load_1m": _number(got.get("load_1m")),
                            f"{prefix}_cpu": got.get("cpu") or None,   # None: logged before the cpu was
                            f"{prefix}_lora_step_ms": _number(got.get("lora_step_ms"))})
        rows.append(row)
    df = pd.DataFrame(rows, columns=COLUMNS)
    total = {"target": "total", **{c: pd.to_numeric(df[c]).sum(min_count=1)
                                   for c in ("manifest_seconds", *(f"{p}_seconds" for p in PREFIXES.values()))}}
    return pd.concat([df, pd.DataFrame([total], columns=COLUMNS)], ignore_index=True)
