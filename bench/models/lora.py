"""LoRA fine-tuning with peft: inject a corpus (and training questions) into a causal LM."""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import torch
from peft import LoraConfig, get_peft_model
from tqdm import tqdm

from bench.models.training import encode_example, train_step

Example = tuple[str, str]   # (prompt, target); empty prompt = language modelling on the target


@dataclass(frozen=True)
class LoraSettings:
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj",
                                       "gate_proj", "up_proj", "down_proj")
    steps: int = 200
    batch_size: int = 32
    lr: float = 2e-3
    replay_share: float = 0.3     # share of each batch drawn from `replay` (keeps old skills)
    seed: int = 0                 # in experiment YAML the run's seeds set it, never the arm

    def validate(self, where: str) -> None:
        from bench.config import ConfigError

        for key in ("rank", "alpha", "steps", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key}: expected >= 1, got {getattr(self, key)}")
        if not self.lr > 0:
            raise ConfigError(f"{where}.lr: expected > 0, got {self.lr}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"{where}.dropout: expected 0 <= x < 1, got {self.dropout}")
        if not 0 <= self.replay_share < 1:
            raise ConfigError(f"{where}.replay_share: expected 0 <= x < 1, got {self.replay_share}")
        if not self.target_modules:
            raise ConfigError(f"{where}.target_modules: expected at least one module name")
        if self.seed != 0:
            raise ConfigError(f"{where}.seed: set by the experiment's `seeds:`, not per arm")

    def to_json(self) -> dict:
        return asdict(self)


def train_lora(model, tokenizer, examples: Sequence[Example], settings: LoraSettings,
               replay: Callable[[random.Random], Example] | None = None,
               progress: bool = True):
    """Wrap `model` with a fresh LoRA adapter and train it; returns (peft_model, stats)."""
    if not examples:
        raise ValueError("LoRA training needs at least one example")
    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=list(settings.target_modules), task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in peft_model.parameters())
    fit = fit_adapter(peft_model, tokenizer, examples, steps=settings.steps,
                      batch_size=settings.batch_size, lr=settings.lr,
                      replay_share=settings.replay_share, rng=rng, replay=replay, progress=progress)
    stats = {"trainable_parameters": trainable, "total_parameters": total,
             "train_seconds": round(fit["seconds"], 2), "train_tokens": fit["tokens"],
             "train_padded_positions": fit["padded_positions"],
             "final_loss": fit["final_loss"], "settings": settings.to_json()}
    return peft_model, stats


def fit_adapter(peft_model, tokenizer, examples: Sequence[Example], *, steps: int, batch_size: int,
                lr: float, replay_share: float, rng: random.Random,
                replay: Callable[[random.Random], Example] | None = None, progress: bool = True,
                desc: str = "LoRA") -> dict:
    """Train the parameters of `peft_model` that require grad: the one loop for a fresh adapter
    and for continued training (freshness). Returns seconds, tokens and the final loss."""
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 20) * max(0.1, 1 - s / steps))
    n_replay = round(batch_size * replay_share) if replay else 0
    encoded: dict[Example, tuple[list[int], list[int]]] = {}   # each distinct example tokenized once

    def encode(example: Example):
        if example not in encoded:
            encoded[example] = encode_example(tokenizer, *example)
        return encoded[example]

    order: list[int] = []
    tokens = positions = 0
    start = time.perf_counter()
    peft_model.train()
    for _ in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
        rows = []
        for _ in range(batch_size - n_replay):
            if not order:   # epochs over the examples, reshuffled each time
                order = list(range(len(examples)))
                rng.shuffle(order)
            rows.append(encode(examples[order.pop()]))
        rows += [encode(replay(rng)) for _ in range(n_replay)]
        loss, padded = train_step(peft_model, rows, tokenizer.pad_token_id, peft_model.device)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        tokens += sum(len(ids) for ids, _ in rows)
        positions += padded
    peft_model.eval()
    return {"seconds": time.perf_counter() - start, "tokens": tokens, "padded_positions": positions,
            "final_loss": round(loss, 4)}
