"""The perf run: each asked section measured in turn, its tables saved as CSV, then report.md
written from the saved tables alone (so a run of one section rewrites the report with the
others' last tables) and manifest.json with the seconds, machine and load of each section."""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from bench.io import write_csv, write_text
from bench.perf import SECTIONS, PerfSettings

# which files each section writes (the report reads them back)
FILES = {"generation": ("generation.csv", "generation_ratios.csv"),
         "lora": ("lora_step.csv", "lora_profile.csv"),
         "retrieval": ("retrieval.csv", "retrieval_hnsw_ef.csv"),
         "make": ("make_times.csv",)}


def _config(s: PerfSettings):
    from bench.config import WorldData
    from bench.studies.driver import load_study_config
    from bench.studies.registry import get_study

    cfg, _ = load_study_config(get_study("accuracy"), Path(s.config), model=s.model)
    if s.entities is not None:
        cfg = replace(cfg, data=replace(cfg.data, world=WorldData(entities=s.entities)))
    return cfg


def lora_step_ms(s: PerfSettings) -> float:
    """The LoRA section's bench_fit_adapter step alone (the median of three fits), in ms, nothing
    written (`bench perf --speed`)."""
    from bench.data.dataset import build_dataset
    from bench.engine import torch_threads
    from bench.perf import lora_step

    cfg = _config(s)
    dataset = build_dataset(cfg.data, s.seed)
    with torch_threads(s.threads):
        return 1000 * lora_step.step_seconds(cfg.model.name, cfg, s.lora_arm, dataset, s.lora_steps, s.seed)


def measure_section(name: str, s: PerfSettings, cfg, cache_dir: Path, progress: bool) -> tuple[dict, dict]:
    """({file name: table}, headline numbers) of one section."""
    if name == "make":
        from bench.perf import make_times
        return {"make_times.csv": make_times.table()}, {}
    if name == "retrieval":
        from bench.perf import retrieval
        return retrieval.measure(s, cache_dir, progress)
    from bench.data.dataset import build_dataset
    from bench.engine import torch_threads

    dataset = build_dataset(cfg.data, s.seed)
    with torch_threads(s.threads):
        if name == "generation":
            from bench.models.generator import Generator
            from bench.perf import generation

            m = cfg.model
            gen = Generator.load(m.name, device=m.device, max_new_tokens=m.max_new_tokens,
                                 batch_size=m.batch_size, chat=m.chat, demos=m.demos, dtype=m.dtype)
            try:
                table, ratios = generation.measure(gen, dataset, s.gen_items, s.seed,
                                                   s.gen_batch_size or m.batch_size, s.gen_repeats, progress)
            finally:
                gen.close()
            return {"generation.csv": table, "generation_ratios.csv": ratios}, {}
        if name == "lora":
            from bench.perf import lora_step

            table, profile, headline = lora_step.measure(cfg.model.name, cfg, s.lora_arm, dataset,
                                                         s.lora_steps, s.seed, progress,
                                                         s.lora_compile)
            return {"lora_step.csv": table, "lora_profile.csv": profile}, headline
    raise ValueError(f"unknown perf section {name!r}; expected one of {SECTIONS}")


def run_perf(out: Path, s: PerfSettings, sections=SECTIONS, quick: bool = False,
             cache_dir: Path | None = None, progress: bool = True) -> Path:
    from bench.config import CACHE_DIR
    from bench.perf.report import machine_name
    from bench.report.manifest import hardware, write_manifest

    out, cache_dir = Path(out), Path(cache_dir or CACHE_DIR)
    cfg = _config(s) if set(sections) & {"generation", "lora"} else None
    previous = _previous_sections(out)
    for name in sections:
        load_start, t0 = os.getloadavg(), time.perf_counter()
        tables, headline = measure_section(name, s, cfg, cache_dir, progress)
        for file, df in tables.items():
            write_csv(df, out / file)
        previous[name] = {"seconds": round(time.perf_counter() - t0, 1), "quick": quick,
                          "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                          "machine": machine_name(hardware()),
                          "load_average_1_5_15": {"start": [round(x, 2) for x in load_start],
                                                  "end": [round(x, 2) for x in os.getloadavg()]},
                          "headline": _plain(headline)}
        if progress:
            print(f"perf: {name} in {previous[name]['seconds']:.0f} s", flush=True)
    from bench.perf.report import report_md

    report = write_text(report_md(out, previous, hardware(), s.to_json()), out / "report.md")
    timings = {k: v["seconds"] for k, v in previous.items()}
    write_manifest(out / "manifest.json", "perf", s.to_json(), "bench/perf (python -m bench perf)",
                   {**timings, "total": round(sum(timings.values()), 1)},
                   extra={"quick": quick, "sections": previous, "sections_run_now": list(sections)})
    return report


def _previous_sections(out: Path) -> dict:
    """Sections measured by earlier runs into this folder whose tables are still there."""
    f = out / "manifest.json"
    try:
        kept = json.loads(f.read_text()).get("sections", {}) if f.is_file() else {}
    except ValueError:
        return {}
    return {k: v for k, v in kept.items() if k in FILES and all((out / x).is_file() for x in FILES[k])}


def _plain(obj):
    """Headline numbers as JSON-ready values (numpy scalars and tuples to Python)."""
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def read_tables(out: Path) -> dict[str, pd.DataFrame]:
    return {f: pd.read_csv(out / f) for files in FILES.values() for f in files if (out / f).is_file()}
