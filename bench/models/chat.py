"""Instruct models answer through their chat template, shown how to answer.

An instruct model asked "Question: ...\nAnswer:" as plain text mostly writes nothing or a
sentence ("Buban Taze is a painter."). Through its chat template, with a system message asking
for the answer alone and a few worked turns before the real one, it writes the short answer:
on SmolLM2-135M, the gold passage given, 60 held-out facts, exact match 5/60 with the system
message alone and 49/60 with four worked turns; answer containment 43/60 and 51/60
(scripts/probe_chat.py).

Every user turn is exactly the prompt the arm would give a completion model
(bench.prompts), so the same text goes through either path and a custom template still works.
The demonstrations are fictional and general (a date, a firm, a colour, a place; no person), never
words of any dataset here; the closed-book ones are common facts none of the shipped
question sets asks (tests/test_chat.py checks both). LoRA training wraps its examples with
the same `ChatFormat`, so an adapter learns the exact turns the arm asks in; adapted arms get
no demonstrations (bench.arms.base.Arm.prepare): training teaches them the format, and worked
turns would make every training example five times longer.

`model.chat`: auto (the default: use the template when the tokenizer has one), on (an error if
it has none), off (plain text, as for the pocket model, which has no template).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from bench.prompts import closed_book_prompt, context_prompt

CHAT_MODES = ("auto", "on", "off")
SYSTEM = ("You answer questions. Reply with the answer alone: a short phrase (from the context "
          "when one is given), never a full sentence.")
CONTEXT_DEMOS = (
    ("When was the Orla Bridge completed?",
     "The Orla Bridge was completed in 1874 by the engineer Hal Brisk.", "1874"),
    ("Which firm built the Tarn Lighthouse?",
     "The Tarn Lighthouse was built by Coldridge Works in 1902 and still guides ships.",
     "Coldridge Works"),
    ("What colour is the flag of Vessa?", "The flag of Vessa is a plain field of teal.", "teal"),
    ("Where is the Mossgate Library?",
     "The Mossgate Library stands in the harbour town of Kesh, beside the old market.", "Kesh"),
)
CLOSED_BOOK_DEMOS = (
    ("How many days are there in a week?", "seven"),
    ("What do bees make?", "honey"),
    ("Which animal is known as the king of the jungle?", "the lion"),
    ("What is frozen water called?", "ice"),
)
# lead-ins a chat model writes before the answer despite the instructions; stripped when reading
LEAD_INS = re.compile(r"^(?:(?:the\s+)?answer(?:\s+to\s+the\s+question)?\s*(?:is|:)\s*:?|a:|"
                      r"sure[,!.]?\s*(?:the\s+answer\s+is\s*:?)?)\s*", re.IGNORECASE)


def template_in_folder(folder: Path | str) -> bool:
    """Whether a saved tokenizer folder carries a chat template (read without loading it)."""
    folder = Path(folder)
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    config = folder / "tokenizer_config.json"
    try:
        return bool(json.loads(config.read_text()).get("chat_template")) if config.is_file() else False
    except ValueError:
        return False


def chat_identity(model_cfg) -> str | None:
    """The chat format's id when `model_cfg`'s model will answer through it (for the keys of
    saved answers), else None; decided as Generator.load decides, without loading the model."""
    from bench.models.packaged import PACKAGED
    from bench.models.resolve import resolve_model

    if model_cfg.chat == "off":
        return None
    if model_cfg.chat == "on":
        return format_id()
    if model_cfg.name in PACKAGED:
        has_template = PACKAGED[model_cfg.name].chat
    else:   # a hub name not yet downloaded has no folder to read: keyed as without a template
        path = Path(resolve_model(model_cfg.name))
        has_template = path.is_dir() and template_in_folder(path)
    return format_id() if has_template else None


def chat_wanted(mode: str, has_template: bool, where: str = "model.chat") -> bool:
    if mode not in CHAT_MODES:
        raise ValueError(f"{where}: expected one of {list(CHAT_MODES)}, got {mode!r}")
    if mode == "on" and not has_template:
        raise ValueError(f"{where}: on, but the model's tokenizer has no chat template (use auto or off)")
    return mode == "on" or (mode == "auto" and has_template)


def format_id() -> str:
    """What the chat format is, for cache keys: a changed system message or demonstration makes
    saved answers stale."""
    from bench.config import content_hash

    return content_hash([SYSTEM, CONTEXT_DEMOS, CLOSED_BOOK_DEMOS, LEAD_INS.pattern], n=12)


def read_chat_answer(text: str) -> str:
    """The answer in a chat model's reply: its first line, known lead-ins ("The answer is:",
    "Answer:", "A:", "Sure! The answer is") removed, then matching quotes and one trailing
    full stop. A sentence stays a sentence: answer containment scores it fairly, EM does not."""
    line = text.strip().split("\n")[0].strip()
    line = LEAD_INS.sub("", line, count=1).strip()
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'`":
        line = line[1:-1].strip()
    if line.endswith(".") and not line.endswith(".."):
        line = line[:-1].rstrip()
    return line


class ChatFormat:
    """Arm prompts -> the tokenizer's chat turns (system, demonstrations, the question)."""

    def __init__(self, tokenizer, demos: int = len(CONTEXT_DEMOS)):
        self.tokenizer, self.demos = tokenizer, demos

    def turns(self, prompt: str, with_context: bool) -> list[dict]:
        messages = [{"role": "system", "content": SYSTEM}]
        if with_context:
            shots = [(context_prompt(q, [p]), a) for q, p, a in CONTEXT_DEMOS[:self.demos]]
        else:
            shots = [(closed_book_prompt(q), a) for q, a in CLOSED_BOOK_DEMOS[:self.demos]]
        for user, answer in shots:
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        return messages + [{"role": "user", "content": prompt}]

    def wrap(self, prompt: str, with_context: bool) -> str:
        return self.tokenizer.apply_chat_template(self.turns(prompt, with_context), tokenize=False,
                                                  add_generation_prompt=True)

    @staticmethod
    def target(completion: str) -> str:
        """A training target as the assistant writes it (no leading space; the end-of-turn
        token is the tokenizer's EOS, which training appends)."""
        return completion.strip()
