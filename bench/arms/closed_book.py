"""closed_book: the base model alone, the floor every other arm is measured against."""

from __future__ import annotations

from dataclasses import dataclass

from bench.arms.base import Arm, check_template
from bench.arms.registry import register_arm


@register_arm("closed_book")
class ClosedBookArm(Arm):
    @dataclass(frozen=True)
    class Settings:
        template: str = "default"      # or a custom prompt with {question}

        def validate(self, where: str) -> None:
            check_template(self.template, where, retrieves=False)
