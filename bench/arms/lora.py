"""lora: the base model plus a LoRA adapter trained on the corpus; no retrieval at answer time."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.arms.adapter import TrainingData
from bench.arms.base import Arm, check_template
from bench.arms.registry import register_arm
from bench.models.lora import LoraSettings


@register_arm("lora")
class LoraArm(Arm):
    adapted = True

    @dataclass(frozen=True)
    class Settings:
        training: TrainingData = field(default_factory=TrainingData)
        lora: LoraSettings = field(default_factory=LoraSettings)
        template: str = "default"

        def validate(self, where: str) -> None:
            check_template(self.template, where, retrieves=False)
