"""The baselines that bench/serving.py serves next to Modelport, under the same gunicorn settings.

``hello_app()`` is bare Flask answering ``{"ok": true}``: the ceiling of Flask + gunicorn on
the machine during the run. ``predict_app()`` is a minimal hand-written predict endpoint, as
a person would write it in an afternoon: JSON → numpy → ``predict_proba`` → JSON with the
native scikit-learn estimator loaded from the same skops artifact Modelport serves, and no
validation, no authentication, no record. It takes the same request body as Modelport
(``{"inputs": {feature: value, ...}}``) and answers label and probabilities, so the two
differ only in what Modelport adds.

The artifacts come from ``MODELPORT_BENCH_ARTIFACTS``: ``name=path.skops`` pairs separated by
``;`` (bench/serving.py sets it); the features are the estimator's ``feature_names_in_``.

``durable_app()`` is the floor under any durable record on PostgreSQL: bare Flask that, per
request, inserts one row into Modelport's ``predictions`` table (same columns and indexes)
over a connection it keeps open in autocommit mode, and answers once PostgreSQL has
committed it. No model, no validation, no authentication, no SQLAlchemy: what is left is
the INSERT's round trip and the database's own work. Its database is
``MODELPORT_BENCH_DURABLE_URL`` (a libpq URL).

Two more ways to make such records durable, for bench/group_commit.py and
docs/adr/0001-group-commit.md, on the same table and database:

* ``writer_app()``, for gunicorn's ``gthread`` worker: the request threads hand their
  records to one writer thread per process, which commits whatever has queued since its
  last commit as one transaction (psycopg's ``executemany``, one round trip), and each
  request answers once its own record is committed: group commit across threads.
* ``grouped_app()``, for the product's worker (``modelport.ops.worker.GroupWorker``): its
  route looks like a hot-path prediction (``POST /api/v1/models/<name>/predict`` with a
  Bearer token and a small JSON body), so the worker holds the answers of the connections
  already waiting and hands them one group (``modelport.api.fastpath.GROUP``); the first
  answer sent commits the group's records as one transaction. On any other worker each
  request is a group of one.

``modelport_app()`` is Modelport's own ``create_app()``, unchanged, from whichever checkout
is first on the server's ``sys.path``; it writes where that package was imported from to
``MODELPORT_BENCH_SOURCE_FILE`` and refuses to start when it is not under
``MODELPORT_BENCH_SOURCE_ROOT``, so that a row said to measure one commit measures it.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import skops.io
from flask import Flask, Response, abort, request

ARTIFACTS_VARIABLE = "MODELPORT_BENCH_ARTIFACTS"
DURABLE_VARIABLE = "MODELPORT_BENCH_DURABLE_URL"
SOURCE_FILE_VARIABLE = "MODELPORT_BENCH_SOURCE_FILE"
SOURCE_ROOT_VARIABLE = "MODELPORT_BENCH_SOURCE_ROOT"
DURABLE_INSERT = (
    "INSERT INTO predictions (request_id, model_name, version_number, runtime, source, status, "
    "row_count, latency_ms, inputs, outputs, truncated, created_at) VALUES (%(request_id)s, "
    "'iris', 1, 'none', 'api', 'ok', 1, 0, %(inputs)s, '[]', false, %(created_at)s) RETURNING id"
)


def hello_app() -> Flask:
    """Bare Flask: one JSON answer, nothing else."""
    app = Flask(__name__)

    @app.get("/health")
    @app.post("/hello")
    @app.get("/hello")
    def hello() -> dict[str, Any]:
        return {"ok": True}

    return app


def modelport_app() -> Any:
    """Modelport's WSGI app, after checking which checkout it comes from."""
    import modelport

    source = Path(modelport.__file__).resolve()
    if os.environ.get(SOURCE_FILE_VARIABLE):
        Path(os.environ[SOURCE_FILE_VARIABLE]).write_text(str(source))
    root = os.environ.get(SOURCE_ROOT_VARIABLE)
    if root and not source.is_relative_to(Path(root).resolve()):
        raise RuntimeError(f"modelport was imported from {source}, not from under {root}")
    return modelport.create_app()


def _load(path: Path) -> Any:
    # The bench wrote these files itself a moment ago, so every type in them is trusted.
    return skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))


def predict_app() -> Flask:
    """A hand-written predict endpoint per artifact: ``POST /predict/<name>``."""
    # The estimators were fitted on a DataFrame; a plain array is what a minimal endpoint
    # feeds them, and scikit-learn's "X does not have valid feature names" warning on every
    # call is noise here.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    models = {}
    for pair in filter(None, os.environ.get(ARTIFACTS_VARIABLE, "").split(";")):
        name, _, path = pair.partition("=")
        estimator = _load(Path(path))
        models[name] = (estimator, list(estimator.feature_names_in_), estimator.classes_.tolist())
    app = Flask(__name__)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "models": sorted(models)}

    @app.post("/predict/<name>")
    def predict(name: str) -> dict[str, Any]:
        if name not in models:
            abort(404)
        estimator, features, classes = models[name]
        inputs = request.get_json()["inputs"]
        rows = inputs if isinstance(inputs, list) else [inputs]
        matrix = np.array([[row[f] for f in features] for row in rows], dtype=float)
        probabilities = estimator.predict_proba(matrix)
        return {
            "predictions": [
                {
                    "label": classes[int(np.argmax(p))],
                    "probabilities": dict(zip(classes, p.tolist(), strict=True)),
                }
                for p in probabilities
            ]
        }

    return app


def _record_values(inputs: Any) -> dict[str, Any]:
    """The parameters of DURABLE_INSERT for one request's inputs."""
    return {
        "request_id": "bench",
        "inputs": json.dumps([inputs]),
        "created_at": datetime.now(UTC).replace(tzinfo=None),
    }


def _insert_all(cursor: Any, rows: list[dict[str, Any]]) -> list[int]:
    """DURABLE_INSERT once per row, committed as one transaction on an autocommit
    connection, as Modelport groups its records (``records._insert_group``): one row is one
    autocommitted statement; several are sent in one round trip (psycopg's pipeline)."""
    if len(rows) == 1:
        cursor.execute(DURABLE_INSERT, rows[0])
        return [cursor.fetchone()[0]]
    cursor.execute("BEGIN")
    try:
        cursor.executemany(DURABLE_INSERT, rows, returning=True)
        ids = [cursor.fetchone()[0]]
        while cursor.nextset():
            ids.append(cursor.fetchone()[0])
        cursor.execute("COMMIT")
    except BaseException:
        cursor.connection.rollback()
        raise
    return ids


def durable_app() -> Flask:
    """One durable INSERT per request, and nothing else: ``POST /record``.

    Each thread has a connection of its own (one per process on a sync worker)."""
    import psycopg

    url = os.environ[DURABLE_VARIABLE]
    local = threading.local()  # opened in the worker, after the fork
    app = Flask(__name__)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"ok": True}

    @app.post("/record")
    def record() -> dict[str, Any]:
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = psycopg.connect(url, autocommit=True)
        values = _record_values(request.get_json()["inputs"])
        row = connection.execute(DURABLE_INSERT, values).fetchone()
        return {"record_id": row[0]}

    return app


class _Record:
    """A record to commit, and then its id or the error."""

    __slots__ = ("values", "record_id", "error")

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.record_id: int | None = None
        self.error: BaseException | None = None


class _Queued(_Record):
    """A record waiting for the writer thread, and its request thread waiting for it."""

    __slots__ = ("done",)

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__(values)
        # A lock the writer releases: the cheapest hand-off between threads in CPython.
        self.done = threading.Lock()
        self.done.acquire()


class _Writer:
    """One thread committing, as one transaction, every record queued since its last
    commit; started by the first request of a process (after gunicorn's fork)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.queue: queue.SimpleQueue[_Queued] = queue.SimpleQueue()
        self.started = False
        self.lock = threading.Lock()

    def write(self, values: dict[str, Any]) -> int:
        """Queue one record and wait until it is committed; its id."""
        if not self.started:
            with self.lock:
                if not self.started:
                    threading.Thread(target=self._run, name="writer", daemon=True).start()
                    self.started = True
        item = _Queued(values)
        self.queue.put(item)
        item.done.acquire()
        if item.error is not None:
            raise item.error
        return item.record_id

    def _run(self) -> None:
        import psycopg

        connection = psycopg.connect(self.url, autocommit=True)
        cursor = connection.cursor()
        while True:
            batch = [self.queue.get()]  # waits for the first
            while True:  # and takes whatever else has queued meanwhile
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            try:
                ids = _insert_all(cursor, [item.values for item in batch])
            except Exception as exc:  # noqa: BLE001 - each waiting request raises it
                for item in batch:
                    item.error = exc
            else:
                for item, record_id in zip(batch, ids, strict=True):
                    item.record_id = record_id
            for item in batch:
                item.done.release()


def writer_app() -> Flask:
    """Group commit across threads (gunicorn's gthread worker): ``POST /record``."""
    writer = _Writer(os.environ[DURABLE_VARIABLE])
    app = Flask(__name__)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"ok": True}

    @app.post("/record")
    def record() -> dict[str, Any]:
        return {"record_id": writer.write(_record_values(request.get_json()["inputs"]))}

    return app


# The grouped answer's body: {"record_id": N} padded with spaces (JSON allows them) to a
# fixed length, which the answer's headers carry before the commit gives the id.
_ANSWER_BYTES = 40


class _GroupedAnswer:
    """A WSGI body whose first byte waits for its group's commit."""

    def __init__(self, queued: _Record, group: list[_Record], cursor: Any) -> None:
        self.queued = queued
        self.group = group
        self.cursor = cursor

    def __iter__(self) -> Any:
        if self.queued.record_id is None and self.queued.error is None:
            waiting = [item for item in self.group if item.record_id is None and not item.error]
            try:
                ids = _insert_all(self.cursor(), [item.values for item in waiting])
            except Exception as exc:  # noqa: BLE001 - every answer of the group fails
                for item in waiting:
                    item.error = exc
            else:
                for item, record_id in zip(waiting, ids, strict=True):
                    item.record_id = record_id
        if self.queued.error is not None:
            raise self.queued.error
        yield json.dumps({"record_id": self.queued.record_id}).encode().ljust(_ANSWER_BYTES)


def grouped_app() -> Flask:
    """Records grouped by the product's worker: ``POST /api/v1/models/<name>/predict``."""
    import psycopg

    from modelport.api.fastpath import GROUP

    url = os.environ[DURABLE_VARIABLE]
    cursors: list[Any] = []  # opened in the worker, after the fork

    def cursor() -> Any:
        if not cursors:
            cursors.append(psycopg.connect(url, autocommit=True).cursor())
        return cursors[0]

    app = Flask(__name__)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"ok": True}

    @app.post("/api/v1/models/<name>/predict")
    def predict(name: str) -> Response:
        queued = _Record(_record_values(request.get_json()["inputs"]))
        held = request.environ.get(GROUP)  # the worker's RecordGroup, else a group of one
        group = held.__dict__.setdefault("bench_records", []) if held is not None else []
        group.append(queued)
        return Response(
            _GroupedAnswer(queued, group, cursor),
            mimetype="application/json",
            headers={"Content-Length": str(_ANSWER_BYTES)},
            direct_passthrough=True,
        )

    return app
