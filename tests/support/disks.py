"""A small file system of a test's own that really fills up: a tmpfs mounted for the test.

Mounting needs root (CAP_SYS_ADMIN), which CI and the development machines have. Elsewhere
the test is skipped with the reason, or fails when MODELPORT_TEST_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import REQUIRE_SERVICES

# tmpfs counts whole pages: a file of n bytes takes ceil(n / PAGE) of them.
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still put on the file system of ``path``."""
    found = os.statvfs(path)
    return found.f_bavail * found.f_frsize


def pages(size: int) -> int:
    """Bytes a file of ``size`` bytes takes on a tmpfs."""
    return -(-size // PAGE) * PAGE


@contextlib.contextmanager
def small_disk(path: Path, size: int) -> Iterator[Path]:
    """A tmpfs of ``size`` bytes mounted at ``path`` (made if missing); unmounted after."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs here (root needed): {mounted.stderr.strip()}"
        if REQUIRE_SERVICES:
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield path
    finally:
        # Lazy: a process still holding a file there (a server being killed) cannot keep the
        # mount alive past the test.
        subprocess.run(["umount", "--lazy", str(path)], check=True, capture_output=True)


def file_tree(root: Path) -> dict[str, int]:
    """Every file under ``root`` (relative path → size)."""
    return {
        str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()
    }
