"""Content-addressed artifact store: model files are kept under their sha256."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO

# Model files can be hundreds of MB: hash and copy them in chunks, never whole in memory.
CHUNK_SIZE = 1024 * 1024
_HEX = re.compile(r"^[0-9a-f]{64}$")
# What a full disk or a spent quota reports, at whichever step of a write it happens.
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})

log = logging.getLogger(__name__)


class StoreFull(Exception):
    """The artifact store's file system has no room left: nothing was stored."""


class ArtifactStore:
    """Files stored once per content at root/sha256/ab/<hex>, written atomically."""

    def __init__(self, root: str | os.PathLike) -> None:
        """Use root as the store's directory (created on first put)."""
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        """Where the artifact with this digest lives (whether or not it exists)."""
        digest = sha256.lower()
        # The digest becomes a file name: anything but 64 hex digits could walk out of the store.
        if not _HEX.match(digest):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / "sha256" / digest[:2] / digest

    def remove(self, sha256: str) -> None:
        """Delete a stored artifact (a refused upload); absent is fine."""
        with contextlib.suppress(FileNotFoundError):
            self.path(sha256).unlink()

    def exists(self, sha256: str) -> bool:
        """Whether an artifact with this digest is stored."""
        try:
            return self.path(sha256).is_file()
        except ValueError:
            return False

    def put(self, source: BinaryIO | bytes) -> str:
        """Store the bytes (or a binary stream read to its end) and return their sha256 hex.

        ``StoreFull`` when the disk fills up on the way; the partial file is gone by then.
        """
        try:
            return self._put(source)
        except OSError as exc:
            if exc.errno in DISK_FULL:
                # The operator's signal: uploads are refused until space is freed.
                log.warning("the artifact store is full: %s", os.strerror(exc.errno))
                raise StoreFull("The model store has no room left.") from exc
            raise

    def _put(self, source: BinaryIO | bytes) -> str:
        staging = self.root / "sha256" / "tmp"
        staging.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        # The temp file sits inside the store so os.replace stays on one file system (atomic).
        fd, tmp_name = tempfile.mkstemp(prefix=".upload-", dir=staging)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in _chunks(source):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            hexdigest = digest.hexdigest()
            final = self.path(hexdigest)
            if final.is_file():
                tmp.unlink()
                return hexdigest
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp, 0o644)
            os.replace(tmp, final)
            _fsync_dir(final.parent)
            return hexdigest
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def _chunks(source: BinaryIO | bytes):
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source)
        for start in range(0, len(view), CHUNK_SIZE):
            yield view[start : start + CHUNK_SIZE]
        return
    while True:
        chunk = source.read(CHUNK_SIZE)
        if not chunk:
            return
        yield chunk


def _fsync_dir(directory: Path) -> None:
    # The rename is only durable once the directory entry is on disk too.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ArtifactError(Exception):
    """A user-facing reason an artifact cannot be registered or loaded."""
