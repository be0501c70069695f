"""Responses that carry a CSV file, the same whichever page or endpoint sends it."""

from __future__ import annotations

from collections.abc import Iterable

from flask import Response, stream_with_context

from modelport.serving.csvstream import CsvAnswer


def csv_download(chunks: Iterable[str | bytes] | str, filename: str, **headers: str) -> Response:
    """A CSV file to save as ``filename``; ``chunks`` stream as they come (an iterator of
    text or bytes), in the request's context, and nginx passes them on unbuffered."""
    if isinstance(chunks, str):
        response = Response(chunks, mimetype="text/csv")
    else:
        response = Response(stream_with_context(chunks), mimetype="text/csv")
        response.headers["X-Accel-Buffering"] = "no"  # streamed: nginx passes it on as it comes
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers.update(headers)
    return response


def csv_answer(answer: CsvAnswer) -> Response:
    """A CSV upload's predictions, streamed, with the row count in ``X-Rows``."""
    return csv_download(
        answer.chunks, f"{answer.served.name}-predictions.csv", **{"X-Rows": str(answer.rows)}
    )
