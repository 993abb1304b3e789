"""Pretrain the pocket model from scratch on its background world (see recipe.py for the knobs)."""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from pathlib import Path
from typing import Iterator, Sequence

import torch
from tqdm import tqdm
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from bench.io import atomic_folder
from bench.models.generator import save_answer_style
from bench.models.training import IGNORE, collate, encode_example, per_example_loss
from bench.pocket import data
from bench.pocket.recipe import RECIPE_FILE, PocketRecipe, checkpoint_hash
from bench.pocket.tokenizer import train_tokenizer


def batches(rng: random.Random, tokenizer, stream: Iterator, batch_size: int) -> Iterator[dict]:
    vocab = len(tokenizer)
    while True:
        rows = []
        for _ in range(batch_size):
            kind, example = next(stream)
            if kind == "induction":
                ids, first = data.induction_example(rng, vocab)
                rows.append((ids, [IGNORE] * first + ids[first:]))
            else:
                rows.append(encode_example(tokenizer, *example))
        yield collate(rows, tokenizer.pad_token_id)


@torch.no_grad()
def teacher_forced_accuracy(model, tokenizer, examples: Sequence[tuple[str, str]]) -> float:
    """Share of examples whose every target token is the argmax: a cheap stand-in for greedy EM."""
    model.eval()
    batch = collate([encode_example(tokenizer, p, t) for p, t in examples], tokenizer.pad_token_id)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    pred = logits[:, :-1].argmax(-1)
    gold = batch["labels"][:, 1:]
    ok = ((pred == gold) | (gold == IGNORE)).all(dim=1)
    model.train()
    return ok.float().mean().item()


def _sample(rng: random.Random, items: list, n: int) -> list:
    return rng.sample(items, min(n, len(items)))


def model_config(recipe: PocketRecipe, tokenizer) -> LlamaConfig:
    return LlamaConfig(vocab_size=len(tokenizer), hidden_size=recipe.hidden,
                       num_hidden_layers=recipe.layers, num_attention_heads=recipe.heads,
                       num_key_value_heads=recipe.heads, intermediate_size=recipe.intermediate,
                       max_position_embeddings=recipe.max_positions, tie_word_embeddings=True,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id)


def build_pocket(recipe: PocketRecipe, out_dir: Path | str, progress: bool = True) -> dict:
    """Train tokenizer and model, save both with save_pretrained; returns the training log.

    A two-stage recipe keeps its first stage's checkpoint in `<out_dir>.stage1` and reuses it
    when its hash matches: the first stage is most of the build's time."""
    out_dir = Path(out_dir)
    if not recipe.stage2_steps:
        return _build_first_stage(recipe, out_dir, progress)
    first = recipe.first_stage()
    first_dir = out_dir.with_name(out_dir.name + ".stage1")
    if checkpoint_hash(first_dir) != first.hash():
        _build_first_stage(first, first_dir, progress)
    stage1 = json.loads((first_dir / RECIPE_FILE).read_text())

    torch.manual_seed(recipe.seed + 3)
    torch.set_num_threads(recipe.threads)
    rng = random.Random(recipe.seed + 3)
    world = data.background_world(recipe)
    tokenizer = AutoTokenizer.from_pretrained(first_dir)
    model = LlamaForCausalLM.from_pretrained(first_dir)
    stream = batches(rng, tokenizer, data.mixture(rng, world, recipe.weights, recipe.max_k,
                                                  recipe.answer_style), recipe.batch_size)
    log, seconds, tokens = _train(model, tokenizer, recipe, recipe.stage2_steps, recipe.stage2_lr,
                                  recipe.stage2_warmup_steps, lambda step: stream,
                                  _monitor(recipe, world), out_dir, progress, first_step=recipe.steps)
    summary = {"hash": recipe.hash(), "recipe": recipe.to_json(), "log": stage1["log"] + log,
               "train_seconds": round(stage1["train_seconds"] + seconds, 1),
               "stage_seconds": [stage1["train_seconds"], seconds],
               "stage1_hash": stage1["hash"], "tokens": stage1["tokens"] + tokens,
               "parameters": sum(p.numel() for p in model.parameters()),
               "torch": torch.__version__}
    _finish(model, tokenizer, summary, out_dir, recipe.answer_style)
    return summary


def _build_first_stage(recipe: PocketRecipe, out_dir: Path, progress: bool) -> dict:
    torch.manual_seed(recipe.seed)
    torch.set_num_threads(recipe.threads)
    rng = random.Random(recipe.seed)
    world = data.background_world(recipe)

    sample_rng = random.Random(recipe.seed + 1)
    corpus = [p.text for p in world.passages()]
    style = recipe.answer_style
    corpus += [" ".join(data.reading_example(sample_rng, recipe.max_k, answer_style=style))
               for _ in range(3000)]
    tokenizer = train_tokenizer(corpus, recipe.vocab_size)
    model = LlamaForCausalLM(model_config(recipe, tokenizer))
    monitor = _monitor(recipe, world)

    early = batches(rng, tokenizer,
                    data.mixture(rng, world, recipe.curriculum_weights, recipe.max_k, style),
                    recipe.batch_size)
    main = batches(rng, tokenizer, data.mixture(rng, world, recipe.weights, recipe.max_k, style),
                   recipe.batch_size)
    log, seconds, tokens = _train(
        model, tokenizer, recipe, recipe.steps, recipe.lr, recipe.warmup_steps,
        lambda step: early if step < recipe.curriculum_steps else main, monitor, out_dir, progress)
    summary = {"hash": recipe.hash(), "recipe": recipe.to_json(), "log": log,
               "train_seconds": seconds, "tokens": tokens,
               "parameters": sum(p.numel() for p in model.parameters()),
               "torch": torch.__version__}
    _finish(model, tokenizer, summary, out_dir, style)
    return summary


def _monitor(recipe: PocketRecipe, world) -> dict[str, list]:
    """Held-out examples scored teacher-forced while training: binding, reading, recall."""
    held_rng = random.Random(recipe.seed + 2)
    style = recipe.answer_style
    return {
        "binding_k3": [data.reading_example(held_rng, max_k=3, abstain_share=0.0,
                                            same_attribute_share=1.0, answer_style=style)
                       for _ in range(96)],
        "reading_k4": [data.reading_example(held_rng, max_k=4, answer_style=style) for _ in range(96)],
        "recall": [data.closed_book_example(held_rng, world, e, a)
                   for e, a in _sample(held_rng, data.background_qa_facts(world)[0], 96)],
    }


def _train(model, tokenizer, recipe: PocketRecipe, steps: int, lr: float, warmup_steps: int,
           stream_at, monitor: dict, out_dir: Path, progress: bool,
           first_step: int = 0) -> tuple[list[dict], float, int]:
    """AdamW under warm-up then cosine decay to a tenth of `lr`; returns (log, seconds, tokens).
    `stream_at(step)` gives the batch stream for a step; the log counts steps from `first_step`."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))

    def lr_at(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        done = (step - warmup_steps) / max(1, steps - warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    log, tokens, start = [], 0, time.perf_counter()
    bar = tqdm(range(steps), desc="pocket model", disable=not progress)
    model.train()
    for step in bar:
        batch = next(stream_at(step))
        loss = per_example_loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        tokens += int(batch["attention_mask"].sum())
        if (step + 1) % recipe.eval_every == 0 or step + 1 == steps:
            row = {"step": first_step + step + 1, "loss": round(loss.item(), 4),
                   "seconds": round(time.perf_counter() - start, 1), "tokens": tokens}
            row.update({k: round(teacher_forced_accuracy(model, tokenizer, v), 3)
                        for k, v in monitor.items()})
            log.append(row)
            bar.write(json.dumps(row))
            # a snapshot to inspect while training goes on; never mistaken for the real thing
            _save(model, tokenizer, {"hash": None, "log": log},
                  out_dir.with_name(out_dir.name + ".partial"), recipe.answer_style)
    return log, round(time.perf_counter() - start, 1), tokens


def _finish(model, tokenizer, summary: dict, out_dir: Path, answer_style: str) -> None:
    _save(model, tokenizer, summary, out_dir, answer_style)
    shutil.rmtree(out_dir.with_name(out_dir.name + ".partial"), ignore_errors=True)


def _save(model, tokenizer, summary: dict, out_dir: Path, answer_style: str) -> None:
    """Write next to the target and rename: a killed build never leaves a half checkpoint."""
    # a reloaded tokenizer carries how it was loaded (from a folder, under HF_HUB_OFFLINE or not)
    # into its saved config: the files must not depend on how the build was run
    for key in ("is_local", "local_files_only"):
        tokenizer.init_kwargs.pop(key, None)
    with atomic_folder(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / RECIPE_FILE).write_text(json.dumps(summary, indent=1))
        save_answer_style(tmp, answer_style)
