"""LoRA step: seconds per step of the bench's training loop against bare steps at the same shapes.

The training examples are the accuracy study's `lora` arm's (its recipe, rank, batch size and
learning rate, read from the YAML), built by `bench.arms.adapter.training_examples` on a world
of the same kind. Rows of lora_step.csv:
  bench_fit_adapter  `bench.models.lora.fit_adapter` for `steps` steps on a fresh peft model, as
                     `train_lora` wraps it: sampling, tokenizing, batching (however the loop
                     groups a batch today), forward, backward, AdamW, schedule; total / steps.
                     A two-step call first, untimed, pays the first-call costs.
  bare_padded        the naive step on the same batches: one tensor padded to the batch's
                     longest row, forward + backward + AdamW; ids pre-tokenized and pre-padded,
                     so nothing but the model and the optimizer is timed
  bare_unpadded      a lower bound on positions: the same rows in groups of equal length (length
                     sorted, no padding at all, one forward per distinct length), gradients
                     accumulated, one AdamW step; it runs only real tokens but pays a call per group
  tokenize           encode_example on every row of every step (what a loop without an encode
                     cache pays per step; included in bench_fit_adapter when the loop tokenizes)
  bench_compiled     the bench's loop with the peft model under torch.compile (dynamic shapes, as
                     the micro-batches vary in length; `compile_backend`, inductor by default):
                     the median of three fits taking turns with three eager ones (the headline's
                     compiled_over_eager), the compilation timed apart: cold, warm and for a
                     further adapter in the same process (compiled_vs_eager). Skipped when the
                     backend is "" (make perf --quick)

The batches are drawn by a copy of fit_adapter's sampler (epochs of reshuffled examples from
the same seed, then the replay share); `batches_match` says whether the real tokens it counts
equal the loop's own count, i.e. whether the bare rows ran the loop's batches.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from itertools import groupby
from typing import Callable

import pandas as pd
import torch

from bench.models.training import IGNORE, collate, encode_example
from bench.perf import lora_profile

# steps run under the profiler (it slows them; only its shares and recorded shapes are used)
PROFILED_STEPS = 10

COLUMNS = ["path", "steps", "batch_size", "seconds_per_step", "real_tokens_per_step",
           "positions_per_step", "padding_share", "forward_calls_per_step", "real_tokens_per_s",
           "batches_match"]


def arm_recipe(cfg, arm_name: str):
    """(TrainingData, LoraSettings) of the named adapted arm of an experiment config."""
    for arm in cfg.arms:
        if arm.name == arm_name and hasattr(arm.settings, "lora"):
            return arm.settings.training, arm.settings.lora
    raise ValueError(f"{cfg.name}: no adapted arm named {arm_name!r}")


def draw_batches(examples, replay, batch_size: int, replay_share: float, steps: int, seed: int):
    """fit_adapter's batches, drawn the same way from the same seed."""
    rng = random.Random(seed)
    n_replay = round(batch_size * replay_share) if replay else 0
    order: list[int] = []
    batches = []
    for _ in range(steps):
        rows = []
        for _ in range(batch_size - n_replay):
            if not order:
                order = list(range(len(examples)))
                rng.shuffle(order)
            rows.append(examples[order.pop()])
        rows += [rng.choice(replay) for _ in range(n_replay)]
        batches.append(rows)
    return batches


def fresh_adapter(model, lora):
    """A peft model wrapped as train_lora wraps it."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(lora.seed)
    config = LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=list(lora.target_modules), task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def _adamw(peft_model, lr: float):
    return torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=lr)


def _timed_steps(peft_model, lr: float, steps: list, backward) -> float:
    """Seconds for `backward(step)` then one AdamW update, for every step of `steps`."""
    opt = _adamw(peft_model, lr)
    peft_model.train()
    t0 = time.perf_counter()
    for step in steps:
        backward(step)
        opt.step()
        opt.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - t0
    peft_model.eval()
    return seconds


def bare_padded(peft_model, batches: list[dict], lr: float) -> float:
    """Seconds for the naive steps over pre-padded batches."""
    def backward(b):
        logits = peft_model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), b["labels"][:, 1:].flatten(),
                                          ignore_index=IGNORE).backward()
    return _timed_steps(peft_model, lr, batches, backward)


def bare_unpadded(peft_model, steps: list[list[dict]], lr: float) -> float:
    """Seconds for the equal-length-group steps (no attention mask: nothing to mask)."""
    def backward(groups):
        targets = sum(int((g["labels"][:, 1:] != IGNORE).sum()) for g in groups)
        for g in groups:
            logits = peft_model(input_ids=g["input_ids"]).logits
            (torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), g["labels"][:, 1:].flatten(),
                                               ignore_index=IGNORE, reduction="sum") / max(targets, 1)).backward()
    return _timed_steps(peft_model, lr, steps, backward)


def equal_length_groups(rows, pad_id: int) -> list[dict]:
    rows = sorted(rows, key=lambda r: len(r[0]))
    return [collate(list(group), pad_id) for _, group in groupby(rows, key=lambda r: len(r[0]))]


def compiled_vs_eager(loop: "RecipeLoop", steps: int, seed: int, backend: str,
                      next_adapter: Callable[[], "RecipeLoop"], rounds: int = 3) -> dict:
    """The bench's loop with its peft model under torch.compile against the same loop eager.

    fit_adapter calls the model like any module, so the compiled wrapper stands in for it
    unchanged. Compiling is timed three times, as the first two steps less two eager ones: cold
    (an empty inductor cache: the first process on a machine), warm (compiled again after a
    reset, the on-disk cache filled: every later process) and for the next adapter in the same
    process (`next_adapter`: a freshly loaded model with a fresh adapter, as the bench builds one
    per adapter, compiled without a reset). Then `rounds` timed fits each, taking turns, so a
    drift in the machine's speed falls on both; the medians are compared."""
    from torch._inductor.runtime.cache_dir_utils import temporary_cache_dir   # loads inductor: only here

    eager = loop.peft_model

    def first_steps(model, on: "RecipeLoop" = loop) -> float:
        on.peft_model = model
        t0 = time.perf_counter()
        on.fit(2, random.Random(seed + 1))
        return time.perf_counter() - t0

    try:
        # torch's own switch of TORCHINDUCTOR_CACHE_DIR (it also clears the in-memory caches)
        with tempfile.TemporaryDirectory() as cache, temporary_cache_dir(cache):
            eager_first = first_steps(eager)
            cold = first_steps(torch.compile(eager, dynamic=True, backend=backend)) - eager_first
            torch._dynamo.reset()
            compiled = torch.compile(eager, dynamic=True, backend=backend)
            warm = first_steps(compiled) - eager_first
            fits = {"eager": [], "compiled": []}
            for _ in range(rounds):
                for name, model in (("eager", eager), ("compiled", compiled)):
                    loop.peft_model = model
                    fits[name].append(loop.fit(steps, random.Random(seed)))
            other = next_adapter()
            try:
                other_eager = first_steps(other.peft_model, other)
                other_compiled = torch.compile(other.peft_model, dynamic=True, backend=backend)
                following = first_steps(other_compiled, other) - other_eager
            finally:
                other.gen.close()
    finally:
        loop.peft_model = eager
        torch._dynamo.reset()   # later sections run eager, with no compiled graphs held
    mid = {name: sorted(runs, key=lambda f: f["seconds"])[len(runs) // 2] for name, runs in fits.items()}
    return {"fit": mid["compiled"], "compiled_over_eager": mid["compiled"]["seconds"] / mid["eager"]["seconds"],
            "eager_step_seconds": mid["eager"]["seconds"] / steps,
            "compile_round_seconds": {name: [round(f["seconds"], 3) for f in runs] for name, runs in fits.items()},
            "compile_seconds_cold": cold, "compile_seconds_warm": warm,
            "compile_seconds_next_adapter": following, "compile_rounds": rounds, "compile_backend": backend}


def _bench_calls(rows) -> int:
    """Forward calls fit_adapter makes for one batch: one per micro-batch where the loop splits
    batches (bench.models.training.micro_batches), else one."""
    try:
        from bench.models.training import micro_batches
    except ImportError:
        return 1
    return len(micro_batches(rows))


@dataclass
class RecipeLoop:
    """An arm's recipe ready to train: the generator, a fresh peft model on it, the examples, and
    `fit(steps, rng)`: the bench's own loop on them."""
    gen: object
    peft_model: object
    examples: list
    replay: list
    lora: object

    def fit(self, steps: int, rng: random.Random) -> dict:
        from bench.models.lora import fit_adapter

        replay_fn = (lambda r: r.choice(self.replay)) if self.replay else None
        return fit_adapter(self.peft_model, self.gen.tokenizer, self.examples, steps=steps, rng=rng,
                           batch_size=self.lora.batch_size, lr=self.lora.lr,
                           replay_share=self.lora.replay_share, replay=replay_fn, progress=False)


def recipe_loop(model_name: str, cfg, arm_name: str, dataset, steps: int, seed: int) -> RecipeLoop:
    """The named arm's training examples and LoRA recipe on `model_name`, `steps` per fit."""
    from bench.arms.adapter import training_examples
    from bench.models.generator import Generator

    training, lora = arm_recipe(cfg, arm_name)
    gen = Generator.load(model_name, chat=cfg.model.chat, demos=0)   # adapted arms: no worked turns
    examples, replay = training_examples(training, dataset, seed, gen.answer_style, gen.chat)
    lora = replace(lora, seed=seed, steps=steps, replay_share=lora.replay_share if replay else 0.0)
    return RecipeLoop(gen, fresh_adapter(gen.model, lora), examples, replay, lora)


def timed_fit(loop: RecipeLoop, steps: int, seed: int) -> dict:
    """The bench's loop for `steps` steps after a two-step warm-up: what bench_fit_adapter times."""
    loop.fit(2, random.Random(seed + 1))
    return loop.fit(steps, random.Random(seed))


def step_seconds(model_name: str, cfg, arm_name: str, dataset, steps: int, seed: int, rounds: int = 3) -> float:
    """Seconds a step of the bench's own LoRA loop takes here, the median of `rounds` fits (one
    fit moves ~15% from the next): this machine's speed in the unit `make all` spends most of its
    time in (scripts/time_make_all.sh logs it beside each target, since machines of one CPU name
    differ: 114 and 177 ms on two "Intel Xeon"s)."""
    loop = recipe_loop(model_name, cfg, arm_name, dataset, steps, seed)
    try:
        seconds = [timed_fit(loop, steps, seed)["seconds"]]   # the first as bench_fit_adapter times it
        seconds += [loop.fit(steps, random.Random(seed))["seconds"] for _ in range(rounds - 1)]
        return statistics.median(seconds) / steps
    finally:
        loop.gen.close()


def measure(model_name: str, cfg, arm_name: str, dataset, steps: int, seed: int,
            progress: bool = False, compile_backend: str = "inductor") -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(lora_step table, lora_profile table, headline ratios)."""
    loop = recipe_loop(model_name, cfg, arm_name, dataset, steps, seed)
    gen, peft_model, examples, replay, lora = loop.gen, loop.peft_model, loop.examples, loop.replay, loop.lora
    tok, pad = gen.tokenizer, gen.tokenizer.pad_token_id
    fit = timed_fit(loop, steps, seed)
    with torch.autocast("cpu", dtype=torch.bfloat16):   # the same loop in bfloat16 (this CPU's own)
        bf16 = timed_fit(loop, steps, seed)
    compiled = (compiled_vs_eager(loop, steps, seed, compile_backend,
                                  lambda: recipe_loop(model_name, cfg, arm_name, dataset, steps, seed))
                if compile_backend else None)

    drawn = draw_batches(examples, replay, lora.batch_size, lora.replay_share, steps, seed)
    t0 = time.perf_counter()
    encoded = [[encode_example(tok, *ex) for ex in rows] for rows in drawn]
    tokenize_s = time.perf_counter() - t0
    real = sum(len(ids) for rows in encoded for ids, _ in rows)
    padded = [collate(rows, pad) for rows in encoded]
    grouped = [equal_length_groups(rows, pad) for rows in encoded]
    bare_padded(peft_model, padded[:2], lora.lr)                     # warm-up of the bare paths
    bare_unpadded(peft_model, grouped[:2], lora.lr)
    padded_s = bare_padded(peft_model, padded, lora.lr)
    unpadded_s = bare_unpadded(peft_model, grouped, lora.lr)

    naive_positions = sum(b["input_ids"].numel() for b in padded)
    bench_positions = fit.get("padded_positions", naive_positions)   # the loop before micro-batches padded naively
    match = int(fit["tokens"]) == real
    per = lambda x: x / steps
    rows_calls = per(sum(_bench_calls(r) for r in encoded))
    rows = [
        _row("bench_fit_adapter", steps, lora.batch_size, fit["seconds"], real, bench_positions,
             rows_calls, match),
        _row("bare_padded", steps, lora.batch_size, padded_s, real, naive_positions, 1.0, None),
        _row("bare_unpadded", steps, lora.batch_size, unpadded_s, real, real,
             per(sum(len(g) for g in grouped)), None),
        _row("tokenize", steps, lora.batch_size, tokenize_s, real, float("nan"), 0.0, None),
        _row("bench_bf16_autocast", steps, lora.batch_size, bf16["seconds"], real, bench_positions,
             rows_calls, match),
    ]
    if compiled:
        rows.append(_row("bench_compiled", steps, lora.batch_size, compiled["fit"]["seconds"], real, bench_positions,
                         rows_calls, match))
    table = pd.DataFrame(rows, columns=COLUMNS)
    profile, where = lora_profile.measure(loop.fit, min(steps, PROFILED_STEPS), seed, fit["seconds"] / steps)
    by = table.set_index("path")["seconds_per_step"]
    headline = {"bench_over_bare_padded": by["bench_fit_adapter"] / by["bare_padded"],
                "bench_over_bare_unpadded": by["bench_fit_adapter"] / by["bare_unpadded"],
                "bf16_over_fp32": bf16["seconds"] / fit["seconds"],
                "batches_match": match, "train_examples": len(examples), "replay_examples": len(replay),
                "lora": lora.to_json(), **where}
    if compiled:
        headline.update({k: v for k, v in compiled.items() if k != "fit"})
    if progress:
        print("perf lora: " + ", ".join(f"{r['path']} {r['seconds_per_step'] * 1000:.0f} ms/step"
                                        for r in rows), flush=True)
    gen.close()
    return table, profile, headline


def _row(path, steps, batch_size, seconds, real, positions, calls, match) -> dict:
    return {"path": path, "steps": steps, "batch_size": batch_size,
            "seconds_per_step": seconds / steps, "real_tokens_per_step": real / steps,
            "positions_per_step": positions / steps,
            "padding_share": 1 - real / positions if positions == positions and positions else float("nan"),
            "forward_calls_per_step": calls,
            "real_tokens_per_s": real / seconds if seconds and path != "tokenize" else float("nan"),
            "batches_match": match}
