"""Generation: what `Generator.generate` costs against a bare greedy KV-cache loop doing the same
work, and what batching buys.

Three paths over the same prompts (closed-book and RAG prompts of a synthetic world):
  generator_batched        `Generator.generate` at its batch size (the arms' path)
  generator_one_at_a_time  the same generator at batch size 1 (what one user waits for)
  bare_kv_loop             the very batches the generator's `model.generate` received (its
                           grouping, left padding and attention masks, captured once), one forward
                           over the prompt with the cache on, then argmax token by token feeding
                           the cache back, for exactly as many new tokens as `generate` returned
                           for that batch (it stops when every row has ended): the same work, so
                           the difference is the per-token overhead of `generate` and the
                           generator's own tokenizing and decoding.

The bare loop's tokens are checked against the generator's (up to each row's end of sequence:
after it `generate` feeds padding, the bare loop keeps going), so a speed-up that changed the
answers would show as `tokens_match = False`. Each path is warmed up once (first-call kernel and
allocator costs out of the timing), then the repeats are interleaved path by path so a load
change on a shared machine hits all three alike; the median is reported.
"""

from __future__ import annotations

import inspect
import random
import statistics
import time
from dataclasses import dataclass

import pandas as pd
import torch

from bench.prompts import closed_book_prompt, context_prompt

COLUMNS = ["prompts", "path", "batch_size", "items", "prompt_tokens_mean", "prompt_positions_per_item",
           "new_positions_per_item",
           "seconds", "seconds_min", "repeats", "items_per_s", "tokens_match"]
RATIO_COLUMNS = ["prompts", "generator_over_bare_time", "batched_over_one_at_a_time", "tokens_match"]


def world_prompts(dataset, n: int, seed: int) -> dict[str, list[tuple[str, bool]]]:
    """(prompt, has context) per kind: closed-book on test questions, and RAG prompts built the
    way the rag arm builds them (bench.prompts.context_prompt) with the question's gold passage
    standing in for the top-1 hit (the accuracy study retrieves k = 1)."""
    test = dataset.split("test")
    items = random.Random(f"perf:{seed}").sample(test, min(n, len(test)))
    by_id = {p.id: p.text for p in dataset.passages}
    gold = [q for q in test if q.gold_ids and q.gold_ids[0] in by_id]
    gold = random.Random(f"perf-rag:{seed}").sample(gold, min(n, len(gold)))
    return {"closed_book": [(closed_book_prompt(q.question), False) for q in items],
            "rag": [(context_prompt(q.question, [by_id[q.gold_ids[0]]]), True) for q in gold]}


@dataclass
class Captured:
    """What the generator's `model.generate` saw and returned, batch by batch."""
    input_ids: list[torch.Tensor]
    attention_mask: list[torch.Tensor]
    new: list[torch.Tensor]          # the new tokens per batch (rows x positions generated)


def capture(gen, prompts: list[str]) -> Captured:
    """Run `gen.generate` once with its model's `generate` observed (an instance attribute that
    shadows the method for this call only; untimed): the exact tensors and tokens per batch."""
    got = Captured([], [], [])
    real = gen.model.generate

    def observed(*args, **kwargs):
        ids = real(*args, **kwargs)
        inputs = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask")
        got.input_ids.append(inputs)
        got.attention_mask.append(torch.ones_like(inputs) if mask is None else mask)
        got.new.append(ids[:, inputs.shape[1]:])
        return ids

    gen.model.generate = observed
    try:
        gen.generate(prompts)
    finally:
        del gen.model.generate
    return got


def _cache_key(model) -> str:
    # transformers 5 calls the KV cache argument `cache` (`past_key_values` before)
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


@torch.no_grad()
def bare_greedy(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """Greedy decoding with the KV cache and nothing else: no stopping, no logits processors.
    Positions count from each row's first real token, as `generate` numbers them under left
    padding (rotary models such as the pocket model are blind to that shift, models with learned
    absolute positions are not); the attention mask keeps padding out, which every model needs."""
    key = _cache_key(model)
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                use_cache=True, logits_to_keep=1)
    cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
    token = out.logits[:, -1].argmax(-1, keepdim=True)
    tokens, last = [token], positions[:, -1:]
    ones = attention_mask.new_ones((attention_mask.shape[0], 1))
    for _ in range(new_tokens - 1):
        attention_mask = torch.cat([attention_mask, ones], dim=1)
        last = last + 1
        out = model(input_ids=token, attention_mask=attention_mask, position_ids=last,
                    use_cache=True, **{key: cache})
        cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        tokens.append(token)
    return torch.cat(tokens, dim=1)


def bare_run(model, tokenizer, prompts: list[str], got: Captured) -> list[torch.Tensor]:
    """The bare loop over the generator's own batches: the very tensors its `model.generate` got
    (however the generator groups and pads prompts: it now sorts them by length), for as many new
    tokens as it returned. The prompts are tokenized once first, inside the timing: the generator
    tokenizes too, so both paths pay for it."""
    tokenizer(prompts, add_special_tokens=False)
    return [bare_greedy(model, ids, mask, int(new.shape[1]))
            for ids, mask, new in zip(got.input_ids, got.attention_mask, got.new)]


def tokens_match(generated: list[torch.Tensor], bare: list[torch.Tensor], eos_id: int) -> bool:
    """Every row of every batch: the bare tokens equal the generator's up to and including its
    first end of sequence (all of the row when it has none)."""
    for g, b in zip(generated, bare, strict=True):
        if g.shape != b.shape:
            return False
        for grow, brow in zip(g, b):
            ended = (grow == eos_id).nonzero()
            n = int(ended[0]) + 1 if len(ended) else len(grow)
            if not torch.equal(grow[:n], brow[:n]):
                return False
    return True


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure_kind(gen, kind: str, prompts: list[str], batch_size: int, repeats: int) -> tuple[list[dict], dict]:
    """Rows of the generation table for one prompt kind, and its ratios row."""
    from bench.models.generator import Generator

    gen.batch_size = batch_size
    single = Generator(gen.model, gen.tokenizer, max_new_tokens=gen.max_new_tokens, batch_size=1,
                       answer_style=gen.answer_style, chat=gen.chat)
    got = capture(gen, prompts)                       # also the batched path's warm-up
    bare = bare_run(gen.model, gen.tokenizer, prompts, got)   # and the bare loop's
    match = tokens_match(got.new, bare, gen.tokenizer.eos_token_id)
    single.generate(prompts[:2])                      # warm-up of the one-at-a-time path
    one_new: list[int] = []

    def one_at_a_time():
        one_new.clear()
        one_new.extend(g.completion_tokens for g in single.generate(prompts))

    paths = {"generator_batched": lambda: gen.generate(prompts),
             "generator_one_at_a_time": one_at_a_time,
             "bare_kv_loop": lambda: bare_run(gen.model, gen.tokenizer, prompts, got)}
    seconds: dict[str, list[float]] = {p: [] for p in paths}
    for _ in range(repeats):                          # interleaved: load drift hits every path
        for name, fn in paths.items():
            seconds[name].append(_timed(fn))
    n = len(prompts)
    prompt_tokens = statistics.mean(gen.count_tokens(prompts))
    # the work per item: prompt positions run (padding included) and new positions decoded
    batched = (batch_size, sum(t.numel() for t in got.input_ids) / n, sum(t.numel() for t in got.new) / n)
    work = {"generator_batched": batched,
            "generator_one_at_a_time": (1, prompt_tokens, _one_positions(one_new, single.answer_budget())),
            "bare_kv_loop": batched}
    rows = []
    for name, times in seconds.items():
        med = statistics.median(times)
        rows.append({"prompts": kind, "path": name, "batch_size": work[name][0], "items": n,
                     "prompt_tokens_mean": prompt_tokens, "prompt_positions_per_item": work[name][1],
                     "new_positions_per_item": work[name][2],
                     "seconds": med, "seconds_min": min(times), "repeats": repeats,
                     "items_per_s": n / med,
                     "tokens_match": match if name == "bare_kv_loop" else None})
    by = {r["path"]: r for r in rows}
    ratio = {"prompts": kind,
             "generator_over_bare_time": by["generator_batched"]["seconds"] / by["bare_kv_loop"]["seconds"],
             "batched_over_one_at_a_time": by["generator_batched"]["items_per_s"]
             / by["generator_one_at_a_time"]["items_per_s"],
             "tokens_match": match}
    return rows, ratio


def _one_positions(completion_tokens: list[int], budget: int) -> float:
    # a batch of one stops at its end of sequence (one position more than the answer's tokens,
    # the EOS itself) or at the budget
    if not completion_tokens:
        return float("nan")
    return statistics.mean(min(c + 1, budget) for c in completion_tokens)


def measure(gen, dataset, n: int, seed: int, batch_size: int, repeats: int,
            progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(generation table, ratios table) for closed-book and RAG prompts."""
    rows, ratios = [], []
    for kind, pairs in world_prompts(dataset, n, seed).items():
        prompts = [gen.wrap(p, ctx) for p, ctx in pairs]
        if not prompts:
            continue
        r, ratio = measure_kind(gen, kind, prompts, batch_size, repeats)
        rows += r
        ratios.append(ratio)
        if progress:
            print(f"perf generation {kind}: " + ", ".join(f"{x['path']} {x['items_per_s']:.1f} items/s"
                                                         for x in r), flush=True)
    return pd.DataFrame(rows, columns=COLUMNS), pd.DataFrame(ratios, columns=RATIO_COLUMNS)
