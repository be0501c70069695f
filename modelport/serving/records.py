"""Prediction records: one row per prediction request, written before the answer is sent."""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from modelport.auth import token_cache
from modelport.auth.caller import Caller
from modelport.config import RECORDS_BIND, current_settings
from modelport.extensions import checkpoint_erasure, db
from modelport.models.predictions import LABEL_LENGTH, Outcome, PredictionRecord
from modelport.models.types import MAX_BIGINT_ID, JSONDocument, utcnow
from modelport.ops import metrics

if TYPE_CHECKING:
    from modelport.serving.predictor import Served


class CallerGone(Exception):
    """The caller's token or account was deleted while the prediction was made: nothing is
    recorded, and the caller is not who it was (a 401)."""


def recording_enabled() -> bool:
    """Whether ``MODELPORT_RECORD_PREDICTIONS`` is on."""
    return bool(current_settings().record_predictions)


def bounded(inputs: Any, outputs: Any) -> tuple[Any, Any, bool]:
    """Inputs and outputs cut to ``RECORD_MAX_BYTES`` of JSON together, and whether cut.

    Batches are kept as lists of rows, so cutting keeps whole leading rows: a record of a
    large batch still shows its first rows rather than nothing.
    """
    limit = current_settings().record_max_bytes
    text = json.dumps([inputs, outputs], separators=(",", ":"), allow_nan=False, default=str)
    if len(text) <= limit:
        return inputs, outputs, False
    if limit == 0 or not isinstance(inputs, list) or not isinstance(outputs, list) or not inputs:
        return None, None, True
    per_row = len(text) / max(len(inputs), 1)
    keep = max(int(limit / per_row) - 1, 0)
    while keep > 0:
        cut_in, cut_out = inputs[:keep], outputs[:keep]
        size = len(json.dumps([cut_in, cut_out], separators=(",", ":"), default=str))
        if size <= limit:
            return cut_in, cut_out, True
        keep = keep // 2
    return None, None, True


def record_values(
    served: Served,
    *,
    source: str,
    status: str,
    rows: int,
    latency_ms: float,
    request_id: str,
    inputs: Any = None,
    outputs: Any = None,
    error_code: str | None = None,
    caller: tuple[int | None, int | None],
    shadow_of: int | None = None,
) -> dict[str, Any]:
    """The columns of one record of a prediction request of ``served``. ``caller`` is (user
    id, token id): (None, None) for an anonymous caller; ``shadow_of``: the served request's
    record, for a shadow run (``serving.variants``)."""
    user_id, token_id = caller
    stored_in, stored_out, truncated = bounded_text(inputs, outputs)
    return {
        "request_id": request_id,
        "user_id": user_id,
        "token_id": token_id,
        "version_id": served.version_id,
        "model_name": served.name,
        "version_number": served.version,
        "runtime": served.runtime.name,
        "source": source,
        "status": status,
        "error_code": error_code,
        "row_count": rows,
        "latency_ms": round(latency_ms, 3),
        "inputs": stored_in,
        "outputs": stored_out,
        "truncated": truncated,
        **_typed_prediction(outputs),
        "variant": served.variant,
        "shadow_of": shadow_of,
        "created_at": utcnow(),
    }


def stored_answer(row: Any) -> Any:
    """The predicted label or value of one stored output row, whatever answered it: a JSON
    answer's row (``label`` or ``value``) or a CSV answer's columns (``prediction``,
    ``csvstream.prediction_columns``). None when the row holds none."""
    if not isinstance(row, dict):
        return None
    for key in ("value", "label", "prediction"):
        if row.get(key) is not None:
            return row[key]
    return None


def _typed_prediction(outputs: Any) -> dict[str, Any]:
    """A one-row answer's predicted class and probability, or value (the typed columns)."""
    label = value = confidence = None
    if isinstance(outputs, list) and len(outputs) == 1 and isinstance(outputs[0], dict):
        row = outputs[0]
        found = row.get("label")
        if found is not None and len(text := str(found)) <= LABEL_LENGTH:
            label = text
            probabilities = row.get("probabilities")
            if probabilities:
                confidence = float(max(probabilities.values()))
        found = row.get("value")
        if isinstance(found, int | float) and not isinstance(found, bool):
            value = float(found)
    return {"predicted_label": label, "predicted_value": value, "confidence": confidence}


def log_prediction(served: Served, **fields: Any) -> int | None:
    """Record one prediction request of ``served`` (``record_values``' fields) and commit it
    (durable before the response is sent); return the record's id, or None when recording
    is off."""
    if not recording_enabled():
        return None
    values = record_values(served, **fields)
    try:
        record_id = _insert_record(values)
    except IntegrityError:
        # The caller's token or account was deleted by another worker after this one
        # last checked it (prediction endpoints remember tokens for a few seconds).
        db.session.rollback()
        token_cache.forget_all()
        raise CallerGone("The API token is invalid, expired or revoked.") from None
    metrics.count_records(1, grouped=False)
    return record_id


@dataclass
class PendingRecord:
    """A record written with the others of its group by ``RecordGroup.commit``: its id once
    committed, or the database error that refused the group."""

    values: dict[str, Any]
    record_id: int | None = None
    error: Exception | None = None
    done: bool = False


class RecordGroup:
    """The records of answers a server holds together, committed as one transaction before
    the first of them is sent.

    A worker that takes several waiting connections at once (``modelport.ops.worker``)
    computes all their answers first and hands each the same group, so their records commit
    together: one transaction, one WAL flush, one round trip for the group instead of one
    each. Any other server gives each answer a group of its own.
    """

    def __init__(self) -> None:
        self.pending: list[PendingRecord] = []

    def add(self, served: Served, **fields: Any) -> PendingRecord | None:
        """Queue the record of a prediction request (``record_values``' fields) for the
        next ``commit``, which must come before the answer is sent; None when recording
        is off."""
        if not recording_enabled():
            return None
        pending = PendingRecord(record_values(served, **fields))
        self.pending.append(pending)
        return pending

    def commit(self) -> None:
        """Commit every record queued and not yet written, as one transaction.

        Each record gets its id, or, when the group fails (the database is gone, a token was
        deleted meanwhile), the error; the caller then answers as if the record had been
        written on its own, which for the group's others means trying again one by one.
        """
        group = [pending for pending in self.pending if not pending.done]
        if not group:
            return
        engine = db.engines[RECORDS_BIND]
        plan = _insert_plan(engine.dialect)
        try:
            ids = _execute_raw(engine, plan, [plan.parameters(p.values) for p in group])
        except Exception as exc:  # noqa: BLE001 - each request then meets it again in the view
            if isinstance(exc, IntegrityError):
                token_cache.forget_all()  # as log_prediction does; the view checks them again
            for pending in group:
                pending.error, pending.done = exc, True
            return
        for pending, record_id in zip(group, ids, strict=True):
            pending.record_id, pending.done = record_id, True
        metrics.count_records(len(group), grouped=True)


@dataclass(frozen=True)
class _InsertPlan:
    """The INSERT of one record for one database dialect, compiled once."""

    sql: str
    positions: tuple[str, ...] | None  # parameter order for positional drivers (SQLite)
    processors: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    returning: bool  # RETURNING id, else the cursor's lastrowid

    def parameters(self, values: dict[str, Any]) -> dict[str, Any] | tuple[Any, ...]:
        """The driver's parameters for ``values`` (column key → Python value)."""
        converted = {key: (fn(values[key]) if fn else values[key]) for key, fn in self.processors}
        if self.positions is None:
            return converted
        return tuple(converted[key] for key in self.positions)

    def record_id(self, cursor: Any) -> int:
        """The new record's id from the INSERT's result (SQLAlchemy's or a DBAPI cursor)."""
        return cursor.fetchone()[0] if self.returning else cursor.lastrowid


_plans: weakref.WeakKeyDictionary[Dialect, _InsertPlan] = weakref.WeakKeyDictionary()


def _insert_plan(dialect: Dialect) -> _InsertPlan:
    plan = _plans.get(dialect)
    if plan is not None:
        return plan
    table = PredictionRecord.__table__
    keys = [column.key for column in table.columns if column.key != "id"]
    statement = insert(table)
    returning = bool(dialect.insert_returning)
    if returning:
        statement = statement.returning(table.c.id)
    compiled = statement.compile(dialect=dialect, column_keys=keys)
    processors = tuple(
        (
            key,
            # inputs and outputs arrive as JSON text already (bounded_text measured them).
            None
            if isinstance(table.c[key].type, JSONDocument)
            else table.c[key].type.dialect_impl(dialect).bind_processor(dialect),
        )
        for key in keys
    )
    positions = tuple(compiled.positiontup or ()) if compiled.positional else None
    plan = _plans[dialect] = _InsertPlan(str(compiled), positions, processors, returning)
    return plan


def _insert_record(values: dict[str, Any]) -> int:
    """Insert and commit one record; return its id.

    The statement is compiled once per dialect and its parameters converted by the column
    types' own bind processors, so a record costs the driver's execute and little more:
    through the ORM session, SQLAlchemy's per-statement work and the BEGIN/COMMIT round
    trips cost more than the database's own (docs/benchmarks.md, "Serving").
    """
    if db.session.registry.has() and db.session().in_transaction():
        # Whatever the request's session holds commits with the record, as one transaction
        # (on SQLite a second connection would wait for the session's lock).
        plan = _insert_plan(db.engine.dialect)
        result = db.session.connection().exec_driver_sql(plan.sql, plan.parameters(values))
        record_id = plan.record_id(result)
        db.session.commit()
        return record_id
    # The records engine (config.RECORDS_BIND) autocommits: durable when the database
    # answers (PostgreSQL flushes its WAL first). The predict hot path never opens the
    # session, so this is its way.
    engine = db.engines[RECORDS_BIND]
    plan = _insert_plan(engine.dialect)
    return _execute_raw(engine, plan, [plan.parameters(values)])[0]


def _execute_raw(
    engine: Engine, plan: _InsertPlan, rows: list[Any], *, again: bool = True
) -> list[int]:
    """Run the INSERT once per parameter set in ``rows`` on a pooled DBAPI connection of
    ``engine``, in one transaction; return the records' ids.

    SQLAlchemy's Connection would add an execution context and a result object to every
    record, which cost as much CPU again as the driver's own execute (docs/benchmarks.md,
    "Serving"). Its error handling is kept: driver errors come out as SQLAlchemy's
    (IntegrityError, OperationalError…), and a lost connection says so
    (``connection_invalidated``), as a failure to connect does (errors.py).
    """
    dialect = engine.dialect
    driver_error = dialect.loaded_dbapi.Error
    try:
        connection = engine.raw_connection()
    except driver_error as exc:
        # The database is unavailable. No second try: it would only double the wait (up
        # to MODELPORT_DB_CONNECT_TIMEOUT) for a host that does not answer.
        raise DBAPIError.instance(
            None, None, exc, driver_error, connection_invalidated=True, dialect=dialect
        ) from exc
    cursor = None
    try:
        cursor = connection.cursor()
        if len(rows) == 1:
            cursor.execute(plan.sql, rows[0])  # autocommit: one statement, one round trip
            return [plan.record_id(cursor)]
        return _insert_group(dialect, cursor, plan, rows)
    except driver_error as exc:
        gone = dialect.is_disconnect(exc, connection.dbapi_connection, cursor)
        if gone:
            connection.invalidate(exc)
        elif len(rows) > 1:
            # Back to autocommit for the connection's next user.
            with suppress(driver_error):
                cursor.execute("ROLLBACK")
        if not (gone and again):
            raise DBAPIError.instance(
                plan.sql,
                rows[0] if len(rows) == 1 else rows,
                exc,
                driver_error,
                connection_invalidated=gone,
                dialect=dialect,
            ) from exc
    finally:
        if cursor is not None:
            # The cursor of a dropped connection may fail to close; nothing depends on it.
            with suppress(driver_error):
                cursor.close()
        connection.close()  # back to the pool (invalidated ones are discarded)
    # That engine does not ping at checkout: a pooled connection the server dropped while it
    # sat idle (a restart) failed without writing anything. Once more on a new connection,
    # after dropping the other idle ones, which are likely as dead. (Only a server that dies
    # after committing but before answering could leave a record written twice.)
    engine.pool.dispose()
    return _execute_raw(engine, plan, rows, again=False)


def _insert_group(dialect: Dialect, cursor: Any, plan: _InsertPlan, rows: list[Any]) -> list[int]:
    """The INSERTs of several records as one transaction on an autocommit connection."""
    # SQLite: take the write lock now rather than on the first INSERT, where two
    # transactions upgrading at once would make one of them fail.
    cursor.execute("BEGIN IMMEDIATE" if dialect.name == "sqlite" else "BEGIN")
    if dialect.driver == "psycopg":
        # psycopg sends them all in one round trip (pipeline mode), each with its id.
        cursor.executemany(plan.sql, rows, returning=True)
        ids = [cursor.fetchone()[0]]
        while cursor.nextset():
            ids.append(cursor.fetchone()[0])
    else:
        ids = []
        for row in rows:
            cursor.execute(plan.sql, row)
            ids.append(plan.record_id(cursor))
    cursor.execute("COMMIT")
    return ids


def _json_text(value: Any) -> str | None:
    # The same text JSONDocument would store.
    if value is None:
        return None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def bounded_text(inputs: Any, outputs: Any) -> tuple[str | None, str | None, bool]:
    """``bounded``'s result as the JSON text to store, serialised once when nothing is cut."""
    text_in, text_out = _json_text(inputs), _json_text(outputs)
    size = len(text_in or "null") + len(text_out or "null") + 3  # "[in,out]"
    if size <= current_settings().record_max_bytes:
        return text_in, text_out, False
    cut_in, cut_out, truncated = bounded(inputs, outputs)
    return _json_text(cut_in), _json_text(cut_out), truncated


def store_rows(record_id: int, inputs: list, outputs: list, *, more: bool) -> None:
    """Keep the first rows of a streamed request in its record (``more``: there were others)."""
    stored_in, stored_out, truncated = bounded(inputs, outputs)
    db.session.execute(
        update(PredictionRecord)
        .where(PredictionRecord.id == record_id)
        .values(inputs=stored_in, outputs=stored_out, truncated=truncated or more)
    )
    db.session.commit()


def finish_record(
    record_id: int,
    *,
    status: str,
    rows: int,
    latency_ms: float,
    error_code: str | None = None,
) -> None:
    """Complete a streamed response's record (its rows and whether the client read it all)."""
    db.session.execute(
        update(PredictionRecord)
        .where(PredictionRecord.id == record_id)
        .values(
            status=status, row_count=rows, latency_ms=round(latency_ms, 3), error_code=error_code
        )
    )
    db.session.commit()


def erase_user_records(user_id: int) -> int:
    """Withdrawal: drop the user's stored inputs and outputs and unlink the records.

    Counts, models, times and latencies stay for statistics; nothing left names the user.
    The caller commits, together with the account's deletion, then calls
    ``extensions.checkpoint_erasure``.
    """
    result = db.session.execute(
        update(PredictionRecord)
        .where(PredictionRecord.user_id == user_id)
        .values(inputs=None, outputs=None, user_id=None, token_id=None, truncated=False)
    )
    return result.rowcount or 0


def purge(older_than_days: int | None = None, *, now: datetime | None = None) -> int:
    """Erase stored inputs and outputs older than the retention period; return rows changed."""
    days = current_settings().retention_days if older_than_days is None else older_than_days
    if days <= 0:
        return 0
    cutoff = (now or utcnow()) - timedelta(days=days)
    result = db.session.execute(
        update(PredictionRecord)
        .where(
            PredictionRecord.created_at < cutoff,
            (PredictionRecord.inputs.is_not(None)) | (PredictionRecord.outputs.is_not(None)),
        )
        .values(inputs=None, outputs=None)
    )
    db.session.commit()
    checkpoint_erasure()
    return result.rowcount or 0


def delete_records_before(cutoff: datetime) -> int:
    """Delete whole records older than ``cutoff`` (statistics go too)."""
    result = db.session.execute(
        delete(PredictionRecord).where(PredictionRecord.created_at < cutoff)
    )
    db.session.commit()
    return result.rowcount or 0


@dataclass
class RecordFilter:
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    status: str | None = None


def _visible(viewer: Caller, filters: RecordFilter):  # noqa: ANN202
    query = select(PredictionRecord)
    # Admins see everyone's records; everybody else (an admin's predict token too) only
    # their own.
    if not viewer.is_admin:
        query = query.where(PredictionRecord.user_id == viewer.user_id)
    if filters.model:
        query = query.where(PredictionRecord.model_name == filters.model)
    if filters.since:
        query = query.where(PredictionRecord.created_at >= filters.since)
    if filters.until:
        query = query.where(PredictionRecord.created_at < filters.until)
    if filters.status:
        query = query.where(PredictionRecord.status == filters.status)
    return query


def list_records(
    viewer: Caller, filters: RecordFilter, *, page: int = 1, page_size: int = 50
) -> tuple[list[PredictionRecord], int]:
    """Records ``viewer`` may see, newest first, one page, and the total."""
    query = _visible(viewer, filters)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.session.scalars(
        query.order_by(PredictionRecord.created_at.desc(), PredictionRecord.id.desc())
        .limit(page_size)
        .offset((page - 1) * page_size)
    )
    return list(rows), total


def iter_records(
    viewer: Caller, filters: RecordFilter, *, chunk: int = 1000
) -> Iterator[PredictionRecord]:
    """Every record ``viewer`` may see, newest first, read in chunks (CSV export).

    Each chunk continues after the last row of the one before (keyset), not at an offset:
    records written while an export streams are newer than its first row and never shift
    it, so no row comes twice or goes missing, and a deep chunk costs what the first does.
    """
    query = _visible(viewer, filters).order_by(
        PredictionRecord.created_at.desc(), PredictionRecord.id.desc()
    )
    rows = list(db.session.scalars(query.limit(chunk)))
    while rows:
        yield from rows
        if len(rows) < chunk:
            return
        last = rows[-1]
        after = or_(
            PredictionRecord.created_at < last.created_at,
            and_(PredictionRecord.created_at == last.created_at, PredictionRecord.id < last.id),
        )
        rows = list(db.session.scalars(query.where(after).limit(chunk)))


def get_record(viewer: Caller, record_id: int) -> PredictionRecord | None:
    """One record, if ``viewer`` may see it (None otherwise: no difference between the two)."""
    if not 0 < record_id <= MAX_BIGINT_ID:
        return None
    record = db.session.get(PredictionRecord, record_id)
    if record is None:
        return None
    if not viewer.is_admin and (record.user_id is None or record.user_id != viewer.user_id):
        return None
    return record


OUTCOMES = tuple(o.value for o in Outcome)
