"""The arms: one small module each, registered by kind (bench.arms.registry). Importing the
package imports every module in it, so a new arm is one module with one `@register_arm`."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
