"""The teacher of prompt distillation: the base model itself, answering with the fact's passage in
its prompt, asked exactly as the rag arm asks (an instruct model with its worked turns). Its
answers are cached by content hash (model, chat format, prompts): an adapter found in the cache
still needs them for its key, and they are never generated twice."""

from __future__ import annotations

import json
from pathlib import Path


def make_teacher(generator, model_cfg, cache_dir: Path):
    from bench.config import content_hash
    from bench.io import write_json
    from bench.locks import entry_lock
    from bench.models.chat import ChatFormat, chat_identity
    from bench.models.resolve import model_identity

    def teach(prompts: list[str]) -> list[str]:
        key = content_hash({"model": model_identity(model_cfg.name), "chat": chat_identity(model_cfg),
                            "demos": model_cfg.demos, "prompts": prompts,
                            "max_new_tokens": generator.max_new_tokens})
        path = Path(cache_dir) / "distill" / f"{key}.json"
        with entry_lock(cache_dir, f"distill-{key}"):
            if path.exists():
                return json.loads(path.read_text())
            chat = generator.chat
            if chat is not None:   # the rag arm's worked turns, which adapted arms go without
                generator.chat = ChatFormat(generator.tokenizer, model_cfg.demos)
            try:
                answers = [g.text for g in generator.generate([generator.wrap(p, True) for p in prompts])]
            finally:
                generator.chat = chat
            write_json(answers, path)
        return answers

    return teach
