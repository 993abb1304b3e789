"""Causal-LM training pieces every trainer here shares (the LoRA trainer, the pocket model's
pretraining): prompt/target examples -> token ids with the loss on the target only, padded
batches, length-sorted micro-batches, and a per-example loss."""

from __future__ import annotations

from typing import Sequence

import torch
from transformers import PreTrainedTokenizerBase

IGNORE = -100


def encode_example(tokenizer: PreTrainedTokenizerBase, prompt: str, target: str) -> tuple[list[int], list[int]]:
    """Token ids and labels; the loss covers the target (or everything, for plain text)."""
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    if not prompt:
        return target_ids, list(target_ids)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return prompt_ids + target_ids, [IGNORE] * len(prompt_ids) + target_ids


def collate(rows: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id)
    labels = torch.full((len(rows), width), IGNORE)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        ids[i, :len(x)] = torch.tensor(x)
        labels[i, :len(y)] = torch.tensor(y)
        mask[i, :len(x)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


# What one more forward call costs, in padded token positions (measured on two cores with the
# pocket model: a micro-batch's fixed cost is about that of 64 positions). It keeps the split
# from cutting a batch into many tiny forwards.
CALL_COST_TOKENS = 64


def micro_batches(rows: Sequence[tuple[list[int], list[int]]],
                  call_cost: int = CALL_COST_TOKENS) -> list[list[tuple[list[int], list[int]]]]:
    """One batch's rows as length-sorted groups, each padded only to its own longest row.

    A QA batch mixes 15-token questions with 60-90-token documents and reading replay: padded
    as one tensor, most positions are padding. Sorted by length and cut where it pays (an exact
    partition by dynamic programming over the sorted lengths, cost = padded positions + a fixed
    cost per forward), the same rows cost far fewer positions. The gradient is the same sum of
    per-example losses (`train_step`), so the science does not change; only float rounding."""
    rows = sorted(rows, key=lambda r: len(r[0]))
    n = len(rows)
    best, cut = [0] + [None] * n, [0] * (n + 1)   # best[j]: cheapest cost of rows[:j]
    for j in range(1, n + 1):
        width = len(rows[j - 1][0])               # sorted: the group's last row is its longest
        for i in range(j):
            cost = best[i] + call_cost + width * (j - i)
            if best[j] is None or cost < best[j]:
                best[j], cut[j] = cost, i
    groups, j = [], n
    while j > 0:
        groups.append(rows[cut[j]:j])
        j = cut[j]
    return groups[::-1]


def train_step(model, rows: Sequence[tuple[list[int], list[int]]], pad_id: int, device) -> tuple[float, int]:
    """Backward of the mean per-example loss over `rows`, one length-sorted micro-batch at a time
    (gradients accumulate); returns (loss, padded positions run)."""
    groups = micro_batches(rows)
    n = sum(any(y != IGNORE for y in labels[1:]) for _, labels in rows)   # as example_losses counts
    total, positions = 0.0, 0
    for group in groups:
        batch = {k: v.to(device) for k, v in collate(group, pad_id).items()}
        loss_sum, count = example_losses(model, batch)
        if count:
            (loss_sum / n).backward()
            total += loss_sum.item() / n
        positions += batch["input_ids"].numel()
    return total, positions


def per_example_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean over examples of each example's mean token loss.

    The usual mean over all tokens lets a 60-token biography outweigh a 3-token answer twenty
    to one; here every example, answer-only QA included, pulls with the same weight."""
    loss_sum, count = example_losses(model, batch)
    return loss_sum / count


# Causal LMs whose forward is `lm_head(decoder(...))` and nothing after it (no logit scaling or
# soft-capping), so the head may run on chosen positions alone. Others take the full path.
HEAD_ONLY_ON_LABELS = frozenset({"llama", "mistral", "qwen2", "qwen3"})


def example_losses(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """(sum over examples of each example's mean token loss, examples with a target).

    The vocabulary head runs only where a label is: QA rows train on a 3-5-token answer after a
    15-token question, so ~60% of a LoRA batch's positions (accuracy recipe, pocket model) carry
    no loss, and their logits, log-softmax and backward were pure waste (~9% of a step at one
    thread). The same losses, summed in another order: only float rounding moves."""
    labels = batch["labels"][:, 1:]
    keep = labels != IGNORE
    base = model.get_base_model() if hasattr(model, "get_base_model") else model   # peft or plain
    if getattr(base.config, "model_type", None) in HEAD_ONLY_ON_LABELS:
        hidden = base.get_decoder()(input_ids=batch["input_ids"],
                                    attention_mask=batch["attention_mask"]).last_hidden_state
        logits = base.get_output_embeddings()(hidden[:, :-1][keep])
    else:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1][keep]
    token_loss = torch.nn.functional.cross_entropy(logits.float(), labels[keep], reduction="none")
    counts = keep.sum(dim=1)
    row_of_token = keep.nonzero()[:, 0]
    per_row = torch.zeros(len(labels), dtype=token_loss.dtype, device=token_loss.device)
    per_example = per_row.index_add(0, row_of_token, token_loss) / counts.clamp(min=1)
    return per_example[counts > 0].sum(), int((counts > 0).sum())
