"""CSV in, CSV out: the upload is checked whole, then predicted and streamed in chunks.

The body is spooled to a temporary file and validated in full before the first byte of the
answer, so a bad row anywhere gives a 422 with its row number rather than a half-written
file. Prediction then streams chunk by chunk, so a million rows never sit in memory.
"""

from __future__ import annotations

import csv
import io
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import pandas as pd

from modelport.models.predictions import Outcome, Source
from modelport.serving import records
from modelport.serving.inference import check_finite, input_rows, model_failure
from modelport.serving.predictor import Served
from modelport.serving.schema import InputError, validate_frame

CHUNK_ROWS = 50_000
COPY_BYTES = 1 << 20
MAX_DETAILS = 100


class TooLarge(Exception):
    """The upload passes a limit of its size (bytes, rows): a 413 that names the limit."""


def spool(stream: IO[bytes], max_bytes: int) -> IO[bytes]:
    """Copy a request body to a temporary file, refusing it past ``max_bytes`` (413)."""
    # Returned open: the streamed response closes it when the last chunk is sent.
    spooled = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115
    size = 0
    while chunk := stream.read(COPY_BYTES):
        size += len(chunk)
        if size > max_bytes:
            spooled.close()
            raise TooLarge(f"The CSV is larger than the limit of {max_bytes:,} bytes.")
        spooled.write(chunk)
    spooled.seek(0)
    return spooled


def _chunks(body: IO[bytes]) -> Iterator[pd.DataFrame]:
    body.seek(0)
    try:
        yield from pd.read_csv(
            body,
            dtype=str,
            keep_default_na=False,
            chunksize=CHUNK_ROWS,
            encoding="utf-8",
            skipinitialspace=True,
        )
    except pd.errors.EmptyDataError:
        raise InputError(
            [{"row": None, "field": None, "code": "empty_batch", "message": "The CSV is empty."}]
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(
            [
                {
                    "row": None,
                    "field": None,
                    "code": "invalid_csv",
                    "message": f"The body is not a readable UTF-8 CSV: {exc}",
                }
            ]
        ) from None


def check_csv(served: Served, body: IO[bytes], max_rows: int) -> int:
    """Validate every row of a spooled CSV; return the row count or raise InputError/413."""
    details: list[dict[str, Any]] = []
    rows = 0
    for frame in _chunks(body):
        if rows + len(frame) > max_rows:
            raise TooLarge(f"The CSV has more than the limit of {max_rows:,} rows.")
        try:
            validate_frame(served.schema, frame, first_row=rows)
        except InputError as exc:
            details.extend(exc.details)
            if len(details) >= MAX_DETAILS or any(d.get("row") is None for d in exc.details):
                break
        rows += len(frame)
    if details:
        raise InputError(details[:MAX_DETAILS])
    if rows == 0:
        raise InputError(
            [{"row": None, "field": None, "code": "empty_batch", "message": "The CSV has no rows."}]
        )
    return rows


@dataclass
class CsvAnswer:
    """A validated CSV upload's answer: its rows, and the CSV chunks to stream."""

    served: Served
    rows: int
    chunks: Iterator[bytes]


def predict_file(
    served: Served,
    body: IO[bytes],
    *,
    max_rows: int,
    request_id: str,
    caller: tuple[int | None, int | None],
) -> CsvAnswer:
    """Check every row of a spooled CSV, then predict its first chunk and return the answer
    that streams the rest (``stream_predictions``). ``InputError``, ``TooLarge`` or
    ``PredictionFailed``, with no model run for the first two."""
    try:
        rows = check_csv(served, body, max_rows)
        chunks = stream_predictions(
            served, body, source=Source.CSV.value, request_id=request_id, caller=caller
        )
    except BaseException:
        body.close()
        raise
    return CsvAnswer(served, rows, chunks)


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


def stream_predictions(
    served: Served,
    body: IO[bytes],
    *,
    source: str,
    request_id: str,
    caller: tuple[int | None, int | None],
) -> Iterator[bytes]:
    """Predict a validated CSV chunk by chunk and yield the CSV answer.

    The first chunk is predicted before this returns, so a model that fails on it (a NaN
    output, say) raises ``inference.PredictionFailed`` while a 422 can still be sent instead of a
    200 with a cut-off body. The record is written as ``incomplete`` before the first byte
    and completed when the last chunk has been handed to the server; a client that goes
    away leaves it incomplete, a model failure further down marks it ``error``.
    """
    chunks = _predicted_chunks(served, body, source=source, request_id=request_id, caller=caller)
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
    body: IO[bytes],
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
        for frame in _chunks(body):
            batch = validate_frame(served.schema, frame, first_row=done)
            try:
                prediction = served.runtime.predict(batch)
                check_finite(prediction)
            except Exception as exc:
                failure = model_failure(exc)
                if failure is None:
                    raise
                outcome, error_code = Outcome.ERROR.value, failure.code
                for detail in failure.details:
                    detail["row"] = None if detail["row"] is None else detail["row"] + done
                raise failure from None
            out = frame.copy()
            added = prediction_columns(served, prediction)
            for name, values in added.items():
                out[name] = values
            buffer = io.StringIO()
            out.to_csv(buffer, index=False, header=first, quoting=csv.QUOTE_MINIMAL)
            if first and record_id is not None:
                _store_first_rows(record_id, batch, out[list(added)])
            first = False
            done += len(frame)
            yield buffer.getvalue().encode("utf-8")
        outcome = Outcome.OK.value
    finally:
        body.close()
        if record_id is not None:
            records.finish_record(
                record_id,
                status=outcome,
                rows=done,
                latency_ms=(time.perf_counter() - started) * 1000,
                error_code=error_code,
            )


def _store_first_rows(record_id: int, batch: Any, out: pd.DataFrame) -> None:
    inputs = input_rows(batch, 200)
    outputs = out.iloc[: len(inputs)].to_dict(orient="records")
    records.store_rows(record_id, inputs, outputs, more=batch.rows > len(inputs))
