"""Shared fixtures: one real embedded Ray per test session, spec builders."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
SPECS = ROOT / "search_spaces"

# A local service a developer left up (`tunehouse up`) must not take over the tests' searches:
# the tests, and the CLI processes they start, see a service state folder of their own (empty).
os.environ["TUNEHOUSE_HOME"] = tempfile.mkdtemp(prefix="th-home-")


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible server (moto's S3 app) on loopback; the AWS variables point at it.

    Yields the endpoint URL. Set before Ray starts so that Ray's workers inherit it too.
    moto's ``ThreadedMotoServer`` serves every AWS service and, per request, searches its
    modules for the one meant (about 10 ms of CPU a request here, more than the S3 work); this
    serves the S3 app alone, with the same request handler and no log line per request.
    """
    import threading

    from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    class QuietHandler(MotoRequestHandler):
        def log_request(self, *args, **kwargs) -> None:
            pass

    server = make_server("127.0.0.1", 0, create_backend_app("s3"), threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="s3-server", daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_port}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    from tunehouse.catalog.storage import s3_filesystem

    s3_filesystem().create_dir("tunehouse-test")
    yield endpoint
    server.shutdown()
    thread.join()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def ray_session(s3_server):
    """A real local Ray (2 CPUs) shared by the tests that run searches (S3 env inherited)."""
    from tunehouse.backend import EmbeddedRay

    # Workers import test helpers (training functions) from tests/.
    os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    sys.path.insert(0, str(TESTS))
    os.environ.pop("RAY_ADDRESS", None)
    import ray

    EmbeddedRay().start([str(TESTS)])
    yield ray
    # Ray's graceful shutdown stops its processes one by one (about 10 s here); everything of
    # this embedded Ray is a child of this process and nothing in it is needed any more.
    import psutil

    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            p.kill()
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
