"""The perf benchmark (bench/perf) at tiny sizes: the micro pocket model, a 5-person world, a
~60-chunk index (real MiniLM, chroma and FAISS). Timings are not checked, only that every table
has its columns, the bare generation loop reproduces the generator's tokens, the bare LoRA rows
ran the loop's own batches, and the report says what the tables say."""

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.perf import PerfSettings, generation, lora_profile, lora_step, make_times, retrieval
from bench.perf.run import run_perf

ROOT = Path(__file__).resolve().parents[1]


def tiny(model: Path) -> PerfSettings:
    return replace(PerfSettings(), model=str(model), threads=1, entities=5, gen_items=4, gen_repeats=1, gen_batch_size=2,
                   lora_steps=2, lora_compile="aot_eager", chunks=60, queries=5, base_entities=5, distractor_entities=5,
                   ef_grid=(4, 16, 64))


def test_bare_loop_reproduces_the_generators_tokens(micro_pocket):
    from bench.config import DataConfig, WorldData
    from bench.data.dataset import build_dataset
    from bench.models.generator import Generator

    gen = Generator.load(str(micro_pocket[0]), batch_size=4, max_new_tokens=4)
    prompts = [gen.wrap(p, c) for p, c in generation.world_prompts(
        build_dataset(DataConfig(world=WorldData(entities=5)), 0), 6, 0)["rag"]]
    got = generation.capture(gen, prompts)
    assert any((m == 0).any() for m in got.attention_mask)   # left padding is exercised
    bare = generation.bare_run(gen.model, gen.tokenizer, prompts, got)
    eos = gen.tokenizer.eos_token_id
    assert generation.tokens_match(got.new, bare, eos)
    # the check can fail: one token changed before the row's end of sequence is caught, and so is
    # a loop that attends to the left padding (the mistake a bare loop is most likely to make)
    changed = [t.clone() for t in bare]
    changed[0][0, 0] = (changed[0][0, 0] + 1) % len(gen.tokenizer)
    assert not generation.tokens_match(got.new, changed, eos)
    unmasked = [generation.bare_greedy(gen.model, ids, torch.ones_like(mask), new.shape[1])
                for ids, mask, new in zip(got.input_ids, got.attention_mask, got.new)]
    assert not generation.tokens_match(got.new, unmasked, eos)


def test_perf_run_writes_every_table_and_the_report(micro_pocket, tmp_path):
    out = tmp_path / "perf"
    report = run_perf(out, tiny(micro_pocket[0]), sections=("generation", "lora", "retrieval"),
                      quick=True, cache_dir=tmp_path / "cache", progress=False)

    gen = pd.read_csv(out / "generation.csv")
    assert list(gen.columns) == generation.COLUMNS
    assert set(gen["path"]) == {"generator_batched", "generator_one_at_a_time", "bare_kv_loop"}
    assert set(gen["prompts"]) == {"closed_book", "rag"}
    assert gen[gen["path"] == "bare_kv_loop"]["tokens_match"].astype(bool).all()
    ratios = pd.read_csv(out / "generation_ratios.csv")
    assert list(ratios.columns) == generation.RATIO_COLUMNS and (ratios["generator_over_bare_time"] > 0).all()

    lora = pd.read_csv(out / "lora_step.csv").set_index("path")
    assert ["path", *lora.columns] == lora_step.COLUMNS
    assert bool(lora.loc["bench_fit_adapter", "batches_match"])
    assert lora.loc["bare_unpadded", "positions_per_step"] == lora.loc["bare_unpadded", "real_tokens_per_step"]
    assert lora.loc["bare_padded", "positions_per_step"] >= lora.loc["bench_fit_adapter", "positions_per_step"]
    assert lora.loc["bench_bf16_autocast", "seconds_per_step"] > 0
    # the compiled loop ran the same batches (aot_eager here: inductor's C++ build takes minutes)
    assert bool(lora.loc["bench_compiled", "batches_match"]) and lora.loc["bench_compiled", "seconds_per_step"] > 0
    prof = pd.read_csv(out / "lora_profile.csv").set_index("part")
    assert ["part", *prof.columns] == lora_profile.COLUMNS
    shares = prof.loc[["matmuls_share", "attention_share", "other_share"], "share_of_step"]
    # each share is written to 6 significant digits (%.6g): three may sum to 1 +- 1.5e-6
    assert shares.sum() == pytest.approx(1, abs=2e-6) and (shares > 0).all()
    # the replayed matmuls do the step's recorded FLOPs (their share of a 2-step micro run is
    # timing noise, so only its sign is checked)
    assert prof.loc["matmuls_replayed", "gflop_per_step"] == prof.loc["bench_step", "gflop_per_step"] > 0
    assert prof.loc["matmuls_replayed", "share_of_step"] > 0 and prof.loc["gemm_1024", "gflops"] > 0

    ret = pd.read_csv(out / "retrieval.csv").set_index("path")
    assert ["path", *ret.columns] == retrieval.COLUMNS
    assert set(ret.index) >= {"bench_store_hnsw", "bench_store_exact", "chroma_raw", "faiss_hnsw",
                              "faiss_flat", "minilm_one_query", "minilm_batched"}
    assert ret.loc["faiss_flat", "recall_at_k"] == 1.0 and ret.loc["bench_store_exact", "recall_at_k"] == 1.0
    assert (ret["p50_ms"] > 0).all() and (ret["p95_ms"] >= ret["p50_ms"]).all()
    ef = pd.read_csv(out / "retrieval_hnsw_ef.csv")
    assert list(ef.columns) == retrieval.EF_COLUMNS and ef["chosen"].sum() == 1

    text = report.read_text()
    from bench.perf.report import machine_name
    from bench.report.manifest import hardware
    # each measured section names the machine it ran on (sections kept from older runs may differ)
    assert text.count(f"on {machine_name(hardware())}, load average") == 3
    assert "- torch.compile (aot_eager) / eager = " in text
    for heading in ("## Generation", "## LoRA training step", "### Where the step's time goes", "## Retrieval at"):
        assert heading in text
    head = retrieval.target_ratio(ret.reset_index(), 1.2, "bench_store_exact")
    assert ("**holds**" if head["holds"] else "**does not hold**") in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["sections"]) == {"generation", "lora", "retrieval"}
    assert manifest["timings_seconds"]["total"] > 0 and "load_average_1_5_15" in manifest["hardware"]

    # a later run of one section keeps the others' tables in the report
    run_perf(out, tiny(micro_pocket[0]), sections=("make",), progress=False)
    assert "## Generation" in (out / "report.md").read_text()
    assert set(json.loads((out / "manifest.json").read_text())["sections"]) == {"generation", "lora", "retrieval", "make"}


def test_speed_times_the_lora_step_alone_and_prints_one_number(micro_pocket, tmp_path, capsys):
    from bench.cli import main
    from bench.perf.run import lora_step_ms

    assert 0 < lora_step_ms(tiny(micro_pocket[0])) < 60_000
    out = tmp_path / "perf"
    assert main(["perf", "--speed", "--model", str(micro_pocket[0]), "--threads", "1", "--out", str(out)]) == 0
    assert float(capsys.readouterr().out.strip().splitlines()[-1]) > 0
    assert not out.exists()            # nothing written
    # a model that is not there: one line naming it, exit 2, nothing measured
    assert main(["perf", "--speed", "--model", str(tmp_path / "no-model"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no-model" in err[0] and not out.exists()


def test_the_compile_bullet_reads_a_manifest_with_or_without_the_next_adapter_timing():
    from bench.perf.report import _next_adapter

    assert "was not timed in this run" in _next_adapter({})           # written before that timing
    assert "nan" not in _next_adapter({})
    assert "0.05 s for a further adapter" in _next_adapter({"compile_seconds_next_adapter": 0.05})
    assert "was reused" in _next_adapter({"compile_seconds_next_adapter": -0.06})
    assert "each adapter pays" in _next_adapter({"compile_seconds_next_adapter": 21.0})


def test_make_times_reads_manifests_and_the_timing_log(tmp_path):
    (tmp_path / "Makefile").write_text("all: a b \\\n\tc report\n\na:\n\t@true\nb:\n\t@true\nc:\n\t@false\nreport:\n\t@true\n")
    for name, doc in (("a", {"timings_seconds": {"total": 5.0}}), ("b", {"seconds": 7.0})):
        (tmp_path / "results" / name).mkdir(parents=True)
        (tmp_path / "results" / name / "manifest.json").write_text(json.dumps(doc))
    log = tmp_path / "make-all.csv"
    log.write_text("target,start,end,seconds,exit_code,load_1m,executor\na,s,e,9.0,0,1.0,\na,s,e,6.5,0,1.0,local\n"
                   "a,s,e,4.0,0,1.0,ray\nb,s,e,3.0,0,1.0,ray\na,s,e,4.5,0,1.0,processes\n")
    df = make_times.table(tmp_path / "results", tmp_path / "Makefile", log).set_index("target")
    assert list(df.index) == ["a", "b", "c", "report", "total"]
    assert df.loc["a", "manifest_seconds"] == 5.0 and df.loc["b", "manifest_seconds"] == 7.0
    assert df.loc["a", "make_seconds"] == 6.5            # the latest logged local run
    assert df.loc["a", "ray_make_seconds"] == 4.0 and df.loc["b", "ray_make_seconds"] == 3.0
    assert pd.isna(df.loc["b", "make_seconds"])
    assert df.loc["total", "manifest_seconds"] == 12.0 and df.loc["total", "make_seconds"] == 6.5
    assert df.loc["total", "ray_make_seconds"] == 7.0
    assert df.loc["a", "processes_make_seconds"] == 4.5 and df.loc["total", "processes_make_seconds"] == 4.5
    # a log from before the executor column reads as local
    old = tmp_path / "old.csv"
    old.write_text("target,start,end,seconds,exit_code,load_1m\na,s,e,9.0,0,1.0\n")
    assert list(make_times.read_log(old)) == ["a"] and make_times.read_log(old, "ray") == {}


def test_make_report_flags_local_and_ray_timings_from_different_sessions():
    from bench.perf.report import make_md

    def bullet(local_end, ray_end, local_cpu=None, ray_cpu=None, local_ms=None, ray_ms=None):
        df = pd.DataFrame({"target": ["a", "total"], "manifest_seconds": [5.0, 5.0],
                           "make_seconds": [10.0, 10.0], "make_end": [local_end, None], "make_cpu": [local_cpu, None],
                           "make_lora_step_ms": [local_ms, None],
                           "ray_make_seconds": [8.0, 8.0], "ray_make_end": [ray_end, None],
                           "ray_make_cpu": [ray_cpu, None], "ray_make_lora_step_ms": [ray_ms, None]})
        return next(line for line in make_md({"make_times.csv": df}, {}) if "timed both ways" in line)

    same = bullet("2026-12-01T06:30:44Z", "2026-12-01T05:20:07Z")
    assert "(1.25x);" in same and "not comparable" not in same
    apart = bullet("2026-12-01T06:30:44Z", "2026-12-02T10:58:59Z")
    assert "not comparable" in apart and "2026-12-02 10:58Z" in apart
    # the same hour on two machines is no comparison either
    machines = bullet("2026-12-01T06:30:44Z", "2026-12-01T05:20:07Z", "Intel Xeon", "AMD EPYC")
    assert "not comparable" in machines and "Intel Xeon" in machines and "AMD EPYC" in machines
    assert "not comparable" not in bullet("2026-12-01T06:30:44Z", "2026-12-01T05:20:07Z", "AMD EPYC", "AMD EPYC")
    # one CPU name, one hour, but machines of different speed (two "Intel Xeon"s: 114 and 177 ms)
    slower = bullet("2026-12-01T06:30:44Z", "2026-12-01T05:20:07Z", "Intel Xeon", "Intel Xeon", 114.0, 177.0)
    assert "not comparable" in slower and "114 ms" in slower and "177 ms" in slower
    # measured speeds that agree make runs of two sessions comparable
    alike = bullet("2026-12-01T06:30:44Z", "2026-12-02T10:58:59Z", "Intel Xeon", "Intel Xeon", 150.0, 160.0)
    assert "not comparable" not in alike and "(1.25x)" in alike and "150 ms" in alike

    # one machine's speed logged, the other's not: the same day proves nothing
    half = bullet("2026-12-01T06:30:44Z", "2026-12-01T05:20:07Z", "Intel Xeon", "Intel Xeon", 137.0, None)
    assert "not comparable" in half and "137 ms on the local runs' machine" in half and "ray runs' machine's step" in half
    # every pair of executors timed on the same targets gets its bullet: local vs processes too
    df = pd.DataFrame({"target": ["a", "total"], "manifest_seconds": [5.0, 5.0], "make_seconds": [10.0, 10.0],
                       "make_end": ["2026-12-01T06:30:44Z", None], "processes_make_seconds": [8.0, 8.0],
                       "processes_make_end": ["2026-12-01T05:20:07Z", None], "ray_make_seconds": [None, None]})
    lines = [line for line in make_md({"make_times.csv": df}, {}) if "timed both ways" in line]
    assert lines == ["- Over the 1 targets timed both ways: local 10 s, processes 8 s (1.25x); "
                     "every processes-timed target: 8 s."]
    assert any("10 s (local), 8 s (processes)" in line for line in make_md({"make_times.csv": df}, {}))


def test_time_make_all_script_logs_each_target_and_stops_at_a_failure(tmp_path):
    if subprocess.run(["which", "make"], capture_output=True).returncode:
        pytest.skip("no make")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "time_make_all.sh").write_text((ROOT / "scripts" / "time_make_all.sh").read_text())
    (tmp_path / "Makefile").write_text("export BENCH_EXECUTOR ?= processes\nall: a b \\\n\tc d\n\n"
                                       "a:\n\t@true\nb:\n\t@true\nc:\n\t@false\nd:\n\t@true\n")
    done = subprocess.run(["bash", str(tmp_path / "scripts" / "time_make_all.sh")], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "TIMES": str(tmp_path / "log.csv"), "SPEED": "0"})
    assert done.returncode != 0
    log = pd.read_csv(tmp_path / "log.csv")
    assert list(log["target"]) == ["a", "b", "c"] and list(log["exit_code"]) == [0, 0, 2]
    # the executor: BENCH_EXECUTOR, else the Makefile's default (else local)
    assert set(log["executor"]) == {"processes"}
    assert list(make_times.read_log(tmp_path / "log.csv", "processes")) == ["a", "b", "c"]
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file() and "model name" in cpuinfo.read_text():
        model = next(line for line in cpuinfo.read_text().splitlines() if line.startswith("model name"))
        assert set(log["cpu"]) == {model.split(":", 1)[1].strip().replace(",", " ")}
    # a log from before the cpu column gets the new header; its old rows read with no cpu
    old = tmp_path / "old.csv"
    old.write_text("target,start,end,seconds,exit_code,load_1m,executor\na,s,e,9.0,0,1.0,local\n")
    subprocess.run(["bash", str(tmp_path / "scripts" / "time_make_all.sh")], capture_output=True, check=True,
                   env={"PATH": "/usr/bin:/bin", "TIMES": str(old), "TARGETS": "b", "SPEED": "0"})
    upgraded = pd.read_csv(old)
    assert list(upgraded["executor"]) == ["local", "processes"]
    assert list(upgraded.columns)[-2:] == ["cpu", "lora_step_ms"] and list(upgraded["target"]) == ["a", "b"]
    assert pd.isna(upgraded.loc[0, "cpu"]) and list(upgraded["seconds"])[0] == 9.0
    assert upgraded["lora_step_ms"].isna().all()          # SPEED=0: not timed
    # ... as does a log with the cpu column but not the step
    mid = tmp_path / "mid.csv"
    mid.write_text("target,start,end,seconds,exit_code,load_1m,executor,cpu\na,s,e,9.0,0,1.0,local,AMD EPYC\n")
    subprocess.run(["bash", str(tmp_path / "scripts" / "time_make_all.sh")], capture_output=True, check=True,
                   env={"PATH": "/usr/bin:/bin", "TIMES": str(mid), "TARGETS": "b", "SPEED": "0"})
    assert list(pd.read_csv(mid).columns)[-1] == "lora_step_ms" and pd.read_csv(mid).loc[0, "cpu"] == "AMD EPYC"
    # the speed goes beside every row; the script only plumbs it (bench perf --speed is tested above), so
    # a stand-in .venv/bin/python prints what --speed would, or a failure's text, which logs blank
    venv_python = tmp_path / ".venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    for printed, logged in (("loading\n123.4", 123.4), ("Traceback: oops", None)):
        venv_python.write_text(f"#!/bin/sh\nprintf '{printed}\\n'\n")
        venv_python.chmod(0o755)
        timed = tmp_path / f"timed-{logged}.csv"
        subprocess.run(["bash", str(tmp_path / "scripts" / "time_make_all.sh")], capture_output=True, check=True,
                       env={"PATH": "/usr/bin:/bin", "TIMES": str(timed), "TARGETS": "a b"})
        steps = pd.read_csv(timed)["lora_step_ms"]
        assert len(steps) == 2 and (steps.eq(logged).all() if logged else steps.isna().all())
