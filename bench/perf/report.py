"""report.md of a perf folder, from its saved CSVs and the manifest's section records only (no
model code): each section's table, what its columns mean, and its ratios in plain words."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bench.perf.make_times import PREFIXES


def fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        a = abs(v)
        if float(v).is_integer() and a < 1e6:
            return f"{int(v):,}"
        return f"{v:,.0f}" if a >= 100 else f"{v:.2f}" if a >= 1 else f"{v:.3g}"
    return str(v)


def md_table(df: pd.DataFrame, columns: list[str] | None = None) -> list[str]:
    columns = [c for c in (columns or list(df.columns)) if c in df.columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(fmt(_py(row[c])) for c in columns) + " |")
    return lines


def _py(v):
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, str) and v in ("True", "False"):   # booleans read back from CSV
        return v == "True"
    return v


def _when(meta: dict) -> str:
    if not meta:
        return "not run"
    load = meta.get("load_average_1_5_15", {})
    # sections kept from earlier runs may come from another machine: each names its own
    machine = f" on {meta['machine']}" if meta.get("machine") else ""
    return (f"{meta.get('seconds', 0):.0f} s on {meta.get('written_at', '?')}"
            f"{' (--quick)' if meta.get('quick') else ''}{machine}, load average (1 min) "
            f"{(load.get('start') or ['?'])[0]} at the start, {(load.get('end') or ['?'])[0]} at the end")


def section(title: str, meta: dict | None, df: pd.DataFrame, legend: str,
            intro: list[str] = ()) -> list[str]:
    """The shape every measured section opens with: its title, the run it comes from (sections
    kept from older runs may differ), any intro lines, its table and what the columns mean."""
    return [f"## {title}", "", f"Measured in {_when(meta)}.", "", *intro, *md_table(df), "", legend, ""]


def generation_md(t: dict, meta: dict) -> list[str]:
    if "generation.csv" not in t:
        return []
    g, r = t["generation.csv"], t.get("generation_ratios.csv", pd.DataFrame())
    out = section("Generation", meta, g,
           "`seconds`: median of `repeats` timed runs over all `items` prompts (each path warmed up "
           "once first, repeats interleaved path by path); `prompt_positions_per_item`: prompt "
           "positions run per item, padding included; `new_positions_per_item`: positions decoded "
           "per item (a batch decodes until its last row ends); `tokens_match`: the bare loop's "
           "greedy tokens equal the generator's, row by row, up to each end of sequence.")
    for _, row in r.iterrows():
        by = g[g["prompts"] == row["prompts"]].set_index("path")
        out.append(
            f"- **{row['prompts']}** prompts: `Generator.generate` answers "
            f"{fmt(by.loc['generator_batched', 'items_per_s'])} items/s at batch size "
            f"{fmt(by.loc['generator_batched', 'batch_size'])} and "
            f"{fmt(by.loc['generator_one_at_a_time', 'items_per_s'])} items/s one at a time: batching "
            f"gives {fmt(row['batched_over_one_at_a_time'])}x the throughput. On the same batches and "
            f"the same number of new tokens the bare KV-cache loop takes "
            f"{fmt(by.loc['bare_kv_loop', 'seconds'])} s against the generator's "
            f"{fmt(by.loc['generator_batched', 'seconds'])} s: the generator takes "
            f"{fmt(row['generator_over_bare_time'])}x the bare loop's time. Greedy tokens "
            f"{'match' if _py(row['tokens_match']) else '**do not match**'}.")
    return out + [""]


def lora_md(t: dict, meta: dict) -> list[str]:
    if "lora_step.csv" not in t:
        return []
    df = t["lora_step.csv"]
    by = df.set_index("path")
    head = meta.get("headline", {}) if meta else {}
    bench, padded, lower = (by.loc[p] for p in ("bench_fit_adapter", "bare_padded", "bare_unpadded"))
    match = _py(bench["batches_match"])
    intro = [f"The accuracy study's `lora` arm's recipe ({_lora(head)}), {fmt(bench['steps'])} "
             f"steps per path.", ""]
    return section("LoRA training step", meta, df,
           "`bench_fit_adapter`: the bench's loop (`fit_adapter`: sampling, tokenizing, batching as it "
           "does today, forward, backward, AdamW, schedule), total / steps; `bare_padded`: one "
           "forward + backward + AdamW over the same rows padded to the batch's longest "
           "(pre-tokenized); `bare_unpadded`: the same rows in equal-length groups, no padding, one "
           "forward per group (a lower bound on positions, not on calls); `tokenize`: encoding every "
           "row without a cache; `positions_per_step`: token positions run, padding included; "
           "`padding_share`: 1 - real / positions; `batches_match`: the bare rows ran the loop's own "
           "batches (their real tokens equal its count); `bench_bf16_autocast`: the bench's loop again "
           "under `torch.autocast(\"cpu\", bfloat16)`; `bench_compiled`: the bench's loop with the peft "
           "model under `torch.compile` (dynamic shapes), the median of three fits taking turns with three eager ones, "
           "the compilation timed apart.", intro) + [
           f"- The bench's step takes {fmt(bench['seconds_per_step'] * 1000)} ms for "
           f"{fmt(bench['real_tokens_per_step'])} real tokens in {fmt(bench['positions_per_step'])} "
           f"positions ({fmt(100 * bench['padding_share'])}% padding, "
           f"{fmt(bench['forward_calls_per_step'])} forward calls); the naive padded step "
           f"{fmt(padded['seconds_per_step'] * 1000)} ms ({fmt(100 * padded['padding_share'])}% padding); "
           f"the unpadded lower bound {fmt(lower['seconds_per_step'] * 1000)} ms "
           f"({fmt(lower['forward_calls_per_step'])} calls).",
           f"- bench / naive padded = {fmt(bench['seconds_per_step'] / padded['seconds_per_step'])}x; "
           f"bench / unpadded = {fmt(bench['seconds_per_step'] / lower['seconds_per_step'])}x."
           + ("" if match else " **The bare rows did not run the loop's batches** (its sampler changed: "
                               "update lora_step.draw_batches), so compare per token, not per step."),
           f"- bfloat16 autocast / float32 = {fmt(head['bf16_over_fp32'])}x per step."
           if "bf16_over_fp32" in head else "- bfloat16 autocast: not measured in this run.",
           f"- torch.compile ({head['compile_backend']}) / eager = {fmt(head['compiled_over_eager'])}x per "
           f"step (medians of {fmt(head['compile_rounds'])} fits each, taking turns), "
           f"{fmt(1000 * _saved_per_step(head))} ms saved a step. Compiling (the first two steps less "
           f"two eager ones) took {fmt(head['compile_seconds_cold'])} s from an empty inductor cache, "
           f"{fmt(head['compile_seconds_warm'])} s again with the cache filled (what each new process "
           f"pays, won back after {fmt(_break_even(head, 'compile_seconds_warm'))} steps){_next_adapter(head)}."
           if "compiled_over_eager" in head else "- torch.compile: not measured in this run.",
           "", *profile_md(t, head)]


def _saved_per_step(head: dict) -> float:
    return head["eager_step_seconds"] * (1 - head["compiled_over_eager"])


def _next_adapter(head: dict) -> str:
    """The further adapter's compile time, and whether it ran on the process's compiled code: a
    compile takes seconds, so anything under one second (noise either side of zero) is reuse. A
    manifest from before that timing has none: the sentence then says so."""
    seconds = head.get("compile_seconds_next_adapter")
    if seconds is None:
        return "; a further adapter in the same process was not timed in this run"
    reuse = (" (under a second: the compiled code was reused, so a process pays the compilation once)"
             if seconds < 1 else " (compiled again: each adapter pays)")
    return f" and {fmt(seconds)} s for a further adapter on a freshly loaded model in the same process{reuse}"


def _break_even(head: dict, key: str) -> float:
    """Steps after which a compile pays for itself at the measured per-step saving."""
    saved = _saved_per_step(head)
    return head[key] / saved if saved > 0 else float("inf")


def profile_md(t: dict, head: dict) -> list[str]:
    """Where the step's time goes (lora_profile.csv) and what is left to win."""
    if "lora_profile.csv" not in t:
        return []
    df = t["lora_profile.csv"]
    by = df.set_index("part")
    step, mm, att = (by.loc[p] for p in ("bench_step", "matmuls_replayed", "attention_share"))
    return ["### Where the step's time goes", "",
            f"{head.get('profiled_steps', '?')} steps of the bench's loop under torch's profiler, "
            f"{head.get('torch_threads', '?')} torch threads; see `bench/perf/lora_profile.py`.", "",
            *md_table(df), "",
            f"- The step's matrix multiplies, replayed bare at their recorded shapes, take "
            f"{fmt(mm['ms_per_step'])} ms of its {fmt(step['ms_per_step'])} ms "
            f"({fmt(100 * mm['share_of_step'])}%), at {fmt(mm['gflops'])} GFLOP/s against "
            f"{fmt(by.loc['gemm_1024', 'gflops'])} for a 1024-cube GEMM; fused attention takes "
            f"{fmt(100 * att['share_of_step'])}% more. With nothing else left, a step would take "
            f"{fmt(step['ms_per_step'] / head['best_case_speedup'])} ms: at most "
            f"{fmt(head['best_case_speedup'])}x faster without computing something else.", ""]


def _lora(head: dict) -> str:
    lora = head.get("lora") or {}
    if not lora:
        return "see manifest.json"
    return (f"rank {lora.get('rank')}, batch {lora.get('batch_size')}, lr {lora.get('lr')}, replay share "
            f"{lora.get('replay_share')}; {head.get('train_examples')} training and "
            f"{head.get('replay_examples')} replay examples")


def retrieval_md(t: dict, meta: dict) -> list[str]:
    if "retrieval.csv" not in t:
        return []
    from bench.perf.retrieval import target_ratio
    from bench.retrieval.store import EXACT_MAX_CHUNKS

    df = t["retrieval.csv"]
    n = int(df["chunks"].iloc[0])
    head = target_ratio(df, (meta or {}).get("headline", {}).get("target", 1.2),
                        "bench_store_exact" if n <= EXACT_MAX_CHUNKS else "bench_store_hnsw")
    extra = (meta or {}).get("headline", {})
    intro = []
    if extra.get("embeddings_cached_worlds"):
        hits, worlds = extra["embeddings_cached_worlds"]
        intro = [f"Passage embeddings: {hits} of {worlds} worlds from the scale study's cache "
                f"(corpus ready in {fmt(extra.get('corpus_seconds'))} s); chroma index built in "
                f"{fmt(extra.get('chroma_index_seconds'))} s, FAISS HNSW in "
                f"{fmt(extra.get('hnsw_build_seconds'))} s.", ""]
    out = section(f"Retrieval at {n:,} chunks", meta, df,
            "One query at a time, each timed once after an untimed pass, the paths taking turns query by query; `embed_p50_ms` / "
            "`search_p50_ms`: the store's own split of its time; `recall_at_k`: against exact search "
            "(FAISS flat), a hit counts when its exact score reaches the k-th exact score; "
            "`build_s`: index build.", intro)
    if "retrieval_hnsw_ef.csv" in t:
        out += ["FAISS HNSW efSearch sweep (recall@k against exact; the smallest reaching the "
                "target is chosen):", "", *md_table(t["retrieval_hnsw_ef.csv"]), ""]
    out += [f"- Target: one retrieval through the rag arm's path at this size (`{head['bench_path']}`) "
            f"takes {fmt(head['bench_p50_ms'])} ms (p50), against {fmt(head['bare_p50_ms'])} ms for "
            f"MiniLM on one query plus the fastest index (`{head['fastest_index']}`): a ratio of "
            f"{fmt(head['ratio'])}, so the target of <= {head['target']} "
            f"{'**holds**' if head['holds'] else '**does not hold**'}.", ""]
    return out


def make_md(t: dict, meta: dict) -> list[str]:
    if "make_times.csv" not in t:
        return []
    df = t["make_times.csv"]
    total = df[df["target"] == "total"]
    out = ["## `make all` wall time by target", "", *md_table(df), "",
           "`manifest_seconds`: the study's own seconds from results/<target>/manifest.json (when and "
           "under what load it ran beside it); `make_seconds`: wall time of `make <target>` from "
           "results/perf/make-all.csv, written by scripts/time_make_all.sh with BENCH_EXECUTOR=local "
           "(one job at a time); `processes_make_seconds`: the same with worker processes, two one-thread "
           "jobs at a time (the Makefile's default); `ray_make_seconds`: with BENCH_EXECUTOR=ray (a local "
           "Ray cluster on this machine); `*_cpu`: the CPU model the "
           "script logged, `*_lora_step_ms`: the bench's LoRA step on that machine, timed by the script "
           "before the first target (`bench perf --speed`; blank for runs logged before it did either).", ""]
    if len(total):
        timed = {name: total[f"{prefix}_seconds"].iloc[0] for name, prefix in PREFIXES.items()
                 if f"{prefix}_seconds" in df and df[f"{prefix}_seconds"].notna().any()}
        out.append(f"- The manifests add up to {fmt(total['manifest_seconds'].iloc[0])} s"
                   + ("; the timed `make` calls to " + ", ".join(f"{fmt(v)} s ({k})" for k, v in timed.items()) + "."
                      if timed else "; no target has been timed by scripts/time_make_all.sh yet."))
        names = list(PREFIXES)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                out += _both_ways(df, total, a, b)
    return out + [""]


def _both_ways(df: pd.DataFrame, total: pd.DataFrame, a: str, b: str) -> list[str]:
    """One bullet comparing two executors over the targets both timed (none if none did)."""
    pa, pb = PREFIXES[a], PREFIXES[b]
    if f"{pa}_seconds" not in df or f"{pb}_seconds" not in df:
        return []
    both = df[(df["target"] != "total") & df[f"{pa}_seconds"].notna() & df[f"{pb}_seconds"].notna()]
    if not len(both):
        return []
    x, y = both[f"{pa}_seconds"].sum(), both[f"{pb}_seconds"].sum()
    return [f"- Over the {len(both)} targets timed both ways: {a} {fmt(x)} s, {b} {fmt(y)} s "
            f"({x / y:.2f}x){_sessions_apart(both, a, b)}; every {b}-timed target: "
            f"{fmt(total[f'{pb}_seconds'].iloc[0])} s."]


# two executors' runs that ended further apart than this come from different sessions
SAME_SESSION = pd.Timedelta(hours=6)
# LoRA steps within this ratio: the same speed of machine (one machine's fits vary ~15% run to run)
SAME_SPEED = 1.2


def _sessions_apart(both: pd.DataFrame, a: str = "local", b: str = "ray") -> str:
    """A warning when two executors' timings (a's and b's) come from different machines or sessions: this
    machine's speed changes between sessions (1.3-1.5x), so their ratio would compare machines, not
    executors. Different CPU models are never comparable; where the script timed both machines'
    LoRA step, the steps decide (within SAME_SPEED: comparable, whatever the dates); where only one
    did, they are not (two sessions of 2026-12-02 ran on machines whose steps took 137 ms and
    147-177 ms); else runs more than
    SAME_SESSION apart are not."""
    pa, pb = PREFIXES[a], PREFIXES[b]
    cpus = [set(both[c].dropna()) if c in both else set() for c in (f"{pa}_cpu", f"{pb}_cpu")]
    if all(cpus) and cpus[0] != cpus[1]:
        return (f", **not comparable**: the {a} runs ran on {' / '.join(sorted(cpus[0]))}, the {b} runs "
                f"on {' / '.join(sorted(cpus[1]))}")
    steps = [both[c].dropna() if c in both else pd.Series(dtype=float)
             for c in (f"{pa}_lora_step_ms", f"{pb}_lora_step_ms")]
    if all(len(x) for x in steps):   # the machines' own speed, where the script timed it
        x, y = steps[0].median(), steps[1].median()
        if max(x, y) > SAME_SPEED * min(x, y):
            return (f", **not comparable**: a LoRA step took {fmt(x)} ms on the {a} runs' machine "
                    f"and {fmt(y)} ms on the {b} runs'")
        return f" (a LoRA step: {fmt(x)} ms on the {a} runs' machine, {fmt(y)} ms on the {b} runs')"
    if any(len(x) for x in steps):   # one side's speed unknown: the same date proves no same machine
        known, unknown, ms = (a, b, steps[0]) if len(steps[0]) else (b, a, steps[1])
        return (f", **not comparable**: a LoRA step took {fmt(ms.median())} ms on the {known} runs' "
                f"machine, and the {unknown} runs' machine's step was not logged")
    x = pd.to_datetime(both[f"{pa}_end"], errors="coerce", utc=True).max()
    y = pd.to_datetime(both[f"{pb}_end"], errors="coerce", utc=True).max()
    if pd.isna(x) or pd.isna(y) or abs(x - y) <= SAME_SESSION:
        return ""
    return (f", **not comparable**: the {a} runs ended {x:%Y-%m-%d %H:%M}Z and the {b} runs "
            f"{y:%Y-%m-%d %H:%M}Z, in different sessions whose machines may differ in speed")


def machine_name(hw: dict) -> str:
    return f"{hw.get('cpu')}, {hw.get('cpu_count')} cores{', ' + hw['cuda'] if hw.get('cuda') else ''}"


def report_md(out: Path, sections: dict, hw: dict, settings: dict) -> str:
    from bench.perf.run import read_tables

    t = read_tables(Path(out))
    threads = settings.get("threads") or hw.get("torch_threads")
    lines = ["# perf: where the bench spends its time", "",
             f"Machine of the latest run: {machine_name(hw)}; "
             f"model `{settings.get('model')}`; generation and training with {threads} torch threads, "
             f"queries with {settings.get('query_threads')}. Timings are comparable only between runs "
             "under similar load on the same machine: each section says the machine and load it ran under.", ""]
    lines += generation_md(t, sections.get("generation"))
    lines += lora_md(t, sections.get("lora"))
    lines += retrieval_md(t, sections.get("retrieval"))
    lines += make_md(t, sections.get("make"))
    return "\n".join(lines).rstrip() + "\n"
