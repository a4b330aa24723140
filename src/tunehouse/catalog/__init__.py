"""The Parquet experiment catalog: storage, schemas, the writer and the reader.

Layout: ``<root>/{experiments,trials,iterations}/experiment=<id>/part-<time>-<uuid>.parquet``
and ``<root>/checkpoints/<experiment id>/trial_<id>/`` (Ray Tune's storage).
"""

from tunehouse.catalog.reader import Catalog, CatalogWarning, Problem
from tunehouse.catalog.storage import (
    CatalogError,
    LocalStorage,
    ObjectStorage,
    Storage,
    open_storage,
)
from tunehouse.catalog.writer import CatalogWriter, ExperimentRecorder

__all__ = [
    "Catalog",
    "CatalogError",
    "CatalogWarning",
    "CatalogWriter",
    "ExperimentRecorder",
    "LocalStorage",
    "ObjectStorage",
    "Problem",
    "Storage",
    "open_storage",
]
