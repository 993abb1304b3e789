"""One LoRA training step of a model at a fixed shape, timed (the figure the README quotes).

    .venv/bin/python scripts/measure_lora_step.py [--model smollm2-135m] [--batch 8] [--tokens 64]

Random token ids at batch x tokens, the bench's loss (bench.models.training.per_example_loss),
AdamW; the first step warms up and is not counted; prints the median of the rest for every
target-module set asked. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from peft import LoraConfig, get_peft_model

from bench.models.generator import load_causal_lm
from bench.models.training import per_example_loss

ALL7 = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--tokens", type=int, nargs="+", default=[64, 300])
    p.add_argument("--targets", nargs="+", default=[ALL7, "q_proj,v_proj"])
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model, _ = load_causal_lm(a.model, "cpu")
    print(f"{a.model}: {sum(x.numel() for x in model.parameters()):,} parameters, "
          f"{a.threads} threads, rank {a.rank}, batch {a.batch}")
    for targets in a.targets:
        for tokens in a.tokens:
            peft = get_peft_model(model, LoraConfig(r=a.rank, lora_alpha=2 * a.rank, task_type="CAUSAL_LM",
                                                    target_modules=targets.split(",")))
            opt = torch.optim.AdamW([x for x in peft.parameters() if x.requires_grad], lr=1e-3)
            ids = torch.randint(100, 30000, (a.batch, tokens), generator=torch.Generator().manual_seed(0))
            batch = {"input_ids": ids, "labels": ids.clone(), "attention_mask": torch.ones_like(ids)}
            peft.train()
            times = []
            for _ in range(a.steps):
                start = time.perf_counter()
                per_example_loss(peft, batch).backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                times.append(time.perf_counter() - start)
            print(f"targets {targets}: batch {a.batch} x {tokens} tokens: "
                  f"{statistics.median(times[1:]):.2f} s a step (median of {len(times) - 1})", flush=True)
            model = peft.unload()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
