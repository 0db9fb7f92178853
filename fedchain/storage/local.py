"""The daemon-less local store: one file per blob under ``<state_dir>/blobs``, named by CID.

Files are sharded by the two characters before the CID's last one (as Kubo's flatfs does):
``blobs/<cid[-3:-1]>/<cid>``. Every write goes to a temporary file in the same directory,
is flushed to disk and then renamed into place, so a reader never sees a partial blob.
Every read is hashed and compared with the CID; a file whose bytes no longer match is
reported as corrupt (:class:`~fedchain.errors.IntegrityError`) and never returned. The store's
directories are the owner's only (0700, also when they existed wider) and so is every blob (0600).

The local store never garbage-collects, so every blob it holds is pinned: :meth:`pin`
checks that the blob is present and intact.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from io import BufferedReader
from pathlib import Path

from fedchain.config import private_dir
from fedchain.errors import BlobNotFoundError, ConfigError, IntegrityError, StorageError
from fedchain.storage.base import COPY_BUFFER, check_size, verify_builder, verify_bytes
from fedchain.storage.cid import CidBuilder, compute_cid, parse_cid
from fedchain.types import Cid

__all__ = ["LocalStore", "DEFAULT_MAX_BYTES"]

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 256 * 1024 * 1024


class LocalStore:
    """Content-addressed files under ``root`` (normally ``<state_dir>/blobs``)."""

    def __init__(self, root: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes

    # -- paths -------------------------------------------------------------------
    def path_of(self, cid: Cid) -> Path:
        """Where the blob ``cid`` lives (whether or not it exists)."""
        parse_cid(cid)
        return self.root / cid[-3:-1] / cid

    def describe(self) -> str:
        """``local <root directory>``."""
        return f"local {self.root}"

    def close(self) -> None:
        """Nothing to release: the local store holds no open handles."""

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ------------------------------------------------------------------
    def put(self, data: bytes) -> Cid:
        """Write ``data`` under its CID (atomically, fsynced) and return the CID."""
        view = memoryview(data)
        check_size(len(view), self.max_bytes, "blob")
        cid = compute_cid(view)
        target = self.path_of(cid)
        self._private_dirs(target.parent)
        tmp = self._temp_in(target.parent)
        try:
            with open(tmp, "wb") as fh:
                fh.write(view)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except OSError as err:
            _unlink_quietly(tmp)
            raise StorageError(f"cannot write blob {cid} under {self.root}: {err}") from err
        log.debug("local store: put %s (%d bytes)", cid, len(view))
        return cid

    def put_file(self, path: Path) -> Cid:
        """Copy a file into the store under its CID, hashing while copying; return the CID."""
        path = Path(path)
        try:
            size = path.stat().st_size
            check_size(size, self.max_bytes, f"file {path}")
            src: BufferedReader = open(path, "rb")
        except OSError as err:
            raise StorageError(f"cannot read {path}: {err}") from err
        self._private_dirs(self.root)
        tmp = self._temp_in(self.root)
        builder = CidBuilder()
        try:
            with src, open(tmp, "wb") as out:
                buf = bytearray(COPY_BUFFER)
                view = memoryview(buf)
                while n := src.readinto(buf):
                    builder.update(view[:n])
                    out.write(view[:n])
                out.flush()
                os.fsync(out.fileno())
            check_size(builder.size, self.max_bytes, f"file {path}")
            cid = builder.cid()
            target = self.path_of(cid)
            self._private_dirs(target.parent)
            os.replace(tmp, target)
        except OSError as err:
            _unlink_quietly(tmp)
            raise StorageError(f"cannot store {path} under {self.root}: {err}") from err
        except BaseException:
            _unlink_quietly(tmp)
            raise
        log.debug("local store: put_file %s -> %s (%d bytes)", path, cid, builder.size)
        return cid

    def pin(self, cid: Cid) -> None:
        """Check that ``cid`` is present and intact; nothing is ever collected here."""
        # Nothing is ever collected here; pinning means: present and intact.
        self.get(cid)

    # -- reads -------------------------------------------------------------------
    def has(self, cid: Cid) -> bool:
        """Whether the store has a file for ``cid``."""
        return self.path_of(cid).is_file()

    def get(self, cid: Cid) -> bytes:
        """The blob's bytes, verified against ``cid``."""
        path = self.path_of(cid)
        src = self._open_blob(cid, path)
        try:
            with src:
                data = src.read(self.max_bytes + 1)  # never more, whatever the file turned into
        except OSError as err:
            raise StorageError(f"cannot read blob {cid}: {err}") from err
        check_size(len(data), self.max_bytes, f"blob {cid}")
        verify_bytes(cid, data, f"local store file {path} is corrupt")
        return data

    def get_file(self, cid: Cid, dest: Path) -> int:
        """Copy the blob into ``dest`` (atomically, once verified); return its size."""
        src_path = self.path_of(cid)
        dest = Path(dest)
        src = self._open_blob(cid, src_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._temp_in(dest.parent)
        builder = CidBuilder()
        try:
            with src, open(tmp, "wb") as out:
                buf = bytearray(COPY_BUFFER)
                view = memoryview(buf)
                while n := src.readinto(buf):
                    builder.update(view[:n])
                    check_size(builder.size, self.max_bytes, f"blob {cid}")
                    out.write(view[:n])
            verify_builder(cid, builder, f"local store file {src_path} is corrupt")
            os.replace(tmp, dest)
        except OSError as err:
            _unlink_quietly(tmp)
            raise StorageError(f"cannot write {dest}: {err}") from err
        except BaseException:
            _unlink_quietly(tmp)
            raise
        return builder.size

    def verify_all(self) -> list[Cid]:
        """Re-hash every blob; return the CIDs whose files are corrupt (or misnamed)."""
        bad: list[Cid] = []
        if not self.root.is_dir():
            return bad
        for path in sorted(self.root.glob("*/*")):
            if path.name.startswith(".tmp-"):
                continue
            cid = Cid(path.name)
            try:
                self.get(cid)
            except (IntegrityError, StorageError):
                bad.append(cid)
        return bad

    # -- helpers -----------------------------------------------------------------
    def _open_blob(self, cid: Cid, path: Path) -> BufferedReader:
        """The blob's file, opened for reading: a regular file within the size limit. Whatever else
        sits under that name (a FIFO, a device, a link to one) is refused without reading it."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError as err:
            raise BlobNotFoundError(f"blob {cid} is not in the local store {self.root}") from err
        except OSError as err:
            raise StorageError(f"cannot read blob {cid}: {err}") from err
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise StorageError(f"local store entry {path} is not a regular file; the store is damaged")
            check_size(info.st_size, self.max_bytes, f"blob {cid}")
            os.set_blocking(fd, True)
            return open(fd, "rb", closefd=True)
        except BaseException:
            os.close(fd)
            raise

    def _private_dirs(self, directory: Path) -> None:
        """The store's root and ``directory`` in it, created (or narrowed to) 0700."""
        try:
            private_dir(self.root)
            if directory != self.root:
                private_dir(directory)
        except (OSError, ConfigError) as err:
            raise StorageError(f"cannot create the store directory {directory}: {err}") from err

    def _temp_in(self, directory: Path) -> Path:
        """A new empty file in ``directory``, mode 0600 (``mkstemp``)."""
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=".tmp-", dir=directory)
        except OSError as err:
            raise StorageError(f"cannot create a file in {directory}: {err}") from err
        os.close(fd)
        return Path(name)


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
