"""The shared 3-node cluster fixture (see localcluster.py)."""

from __future__ import annotations

import pytest

from .localcluster import local_cluster, short_dir


@pytest.fixture(scope="package")
def cluster():
    """One 3-node cluster shared by the cluster tests that leave it intact, ended when they are
    done (its raylets, dashboards and log monitors would otherwise load every later test)."""
    pytest.importorskip("ray.job_submission", reason="cluster mode needs ray[default,client]")
    with short_dir() as d, local_cluster(d) as env:
        yield env
