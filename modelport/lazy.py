"""Libraries that a feature imports on first use, not when the application starts.

A server's workers share what gunicorn's master imported before it forked them
(``MODELPORT_PRELOAD``), but every page of it counts in the server's memory. Serving an ONNX
model needs numpy, onnx and onnxruntime; pandas and pyarrow (CSV, datasets), scikit-learn,
skops and skl2onnx (scikit-learn models, training, compiling), scipy (drift) and zxcvbn
(passwords) are needed by some requests only, and together take about 180 MB. A module
names such a library with ``lazy``: it is imported in the process, and at the moment, that
first looks something up in it (``MODELPORT_PRELOAD_LIBRARIES`` has the master import some
anyway). ``tests/serving/test_lazy_imports.py`` checks that a started server that has
answered ONNX predictions has imported none of ``LAZY``.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = ["LAZY", "lazy"]

# The libraries named with ``lazy`` (top-level packages), for the test that keeps them lazy.
LAZY = ("pandas", "pyarrow", "scipy", "sklearn", "skops", "skl2onnx", "zxcvbn")


class _LazyModule:
    """Stands for the module ``name``; the first attribute looked up on it imports it.

    Python's import lock makes the first import safe from several threads; afterwards a
    lookup costs one Python call more than on the module itself.
    """

    __slots__ = ("_module", "_name")

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_module", None)

    def __getattr__(self, attribute: str) -> Any:
        module = self._module
        if module is None:
            module = importlib.import_module(self._name)
            object.__setattr__(self, "_module", module)
        return getattr(module, attribute)

    def __setattr__(self, attribute: str, value: Any) -> None:
        raise AttributeError(f"{self._name} is imported on first use: set {attribute} on it")

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<lazy module {self._name!r} ({state})>"


def lazy(name: str) -> ModuleType:
    """The module ``name`` (``"pandas"``, ``"pyarrow.compute"``), imported on first use."""
    return _LazyModule(name)  # type: ignore[return-value]  # it answers as the module does
