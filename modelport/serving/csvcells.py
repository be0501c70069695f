"""Cells of the CSV files Modelport writes: quoted where needed, a column at a time.

The streamed CSV answer is written by pyarrow's compute functions rather than by
``csv.writer``, cell by cell, so that a wide or long upload costs per byte rather than per
Python object: a cell is quoted exactly when it holds a comma, a quote or a line break (as
``csv.writer``'s ``QUOTE_MINIMAL`` does), and the rows are joined into one bytes object.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_QUOTE_NEEDED = '[,"\\r\\n]'


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
