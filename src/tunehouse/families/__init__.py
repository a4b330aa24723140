"""Model families: one module each, found by the import path (or shorthand) a spec names.

Add a family by adding one module here that defines a ``ModelFamily`` subclass (see
``_base.py`` for its rules). Family modules import their libraries lazily.
"""

from __future__ import annotations

import importlib
import pkgutil

from tunehouse.families._base import ModelFamily, Resource, init_params

__all__ = ["FAMILIES", "ModelFamily", "Resource", "family_for", "family_of_format", "init_params",
           "resolve_shorthand", "trusted_prefixes"]


def _discover() -> dict[str, ModelFamily]:
    found: dict[str, ModelFamily] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, ModelFamily) and obj.__module__ == module.__name__:
                found[obj.name] = obj()
    return found


#: name -> family
FAMILIES: dict[str, ModelFamily] = _discover()
SHORTHANDS: dict[str, ModelFamily] = {f.shorthand: f for f in FAMILIES.values() if f.shorthand}


def resolve_shorthand(estimator: str, task: str) -> str:
    """``xgboost`` -> ``xgboost.XGBClassifier`` (by task); anything else as it is."""
    family = SHORTHANDS.get(estimator)
    return family.estimator_path(task) if family else estimator


def family_for(path: str) -> ModelFamily:
    """The family owning an import path (or shorthand): the longest matching prefix."""
    if path in SHORTHANDS:
        return SHORTHANDS[path]
    return max(FAMILIES.values(), key=lambda f: f.owns(path))


def family_of_format(fmt: str) -> ModelFamily | None:
    return next((f for f in FAMILIES.values() if f.native_format == fmt), None)


def trusted_prefixes() -> tuple[str, ...]:
    """Every type prefix some family lets an export trust."""
    return tuple(sorted({p for f in FAMILIES.values() for p in f.trusted}))
