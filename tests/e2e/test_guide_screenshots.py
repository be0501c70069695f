"""``make screenshots`` in small: scripts/screenshots.py photographs a page in English and one
in Korean from the live server, with real Hangul glyphs (a Korean font is installed, Debian's
fonts-noto-cjk) rather than empty boxes."""

from __future__ import annotations

import dataclasses
import secrets
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's header."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_the_script_photographs_a_page_in_english_and_one_in_korean(
    browser: Any, live_server: Any, tmp_path: Path
) -> None:
    from tests.support.browser import PASSWORD, missing, open_context, sign_up
    from tests.support.screenshots import screenshots_script

    if shutil.which("fc-list") is None:
        missing("fc-list (fontconfig) is missing")
    korean = subprocess.run(
        ["fc-list", ":lang=ko", "family"], capture_output=True, text=True, check=True
    ).stdout
    if not korean.strip():
        missing("no font with Hangul: apt-get install fonts-noto-cjk")
    script = screenshots_script()
    context = open_context(browser, live_server)
    email = f"guide-{secrets.token_hex(4)}@example.com"
    sign_up(context.new_page(), email)
    context.close()

    pages = {shot.name: shot for shot in script.PAGES}
    shots = (
        dataclasses.replace(pages["dataset"], korean=False, phone=False),  # charts to wait for
        dataclasses.replace(pages["monitoring"], korean=True, phone=False),
    )
    written = script.capture(
        browser, live_server.url, shots, tmp_path, {}, {"member": (email, PASSWORD)}
    )

    names = ["dataset.png", "monitoring.png", "monitoring-ko.png"]
    assert [p.name for p in written] == names
    for path in written:
        assert png_size(path) == (1280, 800), path.name
        assert path.stat().st_size > 15_000, f"{path.name} is nearly blank"
    # The check capture made before the Korean picture, shown to tell the two apart: two
    # characters without a glyph draw the same box, two syllables do not.
    page = open_context(browser, live_server).new_page()
    page.goto("/auth/login")
    box, other_box = script.glyph_images(page, script.NO_GLYPH)
    assert box == other_box
    assert script.hangul_drawn(page)
    page.context.close()
