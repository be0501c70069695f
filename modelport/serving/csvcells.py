"""Cells of the CSV files Modelport writes: safe to open in a spreadsheet, and quoted.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula, and some
treat a leading tab or carriage return the same way, so a cell such as ``=cmd|' /C calc'!A0``
sent through a pass-through column would run on the machine of whoever opens the answer.
Every CSV Modelport writes passes its cells through the one rule here (OWASP's advice on CSV
injection): a cell that starts with one of those characters gets a single quote in front,
unless it is a finite number written the plain way (``-1.5``, ``+3``, ``-2e-5``), which stays
as it is. ``safe_text`` is the rule for one cell, ``safe_column`` the same rule for a column
of the streamed CSV answer, and ``writer`` a ``csv.writer`` whose cells go through it.

The streamed answer is written by pyarrow's compute functions rather than by ``csv.writer``,
so that a wide or long upload costs per byte rather than per Python object: a cell is quoted
exactly when it holds a comma, a quote or a line break (``QUOTE_MINIMAL``), and the rows are
joined into one bytes object.
"""

from __future__ import annotations

import csv
import math
import re
from typing import IO, Any

import numpy as np

from modelport.lazy import lazy

pa = lazy("pyarrow")
pc = lazy("pyarrow.compute")

TRIGGERS = frozenset("=+-@\t\r")
PREFIX = "'"
# A plain decimal number: a sign, digits with or without a point (or a point and digits),
# an exponent; ASCII only, no spaces, "_", "inf" or "nan". The same pattern for Python's re
# (fullmatch) and pyarrow's RE2 (between ^ and $, which in RE2 is the very end of the text).
NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_NUMBER = re.compile(NUMBER)
_STARTS = r"^[=+\-@\t\r]"
_QUOTE_NEEDED = '[,"\\r\\n]'


def safe_text(text: str) -> str:
    """``text`` with a single quote in front when a spreadsheet would run it as a formula:
    it starts with ``= + - @``, a tab or a carriage return and is not a finite number."""
    if text[:1] in TRIGGERS and not (
        _NUMBER.fullmatch(text) is not None and math.isfinite(float(text))
    ):
        return PREFIX + text
    return text


def safe_cell(value: Any) -> Any:
    """A cell as ``csv.writer`` is given it: text through ``safe_text``; a float that is not
    finite (written ``-inf``) too; numbers, None and the rest unchanged."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return safe_text(str(value))
    return value


def safe_column(column: pa.Array) -> pa.Array:
    """``safe_text`` on every cell of a string column (without nulls), vectorised."""
    starts = pc.match_substring_regex(column, _STARTS)
    if not pc.any(starts).as_py():
        return column
    plain = pc.match_substring_regex(column, f"^{NUMBER}$")
    # Only the plain numbers are cast; the others become "0" first, so the cast cannot fail.
    finite = pc.and_(plain, pc.is_finite(pc.cast(pc.if_else(plain, column, "0"), pa.float64())))
    formula = pc.and_(starts, pc.invert(finite))
    return pc.if_else(formula, pc.binary_join_element_wise(PREFIX, column, ""), column)


class _SafeWriter:
    """A ``csv.writer`` whose every cell goes through ``safe_cell`` first."""

    def __init__(self, buffer: IO[str], **options: Any) -> None:
        self._writer = csv.writer(buffer, **options)

    def writerow(self, row: Any) -> Any:
        """Write one row, its cells made safe."""
        return self._writer.writerow([safe_cell(value) for value in row])


def writer(buffer: IO[str], **options: Any) -> _SafeWriter:
    """``csv.writer(buffer, **options)`` whose cells go through ``safe_cell``."""
    return _SafeWriter(buffer, **options)


def quoted_column(column: pa.Array) -> pa.Array:
    """Cells as CSV fields: in double quotes (inner quotes doubled) when they hold a comma,
    a quote or a line break, else as they are."""
    needed = pc.match_substring_regex(column, _QUOTE_NEEDED)
    if not pc.any(needed).as_py():
        return column
    escaped = pc.replace_substring(column, '"', '""')
    return pc.if_else(needed, pc.binary_join_element_wise('"', escaped, '"', ""), column)


def csv_lines(columns: list[pa.Array]) -> bytes:
    """Rows of CSV fields (one string column per field, no nulls) as lines ending in ``\\n``."""
    joined = columns[0] if len(columns) == 1 else pc.binary_join_element_wise(*columns, ",")
    return column_bytes(pc.binary_join_element_wise(joined, "", "\n"))


def column_bytes(column: pa.Array) -> bytes:
    """The cells of a string column, one after the other, as one bytes object."""
    if len(column) == 0:
        return b""
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)
    start, end = offsets[column.offset], offsets[column.offset + len(column)]
    return bytes(memoryview(column.buffers()[2])[start:end])
