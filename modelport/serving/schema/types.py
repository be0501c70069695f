"""The feature types a schema knows, and the bounds validation keeps to."""

from __future__ import annotations

FEATURE_TYPES = ("number", "integer", "boolean", "category", "string")
NUMERIC_TYPES = ("number", "integer")
MAX_DETAILS = 100  # errors (and warnings) listed per request; a client fixes the first ones first
MAX_CATEGORIES = 50  # an inferred text column with more distinct values is free text
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_EXACT_FLOAT = 2.0**53  # above this a float64 cannot hold every integer exactly
