"""hybrid: the LoRA-adapted model answers with retrieved chunks in its prompt.

With the same training and lora settings as a `lora` arm of the same run, it reuses that
arm's cached adapter, so the two differ only in retrieval.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.arms.adapter import TrainingData
from bench.arms.base import Arm, RetrievalSettings, check_template
from bench.arms.registry import register_arm
from bench.models.lora import LoraSettings


@register_arm("hybrid")
class HybridArm(Arm):
    adapted = True
    retrieves = True

    @dataclass(frozen=True)
    class Settings:
        retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
        training: TrainingData = field(default_factory=TrainingData)
        lora: LoraSettings = field(default_factory=LoraSettings)
        template: str = "default"

        def validate(self, where: str) -> None:
            check_template(self.template, where, retrieves=True)
