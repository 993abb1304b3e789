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
