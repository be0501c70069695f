"""The rollup's runs: ``run`` once (``modelport rollup``, the CronJob), or ``start`` a thread
that runs it every ``MODELPORT_ROLLUP_SECONDS`` in a server process.

A run rolls up the new records (``analytics.rollups``), then, when it found any, checks the
drift of each model's served version over the last 24 hours and keeps the shares, which
``/metrics`` exposes as ``modelport_model_drift_share`` (the drift alert's metric). Every
worker may run it: the rollup's lock makes the runs take turns, and a run after another
finds nothing left to do.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy import select

from modelport.analytics import drift, monitoring, rollups
from modelport.extensions import db
from modelport.models import RegisteredModel
from modelport.models.types import utcnow
from modelport.ops import background
from modelport.serving.predictor import ModelNotFound

DRIFT_WINDOW = timedelta(hours=24)


def drift_shares(now: datetime | None = None) -> dict[str, float]:
    """model → the share of its served version's features drifted over the last 24 hours
    (models without inputs in that time are left out)."""
    now = now or utcnow()
    span = monitoring.window(now - DRIFT_WINDOW, now)
    shares = {}
    for model in db.session.scalars(select(RegisteredModel).order_by(RegisteredModel.name)):
        try:
            shares[model.name] = drift.report(model, span)["share_drifted"]
        except (drift.DriftError, ModelNotFound):
            continue
    return shares


def run(*, limit: int | None = None, now: datetime | None = None) -> rollups.Summary:
    """One run: roll up, then refresh the drift shares if anything new came in."""
    summary = rollups.roll_up(limit=limit, now=now)
    if summary.records or summary.feedback_hours:
        rollups.store_drift(drift_shares(now))
    return summary


def start(app: Flask) -> bool:
    """Run the rollup in a thread of this process, if ``MODELPORT_ROLLUP_SECONDS`` says so."""
    return background.every(app, "rollup", app.settings.rollup_seconds, run)
