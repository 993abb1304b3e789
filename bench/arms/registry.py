"""Arm kinds by name, as in lm-evaluation-harness: a decorator registers, configs look up."""

from __future__ import annotations

ARMS: dict[str, type] = {}


def register_arm(kind: str):
    def decorate(cls):
        if kind in ARMS:
            raise ValueError(f"arm kind '{kind}' is registered twice")
        cls.kind = kind
        ARMS[kind] = cls
        return cls
    return decorate


def get_arm_class(kind: str) -> type:
    import bench.arms  # noqa: F401  (registers the built-in arms)

    if kind not in ARMS:
        raise KeyError(f"unknown arm kind '{kind}'; registered: {sorted(ARMS)}")
    return ARMS[kind]
