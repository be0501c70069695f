"""Canary and shadow: which version answers a request that names none, and the shadow run
that follows its answer.

Canary: a model's ``canary_share`` of callers get its ``challenger`` alias's version instead
of the champion. The choice is sticky: a caller's key (its token, else its user, else its
client address) and the model's name are hashed (SHA-256), and the first 8 bytes, as a
number below 2**64, are compared with the share's cut. Every worker computes the same hash,
so a caller gets the same version from all of them, and a share raised from 10 % to 20 %
keeps the first 10 % where they were. The cut is computed once per registry revision
(``predictor.route``): a request costs one hash, and none while no canary is on.

Shadow: a model's ``shadow_share`` of those requests is also run on its ``shadow`` alias's
version, after the answer has been sent (the channel calls ``prediction.after_answer`` when
the server closes the response). The run waits in a bounded queue of the worker. Under
gunicorn, the product's worker (``ops.worker``) does the runs itself, between requests: once
no request has come for ``PAUSE_SECONDS``, or once ``BATCH`` runs wait (a server busy
without a pause), it does all that wait and writes their records in one transaction. So a
run never competes for the interpreter with a request of its own worker, a request that
arrives meanwhile goes to an idle worker, and under load every request still gets its
shadow run: the cost shows as throughput, not as lost runs. Elsewhere (the development
server, another worker class) one background thread per process does them, in batches as
well. A shadow that is slow or fails only fills the queue (further runs are dropped and
counted) and never touches the answer. Its record has ``variant`` "shadow",
its outputs and latency, no inputs and no caller (the served record has both), and
``shadow_of`` the served record's id.
"""

from __future__ import annotations

import hashlib
import os
import queue
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask

from modelport.auth.caller import Caller
from modelport.models.predictions import Outcome
from modelport.ops import metrics
from modelport.serving import records
from modelport.serving.inference import compute, model_failure
from modelport.serving.predictor import Route, Served
from modelport.serving.schema import Batch, InputError, InputSchema, validate_inputs

# Shadow runs a worker holds at most; more are dropped (counted) until it catches up.
QUEUE_SIZE = 128
# Queued runs past which a worker doing them itself runs them before its next request,
# and the most a background thread runs (and records) together.
BATCH = 32
# How long a worker doing the runs itself waits for a request before it runs fewer.
PAUSE_SECONDS = 0.05
# Whether this process's worker does the runs itself (``run_in_worker_loop``), and the
# runners of this process (one per app).
_in_worker_loop = False
_runners: list[ShadowRunner] = []
# Outputs kept in a shadow's record: as many rows as the served record keeps at most.
SHADOW_ROWS = 100


def sticky_key(caller: Caller, address: str | None) -> str:
    """What keeps a caller on one variant: its token, else its user, else its address."""
    if caller.token_id is not None:
        return f"token:{caller.token_id}"
    if caller.user_id is not None:
        return f"user:{caller.user_id}"
    return f"address:{address or ''}"


def bucket(key: str, model: str) -> int:
    """``key``'s place for ``model``, a number below 2**64 (``predictor.HASH_SPACE``)."""
    digest = hashlib.sha256(f"{key}\x00{model}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def choose(route: Route, caller: Caller, address: str | None) -> Served:
    """The variant that answers ``caller``: the challenger for the canary share, else the
    champion."""
    if route.challenger is not None and (
        bucket(sticky_key(caller, address), route.champion.name) < route.canary_cut
    ):
        return route.challenger
    return route.champion


def shadow_for(route: Route) -> Served | None:
    """The shadow version for a ``shadow_share`` of requests (drawn per request)."""
    if route.shadow is not None and random.random() < route.shadow_share:  # noqa: S311
        return route.shadow
    return None


@dataclass
class ShadowJob:
    """A served request to run again on the shadow once its answer has gone out."""

    app: Flask
    served: Served  # the shadow version
    batch: Batch  # the inputs as validated for the version that answered
    schema: InputSchema  # that version's schema: another one validates ``inputs`` itself
    inputs: Any  # the inputs as the channel read them
    max_rows: int
    channel: str
    request_id: str
    primary_id: int | None = None  # the served request's record


class ShadowRunner:
    """One worker's queue of shadow runs and the thread that works through it."""

    def __init__(self, app: Flask, size: int = QUEUE_SIZE) -> None:
        self.app = app
        self.size = size
        self.pid = 0
        self.queue: queue.Queue[ShadowJob] = queue.Queue(size)
        self.lock = threading.Lock()

    def submit(self, job: ShadowJob) -> bool:
        """Queue ``job``; False (counted ``dropped``) when the queue is full."""
        self._ensure_queue()
        try:
            self.queue.put_nowait(job)
        except queue.Full:
            metrics.count_shadow(job.served.name, job.served.version, "dropped")
            return False
        return True

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every queued run is done (tests, shutdown); False on timeout."""
        deadline = time.monotonic() + timeout
        while self.queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def run_batch(self) -> int:
        """Do the queued runs in this thread, their records committed together; how many."""
        if self.pid != os.getpid():
            return 0
        jobs: list[ShadowJob] = []
        while len(jobs) < self.size:
            try:
                jobs.append(self.queue.get_nowait())
            except queue.Empty:
                break
        if jobs:
            self._run(self.queue, jobs)
        return len(jobs)

    def _ensure_queue(self) -> None:
        if self.pid == os.getpid():
            return
        with self.lock:
            if self.pid == os.getpid():
                return
            # A forked worker inherits no thread: a queue (and a thread) of its own.
            self.queue = queue.Queue(self.size)
            if not _in_worker_loop:
                threading.Thread(target=self._work, name="modelport-shadow", daemon=True).start()
            self.pid = os.getpid()
            _runners.append(self)

    def _work(self) -> None:
        jobs = self.queue
        while True:
            batch = [jobs.get()]
            while len(batch) < BATCH:
                try:
                    batch.append(jobs.get_nowait())
                except queue.Empty:
                    break
            self._run(jobs, batch)

    def _run(self, jobs: queue.Queue[ShadowJob], batch: list[ShadowJob]) -> None:
        """Run ``batch``; their records are written as one transaction (``RecordGroup``)."""
        group = records.RecordGroup()
        try:
            with self.app.app_context():
                for job in batch:
                    try:
                        run_shadow(job, group)
                    except Exception:  # noqa: BLE001 - a shadow never stops the others
                        self.app.logger.exception("shadow_failed", extra={"model": job.served.name})
                group.commit()
                failed = [pending.error for pending in group.pending if pending.error]
                if failed:
                    self.app.logger.warning(
                        "shadow_records_lost",
                        extra={"fields": {"records": len(failed), "error": repr(failed[0])}},
                    )
        finally:
            for _job in batch:
                jobs.task_done()


def run_in_worker_loop() -> None:
    """This process's worker does the shadow runs itself, between requests (``ops.worker``
    calls it before serving): no background thread is started."""
    global _in_worker_loop  # noqa: PLW0603 - one switch per process, set once at its start
    _in_worker_loop = True


def backlog() -> int:
    """Shadow runs queued in this process."""
    return sum(r.queue.qsize() for r in _runners if r.pid == os.getpid())


def run_queued() -> int:
    """Do the shadow runs queued in this process, each app's records committed together;
    how many were done."""
    return sum(r.run_batch() for r in list(_runners))


def runner(app: Flask) -> ShadowRunner:
    """This app's shadow runner (one per worker process)."""
    found = app.extensions.get("modelport_shadow")
    if found is None:
        found = app.extensions.setdefault("modelport_shadow", ShadowRunner(app))
    return found


def submit(job: ShadowJob) -> bool:
    """Queue a shadow run on its app's runner (any thread; no app context needed)."""
    return runner(job.app).submit(job)


def run_shadow(job: ShadowJob, group: records.RecordGroup | None = None) -> None:
    """Run ``job`` on its shadow version and record the outcome (in an app context): in
    ``group`` when given (committed by the caller), else at once."""
    served = job.served
    started = time.perf_counter()
    fields: dict[str, Any] = {
        "source": job.channel,
        "request_id": job.request_id,
        "caller": (None, None),
        "shadow_of": job.primary_id,
    }
    try:
        batch = job.batch
        # Dataclass equality: field by field, without the copies to_dict() makes.
        if served.schema != job.schema:
            batch = validate_inputs(served.schema, job.inputs, job.max_rows)
    except InputError:
        _record(group, served, fields, Outcome.INVALID, 0, started, error_code="invalid_input")
        return
    try:
        computed = compute(served, batch)
    except Exception as exc:  # noqa: BLE001 - whatever the shadow raised is its own outcome
        failure = model_failure(exc)
        code = failure.code if failure is not None else "model_error"
        _record(group, served, fields, Outcome.ERROR, batch.rows, started, error_code=code)
        return
    _record(
        group,
        served,
        fields,
        Outcome.OK,
        batch.rows,
        started,
        outputs=computed.rows[:SHADOW_ROWS],
        latency_ms=computed.elapsed_ms,
    )


def _record(
    group: records.RecordGroup | None,
    served: Served,
    fields: dict[str, Any],
    outcome: Outcome,
    rows: int,
    started: float,
    *,
    error_code: str | None = None,
    outputs: Any = None,
    latency_ms: float | None = None,
) -> None:
    metrics.count_shadow(served.name, served.version, outcome.value)
    elapsed = (time.perf_counter() - started) * 1000 if latency_ms is None else latency_ms
    values = {
        "status": outcome.value,
        "rows": rows,
        "latency_ms": elapsed,
        "outputs": outputs,
        "error_code": error_code,
        **fields,
    }
    if group is None:
        records.log_prediction(served, **values)
    else:
        group.add(served, **values)
