"""Adding dataset versions: accepted files are stored and profiled, refused files leave
nothing behind (issue 11, item 1)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelport.analytics import datasets
from modelport.extensions import db
from tests.support.databases import table_counts
from tests.support.datasets import GOOD_CSV, parquet_bytes, small_frame, stored_files


@pytest.fixture
def app(app_factory: Any, tmp_path: Path) -> Flask:
    return app_factory(ARTIFACTS_DIR=str(tmp_path / "artifacts"), DATASET_MAX_BYTES="100000")


def add(app: Flask, data: bytes | Path, filename: str = "data.csv", name: str = "people") -> Any:
    with app.app_context():
        version = datasets.add_version(name, data, filename=filename)
        return {
            "number": version.number,
            "rows": version.row_count,
            "columns": version.column_count,
            "format": version.format,
            "types": version.column_types,
            "profile": version.profile,
            "sha": version.file_sha256,
            "size": version.size_bytes,
        }


@pytest.mark.db
def test_csv_then_parquet_become_versions_one_and_two(app: Flask) -> None:
    first = add(app, GOOD_CSV)
    assert first["number"] == 1 and first["format"] == "csv"
    assert (first["rows"], first["columns"], first["size"]) == (4, 4, len(GOOD_CSV))
    assert [t["name"] for t in first["types"]] == ["age", "city", "member", "score"]
    assert first["profile"]["overview"]["duplicate_rows"] == 1
    assert first["profile"]["overview"]["missing_cells"] == 2
    frame = small_frame()
    second = add(app, parquet_bytes(frame), "people.parquet")
    assert second["number"] == 2 and second["format"] == "parquet"
    assert second["rows"] == len(frame)
    assert len(stored_files(app)) == 2
    with app.app_context():
        dataset = datasets.get_dataset("people")
        assert [v.number for v in dataset.versions] == [1, 2]
        # The profile reads back from the database as it was stored.
        assert datasets.get_version(dataset, 1).profile == first["profile"]


def test_rows_are_read_page_by_page_from_the_stored_file(app: Flask) -> None:
    frame = small_frame(130)
    for data, filename in (
        (parquet_bytes(frame), "f.parquet"),
        (frame.to_csv(index=False).encode(), "f.csv"),
    ):
        name = Path(filename).suffix[1:]
        add(app, data, filename, name=name)
        with app.app_context():
            version = datasets.get_dataset(name).latest
            page = datasets.read_rows(version, page=3, page_size=50)
            assert page.columns == list(frame.columns)
            assert page.total == 130 and page.pages == 3 and len(page.rows) == 30
            assert page.rows[0][frame.columns.get_loc("city")] == frame["city"].iloc[100]
            assert float(page.rows[0][0]) == pytest.approx(frame["x"].iloc[100], rel=1e-5)


def test_quoted_line_breaks_and_text_after_numbers_are_read_right(app: Flask) -> None:
    data = b'note,n\n"two\nlines",1\n' + b"plain,2\n" * 9_000 + b"last,x\n"
    added = add(app, data, name="notes")
    assert added["rows"] == 9_002
    assert [t["type"] for t in added["types"]][1] in ("str", "object", "string")
    with app.app_context():
        page = datasets.read_rows(datasets.get_dataset("notes").latest, 1, 2)
    assert page.rows == [["two\nlines", "1"], ["plain", "2"]]


BAD_FILES = [
    # (what, bytes, filename, error class, code)
    (
        "not CSV: binary",
        b"\x89PNG\r\n\x1a\n\0\0\0IHDR",
        "data.csv",
        datasets.UnsupportedFormat,
        "unsupported_format",
    ),
    (
        "not CSV: Latin-1 text",
        "name\ncafé\n".encode("latin-1"),
        "data.csv",
        datasets.UnsupportedFormat,
        "unsupported_format",
    ),
    (
        "a spreadsheet",
        b"PK\x03\x04rest",
        "data.xlsx",
        datasets.UnsupportedFormat,
        "unsupported_format",
    ),
    (
        "named parquet, is not",
        b"a,b\n1,2\n",
        "data.parquet",
        datasets.UnsupportedFormat,
        "unsupported_format",
    ),
    (
        "a broken parquet",
        b"PAR1garbagePAR1",
        "data.parquet",
        datasets.DatasetRefused,
        "unreadable_file",
    ),
    ("a row too long", b"a,b\n1,2\n3,4,5\n", "data.csv", datasets.DatasetRefused, "ragged_rows"),
    ("a row too short", b"a,b,c\n1,2,3\n4,5\n", "data.csv", datasets.DatasetRefused, "ragged_rows"),
    ("a header, no rows", b"a,b\n", "data.csv", datasets.DatasetRefused, "no_rows"),
    ("empty", b"", "data.csv", datasets.DatasetRefused, "no_rows"),
    ("repeated column", b"a,a\n1,2\n", "data.csv", datasets.DatasetRefused, "duplicate_column"),
    (
        "over the size setting",
        b"a\n" + b"1\n" * 60_000,
        "data.csv",
        datasets.DatasetTooLarge,
        "payload_too_large",
    ),
]


@pytest.mark.parametrize(
    ("what", "data", "filename", "error", "code"), BAD_FILES, ids=[b[0] for b in BAD_FILES]
)
def test_each_bad_file_is_refused_and_leaves_nothing(
    app: Flask, what: str, data: bytes, filename: str, error: type, code: str
) -> None:
    before = table_counts(app)
    with pytest.raises(error) as refused:
        add(app, data, filename)
    assert refused.value.code == code, what
    assert table_counts(app) == before
    assert stored_files(app) == []


def test_a_parquet_file_with_no_rows_is_refused(app: Flask) -> None:
    with pytest.raises(datasets.DatasetRefused, match="no rows"):
        add(app, parquet_bytes(small_frame().iloc[:0]), "empty.parquet")
    assert stored_files(app) == []


def test_a_file_on_disk_over_the_limit_is_refused_before_reading(
    app: Flask, tmp_path: Path
) -> None:
    big = tmp_path / "big.csv"
    big.write_bytes(b"a\n" + b"1\n" * 60_000)
    with pytest.raises(datasets.DatasetTooLarge):
        add(app, big, big.name)


def test_binary_columns_are_refused_and_file_names_are_kept_printable(app: Flask) -> None:
    frame = pd.DataFrame({"blob": [b"\x00\x01", b"x"], "n": [1, 2]})
    with pytest.raises(datasets.DatasetRefused) as refused:
        add(app, parquet_bytes(frame), "b.parquet")
    assert refused.value.code == "unsupported_column_type"
    add(app, GOOD_CSV, "../dir/\x00odd\nname.csv", name="named")
    with app.app_context():
        assert datasets.get_dataset("named").latest.filename == "oddname.csv"


def test_invalid_names_are_refused(app: Flask) -> None:
    for name in ("", "Upper", "-dash", "a" * 65, "sp ace"):
        with pytest.raises(datasets.DatasetRefused) as refused:
            add(app, GOOD_CSV, name=name)
        assert refused.value.code == "invalid_name"


def test_a_failed_save_removes_the_new_file_but_keeps_one_already_used(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(app, GOOD_CSV, name="kept")

    def failing_commit() -> None:
        raise RuntimeError("database went away")

    with app.app_context():
        monkeypatch.setattr(db.session, "commit", failing_commit)
        with pytest.raises(RuntimeError):
            datasets.add_version("other", GOOD_CSV, filename="a.csv")
        with pytest.raises(RuntimeError):
            datasets.add_version("third", GOOD_CSV + b"5,Jeju,false,2\n", filename="a.csv")
    assert len(stored_files(app)) == 1  # the first file, still used by "kept"


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.lists(
            st.lists(
                st.sampled_from(["1", "2.5", "x", "", '"q,uote"', "true"]), min_size=1, max_size=4
            ),
            min_size=1,
            max_size=6,
        ).map(lambda rows: "\n".join(",".join(r) for r in rows).encode()),
    )
)
def test_any_bytes_are_accepted_or_refused_with_a_dataset_error(app: Flask, data: bytes) -> None:
    before = table_counts(app)
    files = stored_files(app)
    try:
        add(app, data, "fuzz.csv", name="fuzz")
    except datasets.DatasetError:
        assert table_counts(app) == before
        assert stored_files(app) == files
    else:
        # Accepted: it really is a table pandas reads with the same shape.
        frame = pd.read_csv(io.BytesIO(data))
        with app.app_context():
            assert datasets.get_dataset("fuzz").latest.column_count == frame.shape[1]
