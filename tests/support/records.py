"""Prediction records written straight to the database, with the fields a test chooses."""

from __future__ import annotations

from typing import Any

from flask import Flask

from modelport.extensions import db
from modelport.models import PredictionRecord

DEFAULTS = {
    "model_name": "iris",
    "version_number": 1,
    "runtime": "onnxruntime",
    "source": "api",
    "status": "ok",
    "row_count": 1,
    "latency_ms": 1.0,
}


def write_records(app: Flask, *records: dict[str, Any]) -> list[int]:
    """One record of iris version 1 per dict of fields (the rest as ``DEFAULTS``); the ids."""
    with app.app_context():
        rows = [
            PredictionRecord(request_id=f"r{n}", **{**DEFAULTS, **fields})
            for n, fields in enumerate(records)
        ]
        db.session.add_all(rows)
        db.session.commit()
        ids = [row.id for row in rows]
        db.session.remove()
        return ids
