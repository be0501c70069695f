"""The analysis pages (blueprint ``analytics``): datasets (the list with its upload form,
the explorer), monitoring and the model report. Views only parse and render; the rules live in
``modelport.analytics``."""

from __future__ import annotations

from modelport.analytics.web import monitoring, report  # noqa: F401 (their routes join bp)
from modelport.analytics.web.pages import bp

__all__ = ["bp"]
