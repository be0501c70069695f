"""``modelport dataset add`` (issue 11, item 1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.support.databases import table_counts
from tests.support.datasets import GOOD_CSV, parquet_bytes, small_frame, stored_files


@pytest.fixture
def app(app_factory: Any, tmp_path: Path) -> Flask:
    return app_factory(ARTIFACTS_DIR=str(tmp_path / "artifacts"))


def run(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=list(args))


def test_add_stores_a_version_and_reports_its_shape(app: Flask, tmp_path: Path) -> None:
    csv = tmp_path / "people.csv"
    csv.write_bytes(GOOD_CSV)
    first = run(app, "dataset", "add", str(csv), "--name", "people")
    assert first.exit_code == 0, first.output
    assert (
        "Stored people version 1: 4 rows, 4 columns, 2 missing cells, 1 duplicate rows"
        in first.output
    )
    parquet = tmp_path / "people.parquet"
    parquet.write_bytes(parquet_bytes(small_frame()))
    second = run(app, "dataset", "add", str(parquet), "--name", "people")
    assert second.exit_code == 0, second.output
    assert "version 2: 200 rows, 6 columns" in second.output
    assert len(stored_files(app)) == 2


@pytest.mark.parametrize(
    ("content", "filename", "message"),
    [
        (b"a,b\n1,2\n3\n", "r.csv", "different numbers of fields"),
        (b"a,b\n", "h.csv", "no rows"),
        (b"\0\0binary", "b.csv", "neither Parquet nor CSV"),
    ],
)
def test_a_refused_file_fails_with_the_reason_and_stores_nothing(
    app: Flask, tmp_path: Path, content: bytes, filename: str, message: str
) -> None:
    path = tmp_path / filename
    path.write_bytes(content)
    before = table_counts(app)
    result = run(app, "dataset", "add", str(path), "--name", "bad")
    assert result.exit_code == 1
    assert message in result.output
    assert table_counts(app) == before
    assert stored_files(app) == []
