"""scripts/screenshots.py (``make screenshots``) as a module, for the tests of docs/guide.md."""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "screenshots.py"
GUIDE = REPO_ROOT / "docs" / "guide.md"
IMAGES = REPO_ROOT / "docs" / "images" / "guide"


@cache
def screenshots_script() -> ModuleType:
    """The script, loaded once (it is not in a package)."""
    spec = importlib.util.spec_from_file_location("modelport_screenshots", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module
