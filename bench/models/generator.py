"""A causal LM behind one narrow interface: prompts in, answers out, batched and timed.

Every model, pocket or Hugging Face, loads through the same `from_pretrained` path.
`trust_remote_code` stays off unless asked for, and weights must be safetensors.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from bench.models.chat import CONTEXT_DEMOS, ChatFormat, chat_wanted, read_chat_answer
from bench.models.release import release
from bench.models.resolve import resolve_model
from bench.prompts import ANSWER_STYLES, read_answer

# A model-level file next to the weights: how the model writes answers from passages (see
# bench.prompts.ANSWER_STYLES). Absent (every Hugging Face model): the plain "value" style.
ANSWER_STYLE_FILE = "answer_style.json"
# a quote costs tokens before the answer: the generation budget grows by this much
QUOTE_EXTRA_TOKENS = 40


def save_answer_style(folder: Path | str, style: str) -> None:
    if style not in ANSWER_STYLES:
        raise ValueError(f"unknown answer style {style!r}; expected one of {ANSWER_STYLES}")
    if style != "value":
        (Path(folder) / ANSWER_STYLE_FILE).write_text(json.dumps({"answer_style": style}) + "\n")


def load_answer_style(folder: Path | str) -> str:
    f = Path(folder) / ANSWER_STYLE_FILE
    if not f.is_file():
        return "value"
    try:
        style = json.loads(f.read_text())["answer_style"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{f}: expected {{\"answer_style\": one of {list(ANSWER_STYLES)}}}: {e}") from e
    if style not in ANSWER_STYLES:
        raise ValueError(f"{f}: answer_style: expected one of {list(ANSWER_STYLES)}, got {style!r}")
    return style


@dataclass
class Generation:
    text: str                 # the answer (for a quote-style model: what follows the quote)
    prompt_tokens: int
    completion_tokens: int
    seconds: float            # this item's share of its batch's wall time
    raw: str = ""             # everything generated up to the newline or end of sequence


def pick_device(device: str = "auto") -> str:
    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(dtype: str, device: str) -> torch.dtype | None:
    """'auto': bf16 on a GPU that supports it, float32 elsewhere (CPU bf16 matmuls are slower
    than float32 on most CPUs and change the answers)."""
    if dtype != "auto":
        return getattr(torch, dtype)
    if device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def load_causal_lm(name: str, device: str = "auto", trust_remote_code: bool = False,
                   dtype: torch.dtype | str | None = None):
    path = resolve_model(name)
    device = pick_device(device)
    if isinstance(dtype, str):
        dtype = pick_dtype(dtype, device)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=trust_remote_code,
                                                 use_safetensors=True, dtype=dtype)
    model.to(device).eval()
    return model, tokenizer


class Generator:
    """Greedy (or sampled) batched generation that stops at end of sequence or a newline.

    A "quote"-style model gets QUOTE_EXTRA_TOKENS more to write its quote, and `text` is the
    answer after it (the whole generation stays in `raw`). With a chat format (an instruct
    model, bench.models.chat) prompts go through its chat template and `text` is the reply's
    answer (`read_chat_answer`)."""

    def __init__(self, model, tokenizer, max_new_tokens: int = 16, batch_size: int = 32,
                 answer_style: str = "value", chat: ChatFormat | None = None):
        if answer_style not in ANSWER_STYLES:
            raise ValueError(f"unknown answer style {answer_style!r}; expected one of {ANSWER_STYLES}")
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.answer_style = answer_style
        self.chat = chat

    @classmethod
    def load(cls, name: str, chat: str = "auto", demos: int = len(CONTEXT_DEMOS), **kwargs) -> "Generator":
        device = kwargs.pop("device", "auto")
        trust = kwargs.pop("trust_remote_code", False)
        dtype = kwargs.pop("dtype", "auto")
        path = resolve_model(name)        # resolved once: a local path resolves to itself
        style = load_answer_style(path) if Path(path).is_dir() else "value"
        model, tokenizer = load_causal_lm(path, device, trust, dtype)
        use_chat = chat_wanted(chat, bool(getattr(tokenizer, "chat_template", None)))
        return cls(model, tokenizer, answer_style=style,
                   chat=ChatFormat(tokenizer, demos) if use_chat else None, **kwargs)

    def wrap(self, prompt: str, with_context: bool) -> str:
        """The text the model reads for an arm's prompt: itself, or its chat turns."""
        return self.chat.wrap(prompt, with_context) if self.chat else prompt

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], temperature: float = 0.0,
                 seed: int | None = None) -> list[Generation]:
        """Answers in the prompts' order. Prompts are batched by length (sorted, then cut into
        batches) so a batch pads to its own longest prompt, not to the longest of the call."""
        ids = self.tokenizer(list(prompts), add_special_tokens=False)["input_ids"] if prompts else []
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out: list[Generation | None] = [None] * len(ids)
        for i in range(0, len(order), self.batch_size):
            chunk = order[i:i + self.batch_size]
            for j, g in zip(chunk, self._batch([ids[j] for j in chunk], temperature, seed)):
                out[j] = g
        return out

    def _batch(self, rows: list[list[int]], temperature: float, seed: int | None) -> list[Generation]:
        tok = self.tokenizer
        enc = left_pad(rows, tok.pad_token_id, self.model.device)
        if seed is not None:
            torch.manual_seed(seed)
        start = time.perf_counter()
        budget = self.answer_budget()
        ids = self.model.generate(**enc, max_new_tokens=budget, do_sample=temperature > 0,
                                  temperature=temperature if temperature > 0 else None, top_p=None,
                                  top_k=None, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        new = ids[:, enc["input_ids"].shape[1]:]
        seconds = (time.perf_counter() - start) / len(rows)
        results = []
        for row, mask in zip(new, enc["attention_mask"]):
            ended = (row == tok.eos_token_id).nonzero()
            row = row[: int(ended[0])] if len(ended) else row
            raw = tok.decode(row, skip_special_tokens=True).split("\n")[0].strip()
            text = read_answer(raw) if self.answer_style == "quote" else raw
            text = read_chat_answer(text) if self.chat else text
            results.append(Generation(text, int(mask.sum()), len(row), seconds, raw))
        return results

    def context_length(self) -> int | None:
        """Positions the model can attend to (prompt + answer); None if its config does not say."""
        config = self.model.config
        config = config.get_text_config() if hasattr(config, "get_text_config") else config
        for key in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
            value = getattr(config, key, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def answer_budget(self) -> int:
        """New tokens a generation may take (positions a prompt must leave free)."""
        return self.max_new_tokens + (QUOTE_EXTRA_TOKENS if self.answer_style == "quote" else 0)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Prompt tokens per text, as `generate` counts them (no special tokens added)."""
        if not texts:
            return []
        return [len(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def close(self) -> None:
        """Drop the model so the next arm's model does not share memory with this one."""
        release(self)


def left_pad(rows: Sequence[Sequence[int]], pad_id: int, device) -> dict[str, torch.Tensor]:
    """Token id rows as one left-padded batch (generation appends on the right)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r):] = torch.tensor(r)
            mask[i, width - len(r):] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
