"""Causal-LM training pieces every trainer here shares (the LoRA trainer, the pocket model's
pretraining): prompt/target examples -> token ids with the loss on the target only, padded
batches, and a per-example loss."""

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


def per_example_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean over examples of each example's mean token loss.

    The usual mean over all tokens lets a 60-token biography outweigh a 3-token answer twenty
    to one; here every example, answer-only QA included, pulls with the same weight."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"][:, 1:]
    token_loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE,
        reduction="none").view(labels.shape)
    counts = (labels != IGNORE).sum(dim=1)
    per_example = token_loss.sum(dim=1) / counts.clamp(min=1)
    return per_example[counts > 0].mean()
