"""The content-addressed artifact store: digests, dedup, atomic writes."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from modelport.serving.artifacts import CHUNK_SIZE, ArtifactStore


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_put_bytes_returns_sha256_and_stores_under_it(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    data = b"model bytes"
    digest = store.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    path = store.path(digest)
    assert path == tmp_path / "store" / "sha256" / digest[:2] / digest
    assert path.read_bytes() == data
    assert store.exists(digest)
    assert not store.exists("0" * 64)


def test_same_content_twice_is_stored_once(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    first = store.put(b"same content")
    second = store.put(io.BytesIO(b"same content"))
    assert first == second
    assert files_under(tmp_path) == [store.path(first)]


def test_stream_larger_than_a_chunk_is_copied_whole(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    data = os.urandom(CHUNK_SIZE * 3 + 17)
    digest = store.put(io.BytesIO(data))
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.path(digest).read_bytes() == data
    # no temp file is left beside the stored artifact
    assert files_under(tmp_path) == [store.path(digest)]


class FailingStream(io.RawIOBase):
    """Gives one chunk, then fails as a dropped upload would."""

    def __init__(self) -> None:
        self.calls = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.calls += 1
        if self.calls == 1:
            return b"x" * CHUNK_SIZE
        raise ConnectionResetError("client went away")


def test_failed_upload_leaves_nothing_behind(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    with pytest.raises(ConnectionResetError):
        store.put(FailingStream())
    assert files_under(tmp_path) == []
    # the store still works afterwards
    digest = store.put(b"after")
    assert files_under(tmp_path) == [store.path(digest)]


def test_digest_must_be_hex_so_paths_stay_inside_the_store(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    with pytest.raises(ValueError):
        store.path("../../etc/passwd")
    assert not store.exists("../" + "a" * 61)
    digest = store.put(b"x")
    assert store.path(digest.upper()) == store.path(digest)
