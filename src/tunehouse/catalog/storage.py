"""Where catalog files live: a local folder or an object store, behind one small interface.

The rules every storage obeys (tests in ``tests/catalog/`` run against each one):

1. ``write_atomic`` makes a file appear whole or not at all: a local file is written under a
   hidden temporary name in the same folder and renamed; an object is sent as one PUT.
2. ``list_parts`` returns only finished part files (``*.parquet`` whose name does not start
   with ``.`` or ``_``), sorted by path, so temporary files are never read.
3. Paths given to and returned by a storage are relative to the catalog root, with ``/``.
4. ``delete_tree`` removes a folder and everything under it (checkpoint retention); it is
   idempotent (a missing folder is no error), not atomic (a crash may leave part of it, so
   callers record what they delete before deleting it), and refuses the root itself and any
   path with a ``..`` part.
"""

from __future__ import annotations

import abc
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs

from tunehouse.errors import TunehouseError


class CatalogError(TunehouseError):
    """The catalog cannot be opened, read or written."""


@dataclass(frozen=True)
class PartInfo:
    path: str  # relative to the root
    size: int


class Storage(abc.ABC):
    """A catalog root. Implementations must be safe to use from several processes at once."""

    uri: str

    @abc.abstractmethod
    def write_atomic(self, rel: str, data: bytes) -> None: ...

    @abc.abstractmethod
    def probe(self) -> None:
        """Raise ``CatalogError`` if this catalog cannot be used; write nothing."""

    @abc.abstractmethod
    def read(self, rel: str) -> bytes: ...

    @abc.abstractmethod
    def list_files(self, prefix: str) -> list[PartInfo]: ...

    @abc.abstractmethod
    def delete(self, rel: str) -> None: ...

    @abc.abstractmethod
    def delete_tree(self, rel: str) -> None:
        """Remove the folder ``rel`` and everything under it; nothing to remove is no error.

        Raises:
            CatalogError: ``rel`` is the root, or has a ``..`` part (rule 4).
        """

    _fs: pafs.FileSystem

    @property
    def filesystem(self) -> pafs.FileSystem:
        """The pyarrow filesystem the parts live on (for pyarrow and Ray Tune)."""
        return self._fs

    @abc.abstractmethod
    def fs_path(self, rel: str) -> str:
        """The path of ``rel`` inside ``filesystem`` (for pyarrow readers)."""

    @abc.abstractmethod
    def tune_storage(self) -> tuple[str, pafs.FileSystem | None]:
        """Ray Tune's ``(storage_path, storage_filesystem)``: ``<root>/checkpoints``."""

    def list_parts(self, prefix: str) -> list[PartInfo]:
        out = [
            p
            for p in self.list_files(prefix)
            if p.path.endswith(".parquet") and not os.path.basename(p.path).startswith((".", "_"))
        ]
        return sorted(out, key=lambda p: p.path)

    def full_uri(self, rel: str) -> str:
        return f"{self.uri.rstrip('/')}/{rel}"


def _tree(rel: str) -> str:
    """A folder ``delete_tree`` may remove: below the root, never above it (rule 4)."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise CatalogError(f"refusing to delete {rel!r}: expected a folder inside the catalog")
    return "/".join(parts)


class LocalStorage(Storage):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)
        self._fs = pafs.LocalFileSystem()

    def write_atomic(self, rel: str, data: bytes) -> None:
        dest = self.root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".tmp-{uuid.uuid4().hex}-{dest.name}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)  # atomic on POSIX: readers see the old state or the whole file

    def read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def list_files(self, prefix: str) -> list[PartInfo]:
        base = self.root / prefix
        if not base.exists():
            return []
        out = []
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                full = Path(dirpath) / name
                try:
                    size = full.stat().st_size
                except FileNotFoundError:  # removed by a concurrent compaction
                    continue
                out.append(PartInfo(full.relative_to(self.root).as_posix(), size))
        return out

    def delete(self, rel: str) -> None:
        try:
            (self.root / rel).unlink()
        except FileNotFoundError:
            pass

    def delete_tree(self, rel: str) -> None:
        try:
            shutil.rmtree(self.root / _tree(rel))
        except FileNotFoundError:
            pass

    def fs_path(self, rel: str) -> str:
        return str(self.root / rel)

    def exists(self) -> bool:
        return self.root.exists()

    def tune_storage(self) -> tuple[str, pafs.FileSystem | None]:
        path = self.root / "checkpoints"
        path.mkdir(parents=True, exist_ok=True)
        return str(path), None  # a local path: Tune uses its own local filesystem

    def probe(self) -> None:
        """Fail early, creating nothing, if the catalog cannot be written here."""
        p = self.root
        while not p.exists() and p != p.parent:
            p = p.parent
        if not p.is_dir():
            raise CatalogError(f"catalog {self.root}: {p} is not a folder")
        if not os.access(p, os.W_OK | os.X_OK):
            raise CatalogError(f"catalog {self.root}: {p} is not writable")


class ObjectStorage(Storage):
    """``s3://bucket/prefix`` through ``pyarrow.fs.S3FileSystem``.

    The endpoint comes from ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (for MinIO, moto,
    or any S3-compatible server), credentials and region from the standard AWS variables.
    """

    def __init__(self, uri: str) -> None:
        u = urlparse(uri)
        if u.scheme != "s3" or not u.netloc:
            raise CatalogError(f"unsupported catalog URI {uri!r}: expected a path or s3://bucket/prefix")
        self.uri = uri.rstrip("/")
        self.bucket = u.netloc
        self.prefix = u.path.strip("/")
        self._fs = s3_filesystem()

    def _key(self, rel: str) -> str:
        return "/".join(p for p in (self.bucket, self.prefix, rel) if p)

    def write_atomic(self, rel: str, data: bytes) -> None:
        with self._fs.open_output_stream(self._key(rel)) as f:  # one object, one PUT
            f.write(data)

    def read(self, rel: str) -> bytes:
        with self._fs.open_input_stream(self._key(rel)) as f:
            return f.readall()

    def list_files(self, prefix: str) -> list[PartInfo]:
        base = self._key(prefix)
        sel = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        strip = self._key("") + "/"
        try:
            infos = self._fs.get_file_info(sel)
        except OSError as e:
            raise CatalogError(f"cannot list {self.full_uri(prefix)}: {e}") from None
        return [PartInfo(i.path.removeprefix(strip), i.size or 0) for i in infos if i.type == pafs.FileType.File]

    def delete(self, rel: str) -> None:
        try:
            self._fs.delete_file(self._key(rel))
        except FileNotFoundError:
            pass

    def delete_tree(self, rel: str) -> None:
        key = self._key(_tree(rel))
        try:
            self._fs.delete_dir(key)  # every object under the prefix
        except FileNotFoundError:
            pass
        except OSError as e:
            raise CatalogError(f"cannot delete {self.full_uri(rel)}: {e}") from None

    def fs_path(self, rel: str) -> str:
        return self._key(rel)

    def tune_storage(self) -> tuple[str, pafs.FileSystem | None]:
        return self.fs_path("checkpoints"), self._fs

    def probe(self) -> None:
        """Fail early if the bucket cannot be reached (listing needs credentials and an endpoint)."""
        self.list_files("experiments/")


def s3_filesystem() -> pafs.S3FileSystem:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    # delayed open: a small write is one PutObject when it closes, not a multipart upload's
    # three requests (the part is still whole or absent; an error still surfaces in the write)
    kwargs: dict[str, object] = {"allow_bucket_creation": True, "allow_delayed_open": True}
    if endpoint:
        u = urlparse(endpoint)
        kwargs["endpoint_override"] = u.netloc or u.path
        kwargs["scheme"] = u.scheme or "http"
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        kwargs["region"] = region
    return pafs.S3FileSystem(**kwargs)


def open_storage(uri: str | os.PathLike[str]) -> Storage:
    s = str(uri)
    if "://" in s:
        if s.startswith("file://"):
            return LocalStorage(s.removeprefix("file://"))
        return ObjectStorage(s)
    return LocalStorage(s)
