"""Shared fixtures: one real embedded Ray per test session, spec builders."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
SPECS = ROOT / "search_spaces"


@pytest.fixture(scope="session")
def ray_session():
    """A real local Ray (2 CPUs) shared by the tests that run searches."""
    from tunehouse.driver import connect

    # Workers import test helpers (training functions) from tests/.
    os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    sys.path.insert(0, str(TESTS))
    os.environ.pop("RAY_ADDRESS", None)
    import ray

    connect(None, [str(TESTS)])
    yield ray
    ray.shutdown()


@pytest.fixture
def write_spec(tmp_path):
    """Write a spec dict (or text) to a YAML file and return its path."""

    def write(content: dict | str, name: str = "spec.yaml") -> Path:
        p = tmp_path / name
        p.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False))
        return p

    return write


def base_spec(**over) -> dict:
    """A small valid classification spec; keyword arguments replace top-level fields."""
    spec = {
        "name": "t",
        "seed": 0,
        "task": "classification",
        "data": {"sklearn": "iris"},
        "model": {"estimator": "sklearn.tree.DecisionTreeClassifier"},
        "evaluation": {"cv": 3, "test_size": 0.2},
        "metrics": ["accuracy"],
        "search": {"algorithm": "random", "num_samples": 4},
        "space": {"max_depth": {"type": "int", "low": 1, "high": 6}},
    }
    spec.update(over)
    return spec
