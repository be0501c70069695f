"""Where a ``next`` parameter may send the browser: this site only (ASVS 3.7.2)."""

from __future__ import annotations

from urllib.parse import urlsplit


def safe_next(target: str | None, default: str = "/") -> str:
    """``target`` if it is a path on this site, else ``default``.

    Browsers treat backslashes as slashes and drop tabs and newlines, so those are refused
    outright rather than cleaned up; only a plain path starting with one ``/`` passes.
    """
    if not target or len(target) > 2000:
        return default
    if any(ch in target for ch in "\\\t\r\n") or any(
        ord(ch) < 32 or ord(ch) == 127 for ch in target
    ):
        return default
    if not target.startswith("/") or target.startswith("//"):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target
