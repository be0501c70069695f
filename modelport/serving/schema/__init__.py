"""Input schemas: what a model expects, inferred from training data, and request validation.

The package in sections: ``features`` (the schema, the batch and the error), ``types`` (the
feature types and bounds), ``coercion`` (the rules, one value at a time), ``problems``
(collecting and raising them), ``rows`` (``validate_inputs``), ``frames``
(``validate_frame``) and ``infer`` (``infer_schema``).

A request's inputs become a :class:`Batch` of typed columns in schema order, or an
:class:`InputError` whose ``details`` name every problem by row and field (up to
``MAX_DETAILS``). JSON requests go through :func:`validate_inputs`; CSV uploads, read with
``dtype=str, keep_default_na=False``, go through the vectorised :func:`validate_frame`. Both
apply the same rules, so a row gets the same answer whichever way it arrives:

* a value that is ``None`` or a string that is empty (or only whitespace) is missing: an
  error for a required feature, NaN (numbers) or ``None`` (others) for an optional one;
* numbers may come as text ("5.1", " 3 "), because HTML forms and CSV files only send text
  and the text has one obvious meaning; booleans never count as numbers (``true`` for a
  price is a client bug, not 1.0), and NaN or Infinity are refused, because a model turns them
  into meaningless predictions instead of failing;
* an integer feature takes 3, 3.0 and "3", but not 2.5, which a model would silently truncate;
* a boolean takes true/false and the text "true"/"false"/"1"/"0" in any case;
* categories are compared as text, so 1 matches "1".
"""

from __future__ import annotations

from modelport.serving.schema.features import Batch, Feature, InputError, InputSchema
from modelport.serving.schema.frames import validate_frame
from modelport.serving.schema.infer import infer_schema
from modelport.serving.schema.rows import validate_inputs
from modelport.serving.schema.types import (
    FEATURE_TYPES,
    MAX_CATEGORIES,
    MAX_DETAILS,
    NUMERIC_TYPES,
)

__all__ = [
    "FEATURE_TYPES",
    "MAX_CATEGORIES",
    "MAX_DETAILS",
    "NUMERIC_TYPES",
    "Batch",
    "Feature",
    "InputError",
    "InputSchema",
    "infer_schema",
    "validate_frame",
    "validate_inputs",
]
