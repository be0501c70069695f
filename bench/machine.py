"""The machine and software a benchmark's figures came from, as the lines its report opens with."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path


def version(distribution: str) -> str:
    """The installed version of ``distribution``, or "not installed"."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def load_average() -> str:
    """The 1-minute load average: other work on the machine skews every figure."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "unknown"


def cpu_name() -> str:
    """The CPU's model name as /proc/cpuinfo gives it, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe(load: str, libraries: Iterable[str], *, cpu_note: str = "") -> list[str]:
    """Markdown list lines: date and load before the run, CPU, OS and Python, library versions.

    ``cpu_note`` follows the core count, e.g. "(shared by the servers and wrk)".
    """
    return [
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}; 1-minute load average "
        f"{load} before the run",
        f"- CPU: {cpu_name()}; nproc {os.cpu_count()}" + (f" {cpu_note}" if cpu_note else ""),
        f"- OS: {platform.system()} {platform.release()}; Python {platform.python_version()}",
        "- " + ", ".join(f"{name} {version(name)}" for name in libraries),
    ]
