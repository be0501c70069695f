"""CSV in, CSV out: the upload is read and checked whole in one pass, then predicted and
streamed in chunks.

``check_upload`` reads the header first, at most ``HEADER_BYTES_PER_COLUMN`` bytes per column
the upload may have, and refuses a CSV with more columns than the model's features plus
``MODELPORT_CSV_MAX_COLUMNS`` (413) before it reads a single row. It then parses the body
once, in pieces of about ``PARSE_BYTES`` that end at a record end (pyarrow's CSV parser;
Python's csv module for a piece pyarrow reads differently from pandas' rules, such as short
rows), validates every row against the schema and spools what the answer needs to a
temporary file as Arrow IPC: each validated batch and its rows already written as CSV text,
their cells made safe for spreadsheets (``csvcells``). A bad row anywhere gives a 422 with its row number before the first byte of
the answer, and no model has run.

``stream_predictions`` then reads the spool back in chunks of at most ``CHUNK_ROWS`` rows,
predicts each and writes it out, so a million rows never sit in memory; the record is written
``incomplete`` before the first byte and completed after the last.
"""

from __future__ import annotations

import csv
import functools
import io
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from modelport.config import current_settings
from modelport.lazy import lazy
from modelport.models.predictions import Outcome, Source
from modelport.serving import csvcells, records
from modelport.serving.inference import (
    check_finite,
    count_outcome,
    input_rows,
    model_failure,
    time_inference,
)
from modelport.serving.predictor import Served
from modelport.serving.schema import Batch, InputError, InputSchema, validate_frame

pd = lazy("pandas")
pa = lazy("pyarrow")
pc = lazy("pyarrow.compute")
pacsv = lazy("pyarrow.csv")

CHUNK_ROWS = 50_000  # rows predicted (and sent) at a time
CHUNK_BYTES = 8 << 20  # fewer when their CSV text is longer than this
PARSE_BYTES = 1 << 20  # bytes parsed at a time (more for 2,000+ columns or a longer row)
HEADER_BYTES_PER_COLUMN = 1024  # the header may take this much per column allowed
MAX_DETAILS = 100
_BOM = b"\xef\xbb\xbf"
_LINE_ENDS = b"\r\n"
_QUOTE, _COMMA, _SPACE, _LF, _CR = 34, 44, 32, 10, 13


class TooLarge(Exception):
    """The upload passes a limit of its size (bytes, rows, columns): a 413 naming the limit."""


class TooWide(TooLarge):
    """More columns than the model's features and ``MODELPORT_CSV_MAX_COLUMNS`` others."""

    def __init__(self, features: int, others: int, columns: int | None = None) -> None:
        self.features, self.others, self.columns = features, others, columns
        has = (
            f"The CSV has {columns:,} columns"
            if columns is not None
            else f"The CSV's header is longer than {header_bytes(features, others):,} bytes"
        )
        super().__init__(
            f"{has}: a CSV for this model may have at most {features + others:,} columns, "
            f"its {features} features and {others:,} more."
        )


def header_bytes(features: int, others: int) -> int:
    """The most bytes read for the header line: ``HEADER_BYTES_PER_COLUMN`` per column."""
    return HEADER_BYTES_PER_COLUMN * (features + others)


def _invalid(reason: str) -> InputError:
    return InputError(
        [
            {
                "row": None,
                "field": None,
                "code": "invalid_csv",
                "message": f"The body is not a readable UTF-8 CSV: {reason[:300]}",
            }
        ]
    )


def _empty(message: str) -> InputError:
    return InputError([{"row": None, "field": None, "code": "empty_batch", "message": message}])


class _Body:
    """The request body, read in pieces and refused (413) past ``max_bytes``."""

    def __init__(self, stream: IO[bytes], max_bytes: int) -> None:
        self.stream, self.max_bytes, self.size = stream, max_bytes, 0

    def read(self, size: int) -> bytes:
        data = self.stream.read(size)
        self.size += len(data)
        if self.size > self.max_bytes:
            raise TooLarge(f"The CSV is larger than the limit of {self.max_bytes:,} bytes.")
        return data

    def drain(self) -> None:
        """Read what is left, up to ``max_bytes``, and drop it: a server that answers and
        closes with part of the body unread resets the connection, and a client still
        sending it would never see the answer."""
        while self.size <= self.max_bytes and (data := self.stream.read(1 << 16)):
            self.size += len(data)


# ---- record ends ---------------------------------------------------------------------------


def _scan(buf: bytes | bytearray, *, first: bool, final: bool = False) -> tuple[int, bool]:
    """The index just after the first (or last) line end outside a quoted field (-1 when
    there is none), and whether ``buf`` ends inside a quoted field (``final``: ``buf`` is
    the end of the body, so a quote as its last byte closes a field).

    A quote opens a quoted field at the start of a field (after spaces too, as pandas'
    ``skipinitialspace`` reads it); elsewhere it is a plain character. Inside a quoted
    field ``""`` is a quote and line ends belong to the field. ``buf`` starts at a record.
    """
    found, pos, size = -1, 0, len(buf)
    while pos < size:
        quote = buf.find(b'"', pos)
        stop = size if quote < 0 else quote
        if first:
            ends = [e for e in (buf.find(b"\n", pos, stop), buf.find(b"\r", pos, stop)) if e >= 0]
            if ends:
                return min(ends) + 1, False
        else:
            end = max(buf.rfind(b"\n", pos, stop), buf.rfind(b"\r", pos, stop))
            found = end + 1 if end >= 0 else found
        if quote < 0:
            break
        start = quote
        while start > 0 and buf[start - 1] == _SPACE:
            start -= 1
        if start > 0 and buf[start - 1] not in (_COMMA, _LF, _CR):
            pos = quote + 1  # a quote inside an unquoted field
            continue
        pos = quote + 1
        while True:  # to the quote that closes the field
            pos = buf.find(b'"', pos)
            if pos < 0 or (pos + 1 >= size and not final):
                return found, True  # the field runs past what has been read
            if pos + 1 >= size or buf[pos + 1] != _QUOTE:
                break
            pos += 2
        pos += 1
    return found, False


def _quotes_in_place(data: np.ndarray) -> np.ndarray | None:
    """The quotes' positions when each is where RFC 4180 puts it (then a byte is inside a
    quoted field exactly when an odd number of quotes precede it), else None."""
    quotes = np.flatnonzero(data == _QUOTE)
    opening, closing = quotes[0::2], quotes[1::2]
    before = data[np.maximum(opening - 1, 0)]
    after = data[np.minimum(closing + 1, len(data) - 1)]
    separators = [_COMMA, _LF, _CR, _QUOTE]
    if np.all(np.isin(before, separators) | (opening == 0)) and np.all(
        np.isin(after, separators) | (closing == len(data) - 1)
    ):
        return quotes
    return None


def _last_record_end(buf: bytearray) -> int:
    """``_scan(buf, first=False)``'s record end, vectorised when the quotes are in place."""
    if buf.find(b'"') < 0:
        return max(buf.rfind(b"\n"), buf.rfind(b"\r")) + 1
    data = np.frombuffer(buf, dtype=np.uint8)
    quotes = _quotes_in_place(data)
    if quotes is None:  # a quote inside an unquoted field
        return _scan(buf, first=False)[0]
    ends = np.flatnonzero((data == _LF) | (data == _CR))
    outside = ends[np.searchsorted(quotes, ends) % 2 == 0]
    return int(outside[-1]) + 1 if len(outside) else -1


def _unclosed(buf: bytes) -> bool:
    """Whether the end of the body ``buf`` is inside a quoted field."""
    if b'"' not in buf:
        return False
    quotes = _quotes_in_place(np.frombuffer(buf, dtype=np.uint8))
    if quotes is None:
        return _scan(buf, first=False, final=True)[1]
    return len(quotes) % 2 == 1


def _pieces(body: _Body, pending: bytearray, size: int) -> Iterator[bytes]:
    """The rest of the body in pieces of whole records, about ``size`` bytes each; the last
    piece is checked for a quoted field left open once it has been parsed."""
    want = size
    while True:
        data = body.read(want)
        if not data:
            last = bytes(pending)
            if last.strip(_LINE_ENDS):
                yield last
            if _unclosed(last):
                raise _invalid("a quoted field is not closed at the end of the file.")
            return
        pending += data
        if len(pending) < size:
            continue
        cut = _last_record_end(pending)
        if cut <= 0:
            want = len(pending)  # one record longer than what has been read: read as much
            continue
        yield bytes(pending[:cut])
        del pending[:cut]
        want = size


# ---- the header ----------------------------------------------------------------------------


def _header(body: _Body, schema: InputSchema, others: int) -> tuple[list[str], bytearray]:
    """The column names, read within ``header_bytes``; 413 when there are too many. Returns
    the bytes read past the header too."""
    features = len(schema.features)
    limit = header_bytes(features, others)
    buf = bytearray()
    end = -1
    while end < 0:
        data = body.read(min(PARSE_BYTES, limit + 1 - len(buf)))
        if not data:
            end = len(buf)
            break
        buf += data
        if buf.startswith(_BOM):
            del buf[: len(_BOM)]
        del buf[: len(buf) - len(buf.lstrip(_LINE_ENDS))]  # blank lines before the header
        end = _scan(buf, first=True)[0]
        if end < 0 and len(buf) > limit:
            raise TooWide(features, others)
    if end > limit + 1:
        raise TooWide(features, others)
    try:
        text = bytes(buf[:end]).decode("utf-8")
        names = next(csv.reader([text.rstrip("\r\n")], skipinitialspace=True), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise _invalid(str(exc)) from None
    if not names:
        raise _empty("The CSV is empty.")
    known = set(schema.names)
    if len(names) - len(known.intersection(names)) > others:
        raise TooWide(features, others, len(names))
    return names, buf[end:]


# ---- parsing -------------------------------------------------------------------------------


def read(
    stream: IO[bytes], schema: InputSchema, *, max_columns: int, max_bytes: int
) -> tuple[list[str], Iterator[tuple[pa.Table, bool]]]:
    """A CSV body as its header's names and its rows in pieces.

    The header is read first (``TooWide`` when it has more than the schema's features and
    ``max_columns`` others, before any row is read); each piece is a table of one string
    column per header column, with whether the piece held a quote (only then can a cell hold
    a comma, a quote or a line break). Every byte is parsed once; ``TooLarge`` past
    ``max_bytes``.
    """
    return _read(_Body(stream, max_bytes), schema, max_columns)


def _read(
    body: _Body, schema: InputSchema, max_columns: int
) -> tuple[list[str], Iterator[tuple[pa.Table, bool]]]:
    names, rest = _header(body, schema, max_columns)
    return names, _parsed(body, rest, len(names))


def _parsed(body: _Body, rest: bytearray, width: int) -> Iterator[tuple[pa.Table, bool]]:
    rows = 0
    # Wider CSVs in larger pieces (1 MiB more per 1,000 columns): pyarrow's work per column
    # and piece stays small next to its work per byte.
    for piece in _pieces(body, rest, PARSE_BYTES * max(1, width // 1000)):
        table = _parse(piece, width, rows)
        rows += table.num_rows
        yield table, b'"' in piece


@functools.cache
def _parse_options() -> pacsv.ParseOptions:
    return pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=True)


def _parse(piece: bytes, width: int, first_row: int) -> pa.Table:
    """The cells of a piece of whole records, one string column per header column."""
    quoted = b'"' in piece
    spaced = b", " in piece
    # A line that starts with a space or tab may be blank to pandas (then skipped).
    indented = piece[:1] in (b" ", b"\t") or any(
        s in piece for s in (b"\n ", b"\n\t", b"\r ", b"\r\t")
    )
    if not (indented or (quoted and spaced)):
        table = _parse_arrow(piece, width)
        if table is not None:
            if spaced:  # no quotes here: the spaces skipinitialspace drops are plain
                columns = [pc.utf8_ltrim(c, characters=" ") for c in table.columns]
                table = pa.table(columns, names=table.column_names)
            return table
    return _parse_python(piece, width, first_row)


def _parse_arrow(piece: bytes, width: int) -> pa.Table | None:
    """pyarrow's parse, or None for a piece with a row of another width: pandas pads a
    short row, and ``_parse_python`` does too (and refuses a long one with its number)."""
    names = _names(width)
    try:
        return pacsv.read_csv(
            pa.BufferReader(piece),
            read_options=pacsv.ReadOptions(
                column_names=names, use_threads=False, block_size=len(piece) + 1
            ),
            parse_options=_parse_options(),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string())),
        )
    except pa.ArrowInvalid as exc:
        if "columns, got" in str(exc):
            return None
        raise _invalid(str(exc)) from None


def _names(width: int) -> list[str]:
    return [f"c{i}" for i in range(width)]


def _parse_python(piece: bytes, width: int, first_row: int) -> pa.Table:
    """Python's csv module as pandas reads a CSV: spaces after a comma skipped, a short row
    padded with empty cells, a long one refused."""
    try:
        text = piece.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid(str(exc)) from None
    cells: list[list[str]] = [[] for _ in range(width)]
    row = first_row
    read: list[str] = []  # the lines of the record being read

    def lines() -> Iterator[str]:
        for line in io.StringIO(text, newline=""):
            read.append(line)
            yield line

    try:
        for fields in csv.reader(lines(), skipinitialspace=True):
            blank = not "".join(read).strip(" \t\r\n")
            read.clear()
            if blank:
                continue  # pandas skips a line of nothing but spaces and tabs
            if len(fields) > width:
                raise _invalid(
                    f"row {row + 1} has {len(fields)} fields, the header {width} columns."
                )
            fields += [""] * (width - len(fields))
            for column, value in zip(cells, fields, strict=True):
                column.append(value)
            row += 1
    except csv.Error as exc:
        raise _invalid(str(exc)) from None
    return pa.table([pa.array(column, type=pa.string()) for column in cells], names=_names(width))


def _frame(columns: list[pa.Array], labels: list[str], rows: int) -> pd.DataFrame:
    """Feature cells as validate_frame reads them (duplicate labels kept)."""
    frame = pd.DataFrame(
        {i: column.to_pandas() for i, column in enumerate(columns)}, index=pd.RangeIndex(rows)
    )
    frame.columns = labels
    return frame


def _row_text(columns: list[pa.Array], quoted: bool) -> pa.Array:
    """Each row's cells as CSV text: made safe for spreadsheets, quoted where needed, joined."""
    # One array of every cell, column after column: the rules run once per chunk rather than
    # once per column, so a wide CSV costs per cell.
    rows = len(columns[0])
    cells = csvcells.safe_column(pa.concat_arrays(columns))
    if quoted:  # only a piece with a quote can have a cell that needs one
        cells = csvcells.quoted_column(cells)
    if len(columns) == 1:
        return cells
    fields = [cells.slice(i * rows, rows) for i in range(len(columns))]
    return pc.binary_join_element_wise(*fields, ",")


def _chunks(pieces: Iterator[tuple[pa.Table, bool]]) -> Iterator[tuple[list[pa.Array], bool]]:
    """The parsed rows regrouped as the answer's chunks: ``CHUNK_ROWS`` rows, fewer when
    their cells pass ``CHUNK_BYTES``; one array per column."""
    pending: list[pa.Table] = []
    rows = size = 0
    quoted = False
    for table, piece_quoted in pieces:
        start = 0
        while start < table.num_rows:
            part = table.slice(start, CHUNK_ROWS - rows)
            start += part.num_rows
            rows += part.num_rows
            size += part.nbytes
            quoted |= piece_quoted
            pending.append(part)
            if rows == CHUNK_ROWS or size >= CHUNK_BYTES:
                yield _joined(pending), quoted
                pending, rows, size, quoted = [], 0, 0, False
    if pending:
        yield _joined(pending), quoted


def _joined(parts: list[pa.Table]) -> list[pa.Array]:
    table = pa.concat_tables(parts).combine_chunks()
    return [
        column.chunk(0) if column.num_chunks == 1 else pa.array([], pa.string())
        for column in table.columns
    ]


def _batch_record(batch: Batch, text: pa.Array) -> pa.RecordBatch:
    """A validated batch (its typed columns) and its rows' CSV text, as Arrow."""
    arrays = [pa.array(column) for column in batch.columns.values()]
    names = [f"f{i}" for i in range(len(arrays))]
    return pa.record_batch([*arrays, text], names=[*names, "row"])


def _batch_from(record: pa.RecordBatch, names: list[str], types: dict[str, str]) -> Batch:
    """``_batch_record``'s batch again: the same dtypes (object for text and for a boolean
    with missing values, which come back as None)."""
    columns = {
        name: record.column(i).to_numpy(zero_copy_only=False) for i, name in enumerate(names)
    }
    return Batch(columns=columns, rows=record.num_rows, warnings=[], types=types)


# ---- the checked upload --------------------------------------------------------------------


@dataclass
class Upload:
    """A CSV upload checked whole: its header, row count and the spool the answer is made
    from, one Arrow IPC stream per chunk (the validated batch and each row's CSV text)."""

    names: list[str]
    rows: int
    spool: IO[bytes]
    features: list[str]  # the batches' column names, in schema order
    types: dict[str, str]  # the batches' feature types (``Batch.types``)

    def chunks(self) -> Iterator[tuple[Batch, pa.Array]]:
        """The spooled chunks: each batch and its rows' CSV text."""
        while size := int.from_bytes(self.spool.read(8), "little"):
            record = pa.ipc.open_stream(self.spool.read(size)).read_next_batch()
            yield _batch_from(record, self.features, self.types), record.column(-1)

    def close(self) -> None:
        """Remove the spool."""
        self.spool.close()


def check_upload(served: Served, stream: IO[bytes]) -> Upload:
    """Read, validate and spool a CSV upload in one pass (nothing is predicted).

    Raises ``TooWide`` (413) before any row is read when the header has too many columns,
    ``TooLarge`` (413) past ``MODELPORT_CSV_MAX_BYTES`` or ``..._CSV_MAX_ROWS``, and
    ``InputError`` (422) with row numbers for rows the schema refuses.
    """
    settings = current_settings()
    body = _Body(stream, settings.csv_max_bytes)
    spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115 - closed by Upload
    try:
        names, pieces = _read(body, served.schema, settings.csv_max_columns)
        rows, types = _check_rows(served, names, pieces, spool, settings.csv_max_rows)
    except (InputError, TooLarge):
        spool.close()
        body.drain()
        raise
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return Upload(names, rows, spool, served.schema.names, types)


def _check_rows(
    served: Served,
    names: list[str],
    pieces: Iterator[tuple[pa.Table, bool]],
    spool: IO[bytes],
    max_rows: int,
) -> tuple[int, dict[str, str]]:
    """Validate every chunk, spooling each while all are valid; the row count and types."""
    known = set(served.schema.names)
    positions = [i for i, name in enumerate(names) if name in known]
    labels = [names[i] for i in positions]
    details: list[dict[str, Any]] = []
    rows = 0
    types: dict[str, str] = {}
    for columns, quoted in _chunks(pieces):
        count = len(columns[0])
        if rows + count > max_rows:
            raise TooLarge(f"The CSV has more than the limit of {max_rows:,} rows.")
        frame = _frame([columns[i] for i in positions], labels, count)
        try:
            batch = validate_frame(served.schema, frame, first_row=rows)
        except InputError as exc:
            details.extend(exc.details)
            if len(details) >= MAX_DETAILS or any(d.get("row") is None for d in details):
                raise InputError(details[:MAX_DETAILS]) from None
        else:
            if not details:
                types = batch.types
                _spool(spool, _batch_record(batch, _row_text(columns, quoted)))
        rows += count
    if details:
        raise InputError(details[:MAX_DETAILS])
    if rows == 0:
        raise _empty("The CSV has no rows.")
    return rows, types


def _spool(spool: IO[bytes], record: pa.RecordBatch) -> None:
    # A stream of its own per chunk: a column's dtype may differ from one chunk to the next
    # (an integer column with a missing value is float, say).
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, record.schema) as writer:
        writer.write_batch(record)
    data = sink.getvalue()
    spool.write(len(data).to_bytes(8, "little"))
    spool.write(data)


# ---- the answer ----------------------------------------------------------------------------


def prediction_columns(served: Served, prediction: Any) -> dict[str, Any]:
    """Columns appended to the CSV: ``prediction`` and one ``probability_<class>`` per class."""
    if prediction.values is not None:
        return {"prediction": np.asarray(prediction.values, dtype=float)}
    columns: dict[str, Any] = {"prediction": np.asarray(prediction.labels)}
    if prediction.probabilities is not None:
        classes = prediction.classes or served.classes or []
        probabilities = np.asarray(prediction.probabilities, dtype=float)
        for index, cls in enumerate(classes):
            columns[f"probability_{cls}"] = probabilities[:, index]
    return columns


def _text(values: np.ndarray) -> pa.Array:
    """A prediction column as CSV text fields."""
    if values.dtype.kind in "fiu":
        # Finite numbers (check_finite), which csvcells' rule leaves as they are.
        return pc.cast(pa.array(values), pa.string())
    try:
        cells = pa.array(values, type=pa.string()).fill_null("")  # labels that are text
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        cells = pa.array([str(value) for value in values.tolist()], type=pa.string())
    return csvcells.quoted_column(csvcells.safe_column(cells))


def _header_line(names: list[str]) -> bytes:
    cells = csvcells.safe_column(pa.array(names, pa.string()))
    return (",".join(csvcells.quoted_column(cells).to_pylist()) + "\n").encode("utf-8")


@dataclass
class CsvAnswer:
    """A checked CSV upload's answer: its rows, and the CSV chunks to stream."""

    served: Served
    rows: int
    chunks: Iterator[bytes]


def predict_upload(
    served: Served,
    upload: Upload,
    *,
    request_id: str,
    caller: tuple[int | None, int | None],
) -> CsvAnswer:
    """Predict a checked upload's (``check_upload``) first chunk and return the answer that
    streams the rest (``stream_predictions``); ``PredictionFailed`` when the model fails on
    the first chunk."""
    try:
        chunks = stream_predictions(
            served, upload, source=Source.CSV.value, request_id=request_id, caller=caller
        )
    except BaseException:
        upload.close()
        raise
    return CsvAnswer(served, upload.rows, chunks)


def stream_predictions(
    served: Served,
    upload: Upload,
    *,
    source: str,
    request_id: str,
    caller: tuple[int | None, int | None],
) -> Iterator[bytes]:
    """Predict a checked upload chunk by chunk and yield the CSV answer.

    The first chunk is predicted before this returns, so a model that fails on it (a NaN
    output, say) raises ``inference.PredictionFailed`` while a 422 can still be sent instead of a
    200 with a cut-off body. The record is written as ``incomplete`` before the first byte
    and completed when the last chunk has been handed to the server; a client that goes
    away leaves it incomplete, a model failure further down marks it ``error``.
    """
    chunks = _predicted_chunks(served, upload, source=source, request_id=request_id, caller=caller)
    try:
        first = next(chunks)
    except StopIteration:
        return iter(())
    return _resumed(first, chunks)


def _resumed(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    # A generator (not itertools.chain) so that closing the response closes ``rest`` too,
    # which completes the record even if the client left before the first chunk.
    try:
        yield first
        yield from rest
    finally:
        rest.close()  # type: ignore[attr-defined]


def _predicted_chunks(
    served: Served,
    upload: Upload,
    *,
    source: str,
    request_id: str,
    caller: tuple[int | None, int | None],
) -> Iterator[bytes]:
    started = time.perf_counter()
    record_id = records.log_prediction(
        served,
        source=source,
        status=Outcome.INCOMPLETE.value,
        rows=0,
        latency_ms=0.0,
        request_id=request_id,
        inputs=None,
        caller=caller,
    )
    done = 0
    outcome = Outcome.INCOMPLETE.value
    error_code = None
    first = True
    try:
        for batch, rows_text in upload.chunks():
            try:
                computing = time.perf_counter()
                prediction = served.runtime.predict(batch)
                time_inference(served, time.perf_counter() - computing)
                check_finite(prediction)
            except Exception as exc:
                failure = model_failure(exc)
                if failure is None:
                    raise
                outcome, error_code = Outcome.ERROR.value, failure.code
                for detail in failure.details:
                    detail["row"] = None if detail["row"] is None else detail["row"] + done
                raise failure from None
            added = prediction_columns(served, prediction)
            text = csvcells.csv_lines([rows_text, *(_text(v) for v in added.values())])
            if first:
                text = _header_line([*upload.names, *added]) + text
                if record_id is not None:
                    _store_first_rows(record_id, batch, added)
            first = False
            done += batch.rows
            yield text
        outcome = Outcome.OK.value
    finally:
        upload.close()
        count_outcome(served, source, outcome, done)
        if record_id is not None:
            records.finish_record(
                record_id,
                status=outcome,
                rows=done,
                latency_ms=(time.perf_counter() - started) * 1000,
                error_code=error_code,
            )


def _store_first_rows(record_id: int, batch: Any, added: dict[str, Any]) -> None:
    inputs = input_rows(batch, 200)
    kept = [np.asarray(values)[: len(inputs)].tolist() for values in added.values()]
    outputs = [dict(zip(added, row, strict=True)) for row in zip(*kept, strict=True)]
    records.store_rows(record_id, inputs, outputs, more=batch.rows > len(inputs))
