"""Where a LoRA step's time goes, and how much of it any change to the loop could still win.

The bench's loop (`fit_adapter`) is run under torch's profiler for a few steps, recording every
matrix multiply's shapes. Rows of lora_profile.csv:
  bench_step          the loop's unprofiled seconds per step (lora_step.csv's bench_fit_adapter);
                      gflop_per_step: the step's matrix-multiply FLOPs (2*m*k*n per call)
  matmuls_share       the profiled step's self time in matrix multiplies (aten::mm, addmm, bmm),
  attention_share     in the fused attention kernels (scaled_dot_product_*),
  other_share         and in everything else (elementwise, autograd, optimizer, Python); each one's
                      ms_per_step is its share of the unprofiled step
  matmuls_replayed    the same matrix multiplies, every call at its recorded shapes, run bare
                      (torch.mm on ready tensors, no autograd) and timed: the step's matmul floor on
                      this machine, this BLAS and these threads
  gemm_1024           one 1024 x 1024 x 1024 float32 GEMM: what this machine's BLAS reaches on a
                      large square product, for scale
No Python-level change to batching or the loop can take a step below `matmuls_replayed` plus the
attention time without changing what is computed (rank, target modules, tokens, precision).
"""

from __future__ import annotations

import random
import time

import pandas as pd
import torch

COLUMNS = ["part", "ms_per_step", "share_of_step", "gflop_per_step", "gflops", "calls_per_step"]
MATMULS = ("aten::mm", "aten::addmm", "aten::bmm")


def _mm_shapes(event) -> tuple[int, int, int, int] | None:
    """(batch, m, k, n) of a recorded matrix multiply, or None when the shapes are missing."""
    shapes = [s for s in event.input_shapes if s]
    if event.name == "aten::addmm":
        shapes = shapes[1:]              # (bias, a, b)
    if len(shapes) < 2:
        return None
    a, b = shapes[0], shapes[1]
    if event.name == "aten::bmm":
        return a[0], a[1], a[2], b[2]
    return 1, a[0], a[1], b[1]


def profile_steps(fit, steps: int, seed: int) -> list:
    """The profiler events of `fit(steps, rng)` under torch's CPU profiler."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        fit(steps, random.Random(seed))
    return list(prof.events())


def replay_matmuls(shapes: list[tuple[int, int, int, int]], repeats: int = 3) -> float:
    """Best of `repeats` timed passes of torch.mm/bmm over `shapes`, in order (one warm-up pass)."""
    ready = {s: (torch.randn(s[0], s[1], s[2]), torch.randn(s[0], s[2], s[3])) for s in set(shapes)}

    def one_pass() -> float:
        t0 = time.perf_counter()
        for s in shapes:
            a, b = ready[s]
            if s[0] == 1:
                torch.mm(a[0], b[0])
            else:
                torch.bmm(a, b)
        return time.perf_counter() - t0
    one_pass()
    return min(one_pass() for _ in range(repeats))


def gemm_seconds(size: int = 1024, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(fit, steps: int, seed: int, step_seconds: float) -> tuple[pd.DataFrame, dict]:
    """(lora_profile table, headline) for the loop `fit(steps, rng)` whose unprofiled step takes
    `step_seconds`."""
    events = profile_steps(fit, steps, seed)
    self_us = lambda names: sum(e.self_cpu_time_total for e in events if e.name in names)
    total_us = sum(e.self_cpu_time_total for e in events)
    attention = {e.name for e in events if "scaled_dot_product" in e.name}
    shapes = [s for e in events if e.name in MATMULS for s in [_mm_shapes(e)] if s]
    flop = sum(2 * b * m * k * n for b, m, k, n in shapes)
    replay_s = replay_matmuls(shapes)
    gemm_s = gemm_seconds()
    per = lambda x: x / steps
    shares = {"matmuls_share": self_us(MATMULS) / total_us, "attention_share": self_us(attention) / total_us}
    shares["other_share"] = 1 - sum(shares.values())
    ms = step_seconds * 1000
    rows = [{"part": "bench_step", "ms_per_step": ms, "share_of_step": 1.0,
             "gflop_per_step": per(flop) / 1e9, "gflops": per(flop) / 1e9 / step_seconds,
             "calls_per_step": float("nan")}]
    rows += [{"part": p, "ms_per_step": share * ms, "share_of_step": share, "gflop_per_step": float("nan"),
              "gflops": float("nan"), "calls_per_step": float("nan")} for p, share in shares.items()]
    rows.append({"part": "matmuls_replayed", "ms_per_step": per(replay_s) * 1000,
                 "share_of_step": per(replay_s) / step_seconds, "gflop_per_step": per(flop) / 1e9,
                 "gflops": flop / 1e9 / replay_s, "calls_per_step": per(len(shapes))})
    rows.append({"part": "gemm_1024", "ms_per_step": float("nan"), "share_of_step": float("nan"),
                 "gflop_per_step": float("nan"), "gflops": 2 * 1024 ** 3 / 1e9 / gemm_s, "calls_per_step": 1.0})
    table = pd.DataFrame(rows, columns=COLUMNS)
    floor = per(replay_s) + shares["attention_share"] * step_seconds
    return table, {"profiled_steps": steps, "matmul_floor_share": per(replay_s) / step_seconds,
                   "best_case_speedup": step_seconds / floor, "torch_threads": torch.get_num_threads()}
