"""Processes as /proc shows them, and bounded waits for what they do."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# Bounded waits: far longer than any of these steps takes, far shorter than a hung test.
WAIT_SECONDS = 20


def stat(pid: int | str) -> tuple[str, int, int] | None:
    """State, parent pid and process group of ``pid`` from /proc, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may hold spaces: split after its last ")".
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2])


def processes() -> Iterator[tuple[int, str, int, int]]:
    """Pid, state, parent pid and process group of every process."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (found := stat(entry.name)) is not None:
            yield int(entry.name), *found


def children(parent: int) -> set[int]:
    """Live (not zombie) children of ``parent``."""
    return {pid for pid, state, ppid, _ in processes() if ppid == parent and state != "Z"}


def alive(pid: int) -> bool:
    found = stat(pid)
    return found is not None and found[0] != "Z"


def wait_for(condition, what: str, seconds: float = WAIT_SECONDS):  # noqa: ANN001, ANN201
    """Poll ``condition`` until it returns something true; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.05)
    pytest.fail(f"timed out after {seconds} s waiting for {what}")
