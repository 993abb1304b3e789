"""rag: top-k chunks from the vector store go into the base model's prompt."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.arms.base import Arm, RetrievalSettings, check_template
from bench.arms.registry import register_arm


@register_arm("rag")
class RagArm(Arm):
    retrieves = True

    @dataclass(frozen=True)
    class Settings:
        retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
        template: str = "default"      # or a custom prompt with {context} and {question}

        def validate(self, where: str) -> None:
            check_template(self.template, where, retrieves=True)
