"""Rollups: the prediction records added up per model version and minute or hour, kept in
``prediction_rollups`` so that no page reads raw records past the newest ones.

``roll_up`` (the ``modelport rollup`` command, a thread of each server every
``MODELPORT_ROLLUP_SECONDS``, a CronJob) reads the records written since its last run in
id order, adds them into the stored partials, and recomputes the feedback figures of the
hours that received feedback since. ``window_partials`` gives a page the stored partials of
a window plus those of the records not rolled up yet, computed on the spot, so figures are
complete and the same before and after a run.

A record is rolled up once it is ``GRACE`` old (the transactions that wrote the records
before it have committed by then) and final: a CSV answer still streaming (``incomplete``
with no latency yet) holds the run back until it ends, or for at most ``OPEN_LIMIT``.
"""

from __future__ import annotations

import gc
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Text, and_, case, func, or_, select, type_coerce, update
from sqlalchemy.exc import IntegrityError

from modelport.analytics.buckets import epoch_bucket
from modelport.analytics.partials import (
    COLUMNS,
    GRAINS,
    HOUR,
    MINUTE,
    Key,
    Partial,
    VersionInfo,
    aggregate,
    decoded,
    version_info,
)
from modelport.extensions import db
from modelport.models import Feedback, PredictionRecord, PredictionRollup, RollupState
from modelport.models.predictions import Outcome, Variant
from modelport.models.registry import ModelVersion, RegisteredModel
from modelport.models.types import utcnow

STATE = "records"
GRACE = timedelta(seconds=10)
OPEN_LIMIT = timedelta(hours=1)
BATCH = 100_000
# Feedback written this long before a run's start is looked at again by the next run.
FEEDBACK_OVERLAP = timedelta(minutes=1)


@dataclass(frozen=True)
class Summary:
    """What one run did."""

    records: int
    keys: int
    feedback_hours: int
    last_record_id: int
    seconds: float


def _record_columns() -> list[Any]:
    table = PredictionRecord.__table__.c
    one_row = or_(table.predicted_label.is_not(None), table.predicted_value.is_not(None))
    columns = []
    # JSON columns come as their text, which ``partials.aggregate`` decodes all at once.
    for name in COLUMNS:
        if name == "outputs":
            # A one-row answer's typed columns say what the outputs would: not read.
            found = case((one_row, None), else_=table.outputs)
            columns.append(type_coerce(found, Text).label("outputs"))
        elif name == "inputs":
            found = case((table.status == Outcome.OK.value, table.inputs), else_=None)
            columns.append(type_coerce(found, Text).label("inputs"))
        elif name == "epoch":
            columns.append(epoch_bucket(table.created_at, 1).label("epoch"))
        else:
            columns.append(table[name])
    return columns


def _served_only() -> Any:
    """Records of answers sent: shadow runs (``serving.variants``) are no traffic."""
    variant = PredictionRecord.__table__.c.variant
    return or_(variant.is_(None), variant != Variant.SHADOW.value)


def versions_of(models: Iterable[str]) -> dict[tuple[str, int], VersionInfo]:
    """(model, version) → ``VersionInfo`` for every version of ``models``."""
    names = sorted(set(models))
    if not names:
        return {}
    found = db.session.execute(
        select(
            RegisteredModel.name,
            RegisteredModel.task,
            ModelVersion.number,
            ModelVersion.input_schema,
        )
        .join(ModelVersion, ModelVersion.model_id == RegisteredModel.id)
        .where(RegisteredModel.name.in_(names))
    ).all()
    infos = {(name, number): version_info(task, schema) for name, task, number, schema in found}
    tasks = {name: task for name, task, _, _ in found}
    for name in names:  # records made before a version was known
        infos[(name, 0)] = VersionInfo(tasks.get(name, "classification"), (), ())
    return infos


def _feedback_of(record_ids: Sequence[int]) -> list[tuple[int, Any, Any]]:
    """The feedback on these records (read by their id range, as they mostly are one)."""
    if not record_ids:
        return []
    wanted = set(record_ids)
    found = db.session.execute(
        select(Feedback.record_id, Feedback.actual, Feedback.predicted).where(
            Feedback.record_id.between(min(record_ids), max(record_ids))
        )
    ).all()
    return [row for row in found if row[0] in wanted]


def _aggregate_records(
    rows: Sequence[Any], *, grains: Sequence[int] = GRAINS
) -> dict[Key, Partial]:
    if not rows:
        return {}
    versions = versions_of(row[1] for row in rows)
    feedback = _feedback_of([row[0] for row in rows])
    return aggregate(rows, versions, feedback=feedback, grains=grains)


def _ready(rows: Sequence[Any], now: datetime) -> int:
    """How many of ``rows`` (in id order) may be rolled up now."""
    settled = (now - GRACE).timestamp()
    closed = (now - OPEN_LIMIT).timestamp()
    for position, row in enumerate(rows):
        created = row[3]
        if created >= settled:
            return position
        streaming = row[4] == Outcome.INCOMPLETE.value and not row[6] and not row[5]
        if streaming and created >= closed:
            return position
    return len(rows)


def _epoch_time(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _store(partials: Mapping[Key, Partial], *, feedback_only: bool = False) -> None:
    """Add ``partials`` into the stored rows (``feedback_only``: set their feedback figures)."""
    groups: dict[tuple[str, int, int], list[int]] = defaultdict(list)
    for model, version, grain, start in partials:
        groups[(model, version, grain)].append(start)
    now = utcnow()
    for (model, version, grain), starts in groups.items():
        stored = {
            int(row.start.timestamp()): row
            for row in db.session.scalars(
                select(PredictionRollup).where(
                    PredictionRollup.model_name == model,
                    PredictionRollup.version_number == version,
                    PredictionRollup.seconds == grain,
                    PredictionRollup.start >= _epoch_time(min(starts)),
                    PredictionRollup.start <= _epoch_time(max(starts)),
                )
            )
        }
        for start in starts:
            partial = partials[(model, version, grain, start)]
            row = stored.get(start)
            if row is None:
                if feedback_only and not partial.feedback_rows:
                    continue
                row = PredictionRollup(
                    model_name=model,
                    version_number=version,
                    seconds=grain,
                    start=_epoch_time(start),
                )
                merged = partial
                db.session.add(row)
            else:
                merged = Partial.from_row(row)
                if feedback_only:
                    merged.set_feedback(partial)
                else:
                    merged.merge(partial)
            for name, value in merged.columns().items():
                setattr(row, name, value)
            row.updated_at = now


def _lock() -> RollupState:
    """The state row, locked for this transaction (made on the first run)."""
    # The UPDATE takes the row's lock (SQLite: the database's write lock) before anything is
    # read, so two runs never read the same starting point.
    for _ in range(2):
        locked = db.session.execute(
            update(RollupState).where(RollupState.name == STATE).values(updated_at=utcnow())
        )
        if locked.rowcount:
            break
        try:
            with db.session.begin_nested():
                db.session.add(RollupState(name=STATE, record_id=0))
            break
        except IntegrityError:
            continue  # another first run made it at the same time: wait for its lock
    return db.session.get(RollupState, STATE, populate_existing=True)


def watermark() -> int:
    """The id of the last record rolled up (0 before the first run)."""
    return int(
        db.session.scalar(select(RollupState.record_id).where(RollupState.name == STATE)) or 0
    )


def _roll_records(state: RollupState, now: datetime, limit: int | None) -> tuple[int, int]:
    done = keys = 0
    while limit is None or done < limit:
        size = BATCH if limit is None else min(BATCH, limit - done)
        with _no_collection():
            rows = _tuples(
                select(*_record_columns())
                .where(PredictionRecord.id > state.record_id, _served_only())
                .order_by(PredictionRecord.id)
                .limit(size)
            )
            ready = _ready(rows, now)
            if not ready:
                break
            partials = _aggregate_records(rows[:ready])
        _store(partials)
        state.record_id = int(rows[ready - 1][0])
        db.session.commit()
        _lock()  # the next batch's transaction
        done += ready
        keys += len(partials)
        if ready < len(rows) or len(rows) < size:
            break
    return done, keys


@contextmanager
def _no_collection() -> Iterator[None]:
    """Python's cyclic garbage collector paused: reading and decoding tens of thousands of
    records makes hundreds of thousands of objects, none in a cycle, and the collections
    they set off would double the time (measured: docs/benchmarks.md)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _tuples(statement: Any) -> list[tuple]:
    """The rows of a statement whose parameters are plain numbers, as the driver's tuples.

    SQLAlchemy's result rows cost about as much again as the database's own work for the
    tens of thousands of records of a run; these columns need no result processing (JSON
    is read as text, the time as a number)."""
    connection = db.session.connection()
    compiled = statement.compile(dialect=connection.dialect)
    parameters = compiled.construct_params()
    if compiled.positional:
        parameters = tuple(parameters[key] for key in compiled.positiontup)
    cursor = connection.connection.cursor()
    try:
        cursor.execute(str(compiled), parameters)
        return cursor.fetchall()
    finally:
        cursor.close()


def _feedback_hours(since: datetime | None, upto: int) -> set[tuple[str, int]]:
    """(model, hour start) of the rolled-up records that received feedback since ``since``."""
    if since is None:
        return set()
    found = db.session.execute(
        select(PredictionRecord.model_name, PredictionRecord.created_at)
        .join(Feedback, Feedback.record_id == PredictionRecord.id)
        .where(Feedback.created_at >= since - FEEDBACK_OVERLAP, PredictionRecord.id <= upto)
    ).all()
    return {(model, int(created.timestamp()) // HOUR * HOUR) for model, created in found}


def _refresh_feedback(hours: set[tuple[str, int]], upto: int) -> None:
    """Recompute the feedback figures of these hours (and their minutes) from all their
    feedback on records up to ``upto``."""
    by_model: dict[str, list[int]] = defaultdict(list)
    for model, start in hours:
        by_model[model].append(start)
    for model, starts in by_model.items():
        versions = versions_of([model])
        for start in sorted(starts):
            records = db.session.execute(
                select(*_record_columns()).where(
                    PredictionRecord.model_name == model,
                    PredictionRecord.created_at >= _epoch_time(start),
                    PredictionRecord.created_at < _epoch_time(start + HOUR),
                    PredictionRecord.id <= upto,
                    _served_only(),
                    PredictionRecord.id.in_(
                        select(Feedback.record_id).where(Feedback.model_name == model)
                    ),
                )
            ).all()
            feedback = _feedback_of([row[0] for row in records])
            fresh = aggregate(records, versions, feedback=feedback, grains=GRAINS)
            # Keys of the hour with no feedback left keep none (a record deleted meanwhile).
            _store(fresh, feedback_only=True)


def roll_up(*, limit: int | None = None, now: datetime | None = None) -> Summary:
    """Add the records written since the last run into the rollups; refresh feedback.

    ``limit``: at most this many records (the rest wait for the next run)."""
    started = time.perf_counter()
    now = now or utcnow()
    state = _lock()
    feedback_since = state.feedback_at
    done, keys = _roll_records(state, now, limit)
    hours = _feedback_hours(feedback_since, state.record_id)
    _refresh_feedback(hours, state.record_id)
    state.feedback_at = now
    db.session.commit()
    return Summary(done, keys, len(hours), state.record_id, time.perf_counter() - started)


def window_partials(
    model: str,
    since: datetime,
    until: datetime,
    grain: int,
    *,
    version: int | None = None,
    inputs: bool = False,
) -> dict[Key, Partial]:
    """The partials of ``model`` at ``grain`` (``MINUTE`` or ``HOUR``) whose start lies in
    [since, until): the stored ones plus those of records not rolled up yet.

    ``inputs``: the feature distributions and input samples (drift) only; otherwise all
    but those (monitoring), which are most of a row's size."""
    if grain not in (MINUTE, HOUR):
        raise ValueError("grain is a minute or an hour")
    upto = watermark()
    conditions = [
        PredictionRollup.model_name == model,
        PredictionRollup.seconds == grain,
        PredictionRollup.start >= since,
        PredictionRollup.start < until,
    ]
    if version is not None:
        conditions.append(PredictionRollup.version_number == version)
    table = PredictionRollup.__table__.c
    if inputs:
        # As text, decoded all at once (partials.decoded).
        columns = [
            table.version_number,
            table.start,
            type_coerce(table.features, Text).label("features"),
            type_coerce(table.sample, Text).label("sample"),
        ]
    else:
        columns = [c for c in table if c.key not in ("id", "features", "sample", "updated_at")]
    found: dict[Key, Partial] = {}
    with _no_collection():
        rows = db.session.execute(select(*columns).where(*conditions)).all()
        if inputs:
            features = decoded([row.features for row in rows])
            samples = decoded([row.sample for row in rows])
            rows = [
                SimpleNamespace(
                    version_number=r.version_number, start=r.start, features=f, sample=s
                )
                for r, f, s in zip(rows, features, samples, strict=True)
            ]
        for row in rows:
            key = (model, row.version_number, grain, int(row.start.timestamp()))
            found[key] = Partial.from_row(row, copy=False)
    live = [
        PredictionRecord.id > upto,
        PredictionRecord.model_name == model,
        PredictionRecord.created_at >= since,
        PredictionRecord.created_at < until,
        _served_only(),
    ]
    if version is not None:
        live.append(PredictionRecord.version_number == version)
    with _no_collection():
        recent = db.session.execute(select(*_record_columns()).where(and_(*live))).all()
        fresh = _aggregate_records(recent, grains=(grain,))
    for key, partial in fresh.items():
        if key in found:
            found[key].merge(partial)
        else:
            found[key] = partial
    return found


def pending() -> int:
    """Records not rolled up yet."""
    return int(
        db.session.scalar(
            select(func.count())
            .select_from(PredictionRecord)
            .where(PredictionRecord.id > watermark(), _served_only())
        )
        or 0
    )


def store_drift(shares: Mapping[str, float]) -> None:
    """Keep the served versions' drift shares of the latest run (the drift alert's metric)."""
    state = _lock()
    state.drift = {k: round(v, 4) for k, v in shares.items()}
    db.session.commit()


def drift_shares() -> dict[str, float]:
    """model → the served version's drift share at the latest run."""
    found = db.session.scalar(select(RollupState.drift).where(RollupState.name == STATE))
    return dict(found or {})
