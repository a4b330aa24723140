"""An experiment rebuilt from its catalog row alone: the spec it ran and the data it ran on.

Export and reproduce both start from here, so they refit and re-run on what the run used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from tunehouse.data import Dataset, Splits
    from tunehouse.spec import Spec


def experiment_spec(exp: dict[str, Any]) -> Spec:
    """The experiment's spec from its ``spec_text``, its data path the absolute one the run resolved."""
    from tunehouse.spec import parse_spec

    spec = parse_spec(exp["spec_text"], file=f"<spec of {exp['experiment_id']}>")
    if spec.data.path is not None:
        spec = spec.override({"data.path": exp.get("dataset_source") or ""})
    return spec


def experiment_data(spec: Spec) -> tuple[Dataset, Splits]:
    """The data found again and split as the run split it; the caller compares its fingerprint.

    Raises:
        DataError: the data cannot be loaded (gone, or no longer fits the spec).
    """
    from tunehouse.data import load_split

    return load_split(spec)


def function_dirs(exp: dict[str, Any]) -> None:
    """Let a training function next to the run's spec import here, as it did in the run's workers."""
    from tunehouse.models import add_function_dirs

    spec_path = dict(exp.get("environment") or {}).get("spec_path")
    add_function_dirs(Path(spec_path).parent if spec_path else None)
