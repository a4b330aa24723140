from __future__ import annotations

import uuid

import pytest


@pytest.fixture(params=["local", "s3"])
def catalog_uri(request, tmp_path):
    """The same tests run against a local folder and the loopback S3 server."""
    if request.param == "local":
        return str(tmp_path / "catalog")
    request.getfixturevalue("s3_server")
    return f"s3://tunehouse-test/{uuid.uuid4().hex[:8]}"
