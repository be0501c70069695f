"""CSV uploads: the column limit is enforced from the header alone, and the body is parsed
once, as pandas would read it, whatever the size of the pieces it is parsed in."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from typing import Any

import pandas as pd
import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st

from modelport.serving import csvstream
from modelport.serving.schema import InputSchema
from tests.support.databases import table_counts
from tests.support.fuzzing import examples
from tests.support.html import csrf_token
from tests.support.models import IRIS_ROW, register_demo

PREDICT = "/api/v1/models/iris/predict"
HEADER = ",".join(IRIS_ROW)
ROW = ",".join(str(v) for v in IRIS_ROW.values())

# Run in a process of its own, so that its peak memory is the request's: the app answers one
# small CSV (the model is loaded, the code imported), then the wide one. A watchdog stops a
# request whose memory runs away (today's parser would take gigabytes) so the test fails fast.
_MEASURE = r"""
import gc, json, os, resource, sys, threading
from modelport import create_app

settings, kind = json.loads(sys.argv[1]), sys.argv[2]
client = create_app(settings).test_client()
small = client.post(
    "/api/v1/models/iris/predict", data=sys.argv[3] + "\n" + sys.argv[4] + "\n",
    content_type="text/csv",
)
assert small.status_code == 200, small.get_data(as_text=True)
small.get_data()

columns = 1_000_000
header = sys.argv[3].encode() + b"," + b"extra_col," * (columns - 5) + b"extra_col"
if kind == "rows":
    row = sys.argv[4].encode() + b",x" * (columns - 4) + b"\n"
    body = header + b"\n" + row * 3
else:  # the header alone, without a line end
    body = header

page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * page

gc.collect()
start, start_peak = rss(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
highest, done = [start], threading.Event()
def watch():
    while not done.wait(0.01):
        highest[0] = max(highest[0], rss())
        if highest[0] - start > 300 << 20:
            print(json.dumps({"runaway": highest[0] - start}), flush=True)
            os._exit(0)
threading.Thread(target=watch, daemon=True).start()
response = client.post("/api/v1/models/iris/predict", data=body, content_type="text/csv")
answer = response.get_data(as_text=True)
done.set()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({
    "status": response.status_code,
    "answer": answer[:2000],
    "body_bytes": len(body),
    "grew": max(peak - start_peak, highest[0] - start),
}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["rows", "no line end"])
def test_a_csv_over_the_column_limit_is_refused_before_its_rows_are_parsed(
    app_factory: Any, demo_models: dict[str, Any], kind: str
) -> None:
    """1,000,000 columns (a 10 MB header) to the public iris model, anonymously: a 413 that
    names the limit, and the worker's memory grows by less than 50 MB (it took 3–4.7 GB and
    never answered before the limit)."""
    app = app_factory()
    register_demo(app, demo_models, "iris")
    settings = {
        "ENV": "testing",
        "DATABASE_URL": app.settings.database_url,
        "INSTANCE_PATH": app.instance_path,
        "LOG_LEVEL": "WARNING",
    }
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
    try:
        result = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", _MEASURE, json.dumps(settings), kind, HEADER, ROW],
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,  # MODELPORT_WORKER_TIMEOUT: gunicorn kills a worker this slow
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("no answer within 60 s, the time gunicorn gives a worker")
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert "runaway" not in measured, f"memory grew by {measured['runaway'] >> 20} MB and more"
    assert measured["body_bytes"] > 10_000_000
    assert measured["status"] == 413, measured["answer"]
    error = json.loads(measured["answer"])["error"]
    assert error["code"] == "payload_too_large"
    assert "at most 104 columns, its 4 features and 100 more" in error["message"]
    assert measured["grew"] < 50 << 20, f"memory grew by {measured['grew'] >> 20} MB"


class CountingStream(io.BytesIO):
    """A request body that counts the bytes the app read from it."""

    taken = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.taken += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        size = super().readinto(buffer)
        self.taken += size
        return size


def _post(client: Any, body: bytes | str) -> Any:
    return client.post(PREDICT, data=body, content_type="text/csv")


def test_the_column_limit_counts_the_columns_beyond_the_features(
    app_factory: Any, demo_models: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = app_factory(CSV_MAX_COLUMNS="2")
    register_demo(app, demo_models, "iris")
    client = app.test_client()

    at_limit = _post(client, f"id,{HEADER},note\na1,{ROW},x\n")
    assert at_limit.status_code == 200, at_limit.get_data(as_text=True)
    assert at_limit.get_data(as_text=True).startswith(f"id,{HEADER},note,prediction,")
    before = table_counts(app)
    for header in (f"id,{HEADER},note,more", f"sepal_length,{HEADER},note,more"):
        refused = _post(client, f"{header}\n{ROW},a,b,c\n")
        assert refused.status_code == 413
        assert refused.get_json()["error"] == {
            "code": "payload_too_large",
            "message": "The CSV has 7 columns: a CSV for this model may have at most 6 "
            "columns, its 4 features and 2 more.",
            "details": None,
        }
    # A header too long for 6 columns is refused when the bytes run out, however it ends.
    limit = csvstream.header_bytes(4, 2)
    assert limit == 6 * csvstream.HEADER_BYTES_PER_COLUMN
    long_name = _post(client, f"{HEADER},{'n' * limit}\n{ROW},x\n")
    assert long_name.status_code == 413
    assert long_name.get_json()["error"]["message"] == (
        f"The CSV's header is longer than {limit:,} bytes: a CSV for this model may have at "
        "most 6 columns, its 4 features and 2 more."
    )
    # The answer comes from the header alone: no row of a 20 MB body is parsed (the rest is
    # read and dropped, so that a client still sending it can read the answer).
    parsed: list[bytes] = []
    monkeypatch.setattr(csvstream, "_parse", lambda piece, *_: parsed.append(piece))
    body = CountingStream(f"{HEADER},{'a,' * 10_000}b\n".encode() + b"x,y\n" * (5 << 20))
    refused = client.post(
        PREDICT,
        input_stream=body,
        content_length=len(body.getvalue()),
        content_type="text/csv",
    )
    assert refused.status_code == 413
    assert parsed == []
    assert body.taken == len(body.getvalue())
    assert table_counts(app) == before


def test_the_batch_page_says_the_file_has_too_many_columns(
    app_factory: Any, demo_models: dict[str, Any]
) -> None:
    app = app_factory(CSV_MAX_COLUMNS="1")
    register_demo(app, demo_models, "iris")
    client = app.test_client()
    before = table_counts(app)
    response = client.post(
        "/models/iris/batch",
        data={
            "file": (io.BytesIO(f"id,{HEADER},note\na,{ROW},b\n".encode()), "wide.csv"),
            "csrf_token": csrf_token(client, "/models/iris/batch"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 413
    assert (
        "The file has too many columns: at most 5, the model&#39;s 4 features and 1 more."
        in response.get_data(as_text=True)
    )
    assert table_counts(app) == before


def test_every_byte_is_parsed_once_and_no_model_runs_for_a_bad_file(
    app_factory: Any, demo_models: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One parse of the whole body; a bad last row (past the first chunk) runs no model."""
    app = app_factory()
    register_demo(app, demo_models, "iris")
    parsed: list[int] = []
    parse = csvstream._parse

    def counting(piece: bytes, *args: Any) -> Any:
        parsed.append(len(piece))
        return parse(piece, *args)

    monkeypatch.setattr(csvstream, "_parse", counting)
    monkeypatch.setattr(csvstream, "PARSE_BYTES", 4096)
    head = f"id,{HEADER}\n"
    rows = "".join(f"r{i},{ROW}\n" for i in range(csvstream.CHUNK_ROWS + 10))
    client = app.test_client()
    response = _post(client, head + rows)
    assert response.status_code == 200
    assert response.get_data(as_text=True).count("\n") == csvstream.CHUNK_ROWS + 11
    assert sum(parsed) == len(rows) and len(parsed) > 1

    from modelport.serving.predictor import resolve

    with app.test_request_context():
        runtime = type(resolve("iris").runtime)
    predicted: list[int] = []
    real = runtime.predict

    def spying(self: Any, batch: Any) -> Any:
        predicted.append(batch.rows)
        return real(self, batch)

    monkeypatch.setattr(runtime, "predict", spying)
    before = table_counts(app)
    bad = _post(client, head + rows + f"last,{ROW.replace('5.1', 'wide')}\n")
    assert bad.status_code == 422
    assert [(d["row"], d["field"]) for d in bad.get_json()["error"]["details"]] == [
        (csvstream.CHUNK_ROWS + 10, "sepal_length")
    ]
    assert predicted == []
    assert table_counts(app) == before


# --- the reader reads as pandas reads ----------------------------------------------------------

NO_FEATURES = InputSchema(features=[])
CELLS = st.lists(
    st.sampled_from(
        ["a", "1", "-2.5", " ", "  x", ",", '"', '""', '"q,1"', '"m\nl"', '"c\r\nd"', ' "s"']
        + ['5" tv', "\t", "é", "=1+1", "x y", ""]
    ),
    max_size=3,
).map("".join)


@st.composite
def csv_bodies(draw: Any) -> bytes:
    width = draw(st.integers(1, 4))
    line_end = draw(st.sampled_from(["\n", "\r\n", "\r", "\n\n"]))
    rows = draw(st.lists(st.lists(CELLS, min_size=width, max_size=width), min_size=1, max_size=6))
    lines = [",".join(f"h{i}" for i in range(width)), *(",".join(row) for row in rows)]
    start = draw(st.sampled_from(["", "\ufeff", "\n"]))
    return (start + line_end.join(lines) + draw(st.sampled_from(["", line_end]))).encode()


def _ours(body: bytes, piece_bytes: int) -> Any:
    """The cells as the reader gives them, or the refusal's message."""
    old = csvstream.PARSE_BYTES
    csvstream.PARSE_BYTES = piece_bytes
    try:
        names, pieces = csvstream.read(
            io.BytesIO(body), NO_FEATURES, max_columns=10, max_bytes=1 << 20
        )
        columns: list[list[str]] = [[] for _ in names]
        for piece, _quoted in pieces:
            for column, cells in zip(columns, piece, strict=True):
                column.extend(cells.to_pylist())
        return names, columns
    except Exception as exc:  # noqa: BLE001 - compared below
        return f"{type(exc).__name__}: {exc}"
    finally:
        csvstream.PARSE_BYTES = old


@settings(max_examples=examples(400), deadline=None)
@given(csv_bodies())
def test_the_reader_reads_cells_as_pandas_does_in_pieces_of_any_size(body: bytes) -> None:
    ours = _ours(body, 1 << 20)
    # The same cells however small the pieces: no record is cut or read twice.
    assert _ours(body, 3) == ours and _ours(body, 17) == ours
    try:
        frame = pd.read_csv(
            io.BytesIO(body), dtype=str, keep_default_na=False, skipinitialspace=True
        )
    except pd.errors.ParserError:
        frame = None  # refused: a quoted field left open, or a row too long
    if isinstance(ours, str):
        # Refused by both, or a row with more fields than the header: pandas would take the
        # first such row's extra leading fields as its index and shift the columns.
        assert frame is None or "fields, the header" in ours, ours
        return
    assert frame is not None, ours
    theirs = [["" if cell != cell else cell for cell in frame[c].tolist()] for c in frame.columns]
    assert ours[1] == theirs, body


def test_short_rows_are_padded_and_long_rows_refused_with_their_row_number(
    app: Flask, client: Any, demo_models: dict[str, Any]
) -> None:
    register_demo(app, demo_models, "iris")
    short = _post(client, f"{HEADER},note\n{ROW}\n{ROW},b\n")
    assert short.status_code == 200, short.get_data(as_text=True)
    notes = [line.split(",")[4] for line in short.get_data(as_text=True).splitlines()[1:]]
    assert notes == ["", "b"]
    long = _post(client, f"{HEADER}\n{ROW}\n{ROW},extra\n")
    assert long.status_code == 422
    [detail] = long.get_json()["error"]["details"]
    assert detail["code"] == "invalid_csv"
    assert "row 2 has 5 fields, the header 4 columns" in detail["message"]
    # A feature named twice is a problem of the CSV, not a pass-through column.
    twice = _post(client, f"{HEADER},sepal_width\n{ROW},3.0\n")
    assert twice.status_code == 422
    assert [(d["field"], d["code"]) for d in twice.get_json()["error"]["details"]] == [
        ("sepal_width", "bad_shape")
    ]
