"""The serving pages (blueprint ``serving``): the model catalog and a model's page with its
prediction form (``catalog``), CSV batches (``batch``), the prediction history (``history``)
and the registry's pages for administrators (``admin``); ``blueprint`` holds what they share
and ``problems`` how a page words a refusal.

The views only parse their forms and render: every rule they follow lives in
``modelport.serving``.
"""

from __future__ import annotations

from modelport.serving.web import admin, batch, catalog, history  # noqa: F401 (routes)
from modelport.serving.web.blueprint import bp

__all__ = ["bp"]
