"""The storage contract, as one suite every ``Storage`` backend runs (see catalog/storage.py).

A backend's test module subclasses ``StorageContract`` and provides a ``storage`` fixture
(a fresh, empty catalog root). The rules checked: writes are atomic and whole, listing shows
finished part files only, paths are relative to the root with ``/``, and the pyarrow view
(``filesystem`` + ``fs_path``) and Ray Tune's view (``tune_storage``) see the same files, and
``delete_tree`` removes exactly one folder (idempotent, never the root or above it).
"""

from __future__ import annotations

import os
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tunehouse.catalog import CatalogError
from tunehouse.catalog.writer import parquet_bytes


class StorageContract:
    """Subclass with a ``storage`` fixture returning an empty ``Storage``."""

    def test_write_then_read_returns_the_same_bytes(self, storage):
        data = os.urandom(1 << 16)
        storage.write_atomic("trials/experiment=e1/part-1.parquet", data)
        assert storage.read("trials/experiment=e1/part-1.parquet") == data

    def test_paths_are_relative_to_the_root_with_slashes(self, storage):
        storage.write_atomic("trials/experiment=e1/part-a.parquet", b"x" * 10)
        storage.write_atomic("trials/experiment=e2/part-b.parquet", b"y" * 20)
        files = storage.list_files("trials/")
        assert sorted(f.path for f in files) == ["trials/experiment=e1/part-a.parquet",
                                                  "trials/experiment=e2/part-b.parquet"]
        assert {f.path: f.size for f in files}["trials/experiment=e2/part-b.parquet"] == 20
        assert storage.full_uri("trials/x").startswith(storage.uri.rstrip("/") + "/")
        assert storage.list_files("nothing/here/") == []

    def test_listing_parts_shows_only_finished_parquet_files_sorted(self, storage):
        for name in ("part-2.parquet", "part-1.parquet", ".tmp-123-part-3.parquet", "_SUCCESS",
                     "_meta.parquet", "notes.txt"):
            storage.write_atomic(f"trials/experiment=e1/{name}", b"data")
        parts = [p.path.rsplit("/", 1)[-1] for p in storage.list_parts("trials/")]
        assert parts == ["part-1.parquet", "part-2.parquet"]

    def test_a_concurrent_reader_never_sees_a_partial_part(self, storage):
        big = os.urandom(8 << 20)
        seen: list[int] = []
        done = threading.Event()

        def reader():
            while not done.is_set() or not seen:  # at least one full pass
                for p in storage.list_parts("trials/"):
                    seen.append(len(storage.read(p.path)))

        t = threading.Thread(target=reader)
        t.start()
        try:
            for i in range(4):
                storage.write_atomic(f"trials/experiment=e1/part-{i}.parquet", big)
        finally:
            done.set()
            t.join()
        assert seen and set(seen) == {len(big)}  # whole files only, never a prefix

    def test_overwrite_is_atomic_and_delete_is_idempotent(self, storage):
        storage.write_atomic("exports/experiment=e/part-x.parquet", b"old")
        storage.write_atomic("exports/experiment=e/part-x.parquet", b"new!")
        assert storage.read("exports/experiment=e/part-x.parquet") == b"new!"
        storage.delete("exports/experiment=e/part-x.parquet")
        storage.delete("exports/experiment=e/part-x.parquet")  # already gone: no error
        assert storage.list_parts("exports/") == []

    def test_delete_tree_removes_a_folder_and_only_it(self, storage):
        for rel in ("checkpoints/e/trial_1/checkpoint_000000/model.pkl", "checkpoints/e/trial_1/params.json",
                    "checkpoints/e/trial_10/checkpoint_000000/model.pkl", "checkpoints/e/tuner.pkl"):
            storage.write_atomic(rel, b"x")
        storage.delete_tree("checkpoints/e/trial_1")
        assert sorted(f.path for f in storage.list_files("checkpoints/")) == [
            "checkpoints/e/trial_10/checkpoint_000000/model.pkl", "checkpoints/e/tuner.pkl"]  # a sibling prefix stays
        storage.delete_tree("checkpoints/e/trial_1")  # already gone: no error
        storage.delete_tree("checkpoints/never/was")

    @pytest.mark.parametrize("rel", ["", "/", ".", "checkpoints/../trials", "../outside"])
    def test_delete_tree_refuses_the_root_and_paths_out_of_it(self, storage, rel):
        storage.write_atomic("trials/experiment=e/part-1.parquet", b"x")
        with pytest.raises(CatalogError, match="refusing to delete"):
            storage.delete_tree(rel)
        assert [f.path for f in storage.list_files("")] == ["trials/experiment=e/part-1.parquet"]

    def test_pyarrow_reads_parts_through_filesystem_and_fs_path(self, storage):
        table = pa.table({"experiment_id": ["e1"], "n": [3]})
        storage.write_atomic("trials/experiment=e1/part-1.parquet", parquet_bytes(table))
        got = pq.read_table(storage.fs_path("trials/experiment=e1/part-1.parquet"), filesystem=storage.filesystem)
        assert got.equals(table)

    def test_tune_storage_writes_land_under_checkpoints(self, storage):
        path, fs = storage.tune_storage()
        fs = fs or storage.filesystem
        fs.create_dir(f"{path}/exp/trial_1", recursive=True)
        with fs.open_output_stream(f"{path}/exp/trial_1/model.pkl") as f:
            f.write(b"weights")
        assert storage.read("checkpoints/exp/trial_1/model.pkl") == b"weights"

    def test_probe_passes_on_a_usable_root_and_writes_nothing(self, storage):
        storage.probe()
        assert storage.list_files("") == []


def probe_fails(storage) -> None:
    with pytest.raises(CatalogError):
        storage.probe()
