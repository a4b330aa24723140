"""tunehouse: hyperparameter search on Ray Tune, recorded in a Parquet catalog."""

from tunehouse.errors import DataError, RunError, SpecError, TunehouseError

__version__ = "0.1.0"

__all__ = ["Catalog", "DataError", "RunError", "SpecError", "TunehouseError", "__version__", "load_export", "load_spec", "run"]


def __getattr__(name):
    if name == "Catalog":  # lazily: reading a catalog imports pyarrow, never Ray
        from tunehouse.catalog import Catalog

        return Catalog
    if name == "load_export":
        from tunehouse.export import load_export

        return load_export
    raise AttributeError(f"module 'tunehouse' has no attribute {name!r}")


def load_spec(path, *, check=True):
    """Load a YAML spec (``tunehouse.spec.load_spec``) and, with ``check``, validate it against
    its data and model (``tunehouse.validate``), as ``tunehouse validate`` does."""
    from tunehouse.spec import load_spec as _load

    spec = _load(path)
    if check:
        from tunehouse.validate import validate

        validate(spec)
    return spec


def run(spec, **kwargs):
    """Run a search (see ``tunehouse.driver.run``); ``spec`` is a ``Spec`` or a YAML path."""
    from tunehouse.driver import run as _run

    if not hasattr(spec, "search"):
        spec = load_spec(spec)
    return _run(spec, **kwargs)
