"""The checks that need the data and the model, run once before a search: they return the data.

``tunehouse.spec`` validates what the file alone decides; this module imports the model,
loads the data and checks each against the other (columns, classes, the estimator's own
parameter constraints, metrics the model can produce). What it loads is what the run uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tunehouse.errors import SpecError
from tunehouse.spec import Spec, load_spec, locate

if TYPE_CHECKING:  # pragma: no cover
    from tunehouse.data import Dataset, Splits


def validate(spec: Spec) -> tuple[Dataset, Splits]:
    """Check a spec against its model and data; return the data set and its train/test split.

    Raises:
        SpecError: (a ``DataError`` for the data) naming the spec's file, line and field.
    """
    from tunehouse.data import load_split
    from tunehouse.models import check_model, resolve_model

    try:
        resolve_model(spec)  # first: a wrong model path explains more than the data checks it upsets
        dataset, splits = load_split(spec)
        check_model(spec, dataset)
    except SpecError as e:
        raise locate(e, spec) from None
    return dataset, splits


def load_checked(path: str | Path) -> tuple[Spec, Dataset]:
    """``load_spec`` and ``validate``: a spec checked as ``tunehouse validate`` checks it.

    Raises:
        SpecError: with file, line, field and the expected value in its message.
    """
    spec = load_spec(path)
    dataset, _ = validate(spec)
    return spec, dataset
