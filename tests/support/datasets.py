"""Datasets: files to upload, uploads through the API, and what the store holds."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

GOOD_CSV = b"age,city,member,score\n31,Seoul,true,1.5\n42,Busan,false,\n31,Seoul,true,1.5\n,Daegu,true,3.25\n"


def small_frame(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    """Numbers (one with gaps), an integer, categories and a boolean."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x": rng.normal(10, 2, rows),
            "y": rng.normal(0, 1, rows),
            "n": rng.integers(0, 5, rows),
            "city": rng.choice(["Seoul", "Busan", "Daegu"], rows),
            "flag": rng.random(rows) < 0.3,
        }
    )
    frame.loc[frame.index[::7], "y"] = np.nan
    frame["z"] = frame["x"] * 0.5 + rng.normal(0, 0.1, rows)
    return frame


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def stored_files(app: Flask) -> list[Path]:
    """Every file in the artifact store (staging excluded)."""
    root = Path(app.config["ARTIFACTS_DIR"]) / "sha256"
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and p.parent.name != "tmp")


def upload(
    client: FlaskClient,
    data: bytes,
    filename: str = "data.csv",
    name: str = "people",
    headers: dict[str, str] | None = None,
) -> TestResponse:
    """POST /api/v1/datasets with the file and name as multipart."""
    form: dict[str, Any] = {"name": name, "file": (io.BytesIO(data), filename)}
    return client.post(
        "/api/v1/datasets", data=form, content_type="multipart/form-data", headers=headers or {}
    )
