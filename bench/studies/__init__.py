"""The studies. Each is a package registered by name (bench.studies.registry): `__init__`
declares its settings, the claims it tests and its reading half; `measure.py` its measuring half.
Importing this package imports every study package in it, which registers them.
"""

from __future__ import annotations

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if _module.ispkg:
        importlib.import_module(f"{__name__}.{_module.name}")

# every study the project ships; those not yet registered still run through their own
# run(config, out, quick, progress) while they move onto the driver
SHIPPED = ("accuracy", "latency", "cost", "coldstart", "freshness", "scale", "hallucination", "consistency",
           "format", "data-scaling", "forgetting", "popularity", "lora-params")


def get_legacy(name: str):
    return importlib.import_module(f"bench.studies.{name.replace('-', '_')}")
