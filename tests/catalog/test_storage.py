"""The storage contract (storage_contract.py) run against each backend."""

from __future__ import annotations

import uuid

import pytest

from tunehouse.catalog import LocalStorage, ObjectStorage, open_storage

from .storage_contract import StorageContract, probe_fails


class TestLocalStorage(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path):
        return open_storage(tmp_path / "catalog")

    def test_a_file_where_the_root_should_be_is_refused(self, tmp_path):
        (tmp_path / "file").write_text("x")
        probe_fails(LocalStorage(tmp_path / "file" / "catalog"))


class TestObjectStorage(StorageContract):
    @pytest.fixture
    def storage(self, s3_server):
        return open_storage(f"s3://tunehouse-test/{uuid.uuid4().hex[:8]}")

    def test_an_unreachable_endpoint_is_refused(self, s3_server, monkeypatch):
        monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
        probe_fails(ObjectStorage(f"s3://tunehouse-test/{uuid.uuid4().hex[:8]}"))
