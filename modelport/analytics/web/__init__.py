"""The dataset pages (blueprint ``analytics``): the list with its upload form and the
explorer. Views only parse and render; the rules live in ``modelport.analytics``."""

from __future__ import annotations

from modelport.analytics.web.pages import bp

__all__ = ["bp"]
