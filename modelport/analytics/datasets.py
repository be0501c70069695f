"""Datasets: CSV or Parquet files registered under a name, one version per upload.

A file is read and checked in full before anything is kept: a file that is not CSV or
Parquet, has rows of different lengths, is over ``MODELPORT_DATASET_MAX_BYTES`` or has no
rows is refused with a ``DatasetError`` and leaves neither a stored file nor a row behind.
An accepted file goes to the artifact store (under its sha256) and its version row carries
the profile, computed once here.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import hashlib
import io
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from modelport.analytics import profile
from modelport.config import current_settings
from modelport.extensions import db
from modelport.lazy import lazy
from modelport.models.datasets import Dataset, DatasetVersion, FileFormat
from modelport.models.users import User
from modelport.serving.artifacts import ArtifactStore

pd = lazy("pandas")
pa = lazy("pyarrow")
pa_csv = lazy("pyarrow.csv")
pq = lazy("pyarrow.parquet")

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
PARQUET_MAGIC = b"PAR1"
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".txt", "")
# Profiles and pages are per column: a file wider than this is refused.
MAX_COLUMNS = 1000
# How much of a CSV's start is checked for being text before it is parsed.
SNIFF_BYTES = 64 * 1024
CHUNK = 1024 * 1024
# The steps ``add_version`` reports to its ``progress`` callback, in order.
STEPS = ("read", *profile.STEPS, "store")
_RAGGED = re.compile(r"Expected (\d+) columns, got (\d+)")


@functools.cache
def parse_options() -> pa_csv.ParseOptions:
    """A quoted cell may hold a line break, as spreadsheets write them."""
    return pa_csv.ParseOptions(newlines_in_values=True)


class DatasetError(Exception):
    """A dataset request that cannot be done; ``code`` names the rule, ``message`` says it.
    ``modelport.errors`` gives each kind its status."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class DatasetRefused(DatasetError):
    """The file is CSV or Parquet but its content cannot be a dataset (ragged, empty)."""


class UnsupportedFormat(DatasetError):
    """The file is neither CSV nor Parquet."""


class DatasetTooLarge(DatasetError):
    """The file is over ``MODELPORT_DATASET_MAX_BYTES``."""


class DatasetNotFound(DatasetError):
    """No dataset (or version) by that name."""


class DatasetConflict(DatasetError):
    """Another upload to the same dataset won the race; trying again works."""


@dataclass(frozen=True)
class RowsPage:
    """One page of a version's rows, as text, read from its stored file."""

    columns: list[str]
    rows: list[list[str | None]]
    page: int
    page_size: int
    total: int

    @property
    def pages(self) -> int:
        """How many pages there are."""
        return max(1, -(-self.total // self.page_size))


Progress = Callable[[str], None]


def artifact_store() -> ArtifactStore:
    """The app's artifact store, shared with the model registry."""
    return ArtifactStore(current_app.config["ARTIFACTS_DIR"])


def list_datasets(page: int = 1, page_size: int = 50) -> tuple[list[Dataset], int]:
    """One page of datasets by name, and how many there are in all."""
    total = db.session.scalar(select(func.count()).select_from(Dataset)) or 0
    items = db.session.scalars(
        select(Dataset).order_by(Dataset.name).offset((page - 1) * page_size).limit(page_size)
    ).all()
    return list(items), total


def get_dataset(name: str) -> Dataset:
    """The dataset called ``name``; DatasetNotFound otherwise."""
    dataset = db.session.scalar(select(Dataset).where(Dataset.name == name))
    if dataset is None or not dataset.versions:
        raise DatasetNotFound("dataset_not_found", f"There is no dataset named {name}.")
    return dataset


def get_version(dataset: Dataset, number: int | None = None) -> DatasetVersion:
    """Version ``number`` of ``dataset`` (the newest when None); DatasetNotFound otherwise."""
    if number is None and dataset.latest is not None:
        return dataset.latest
    for version in dataset.versions:
        if version.number == number:
            return version
    raise DatasetNotFound("version_not_found", f"{dataset.name} has no version {number}.")


def add_version(
    name: str,
    source: BinaryIO | bytes | Path,
    *,
    filename: str = "",
    created_by: User | None = None,
    progress: Progress | None = None,
) -> DatasetVersion:
    """Check, profile and store a CSV or Parquet file as the next version of ``name`` (the
    dataset is created with its first version). Refused files leave nothing behind."""
    report = progress or (lambda _step: None)
    if not NAME_PATTERN.match(name or ""):
        raise DatasetRefused(
            "invalid_name",
            "A dataset name is 1–64 lower-case letters, digits, '-' or '_', starting with a "
            "letter or digit.",
        )
    limit = current_settings().dataset_max_bytes
    with _spooled(source, limit) as path:
        file_format = detect_format(path, filename)
        table = read_table(path, file_format)
        _check_table(table)
        report("read")
        frame = table.to_pandas()
        del table
        stats = profile.profile_frame(frame, report)
        version = _store(name, path, file_format, frame, stats, filename, created_by)
    report("store")
    return version


def register_frame(
    name: str, frame: pd.DataFrame, *, created_by: User | None = None
) -> DatasetVersion:
    """Store a DataFrame as a Parquet version of ``name`` (the demo's training data)."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return add_version(name, buffer.getvalue(), filename=f"{name}.parquet", created_by=created_by)


def detect_format(path: Path, filename: str) -> FileFormat:
    """Parquet by its magic bytes, else CSV if the name allows it and the start is text."""
    suffix = Path(filename or "").suffix.lower()
    size = path.stat().st_size
    with path.open("rb") as file:
        head = file.read(SNIFF_BYTES)
        file.seek(max(0, size - len(PARQUET_MAGIC)))
        tail = file.read(len(PARQUET_MAGIC))
    if size == 0:
        raise DatasetRefused("no_rows", "The file is empty.")
    if head.startswith(PARQUET_MAGIC) and tail == PARQUET_MAGIC:
        return FileFormat.PARQUET
    if suffix in PARQUET_SUFFIXES:
        raise UnsupportedFormat("unsupported_format", "The file is named .parquet but is not one.")
    if suffix not in CSV_SUFFIXES:
        raise UnsupportedFormat(
            "unsupported_format", f"Datasets are CSV or Parquet files, not {suffix}."
        )
    if b"\0" in head or not _is_utf8_prefix(head, complete=len(head) == size):
        raise UnsupportedFormat(
            "unsupported_format", "The file is neither Parquet nor CSV text (UTF-8)."
        )
    return FileFormat.CSV


def read_table(path: Path, file_format: FileFormat) -> pa.Table:
    """The whole file as an Arrow table; DatasetRefused when it cannot be parsed."""
    try:
        if file_format == FileFormat.PARQUET:
            return pq.read_table(path)
        return pa_csv.read_csv(path, parse_options=parse_options())
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if match := _RAGGED.search(message):
            raise DatasetRefused(
                "ragged_rows",
                f"Rows have different numbers of fields: expected {match[1]}, found a row "
                f"with {match[2]}.",
            ) from None
        if "Empty CSV file" in message:
            raise DatasetRefused("no_rows", "The file has no header and no rows.") from None
        raise DatasetRefused(
            "unreadable_file", f"The {file_format.value} file cannot be read: {message[:200]}"
        ) from None
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DatasetRefused(
            "unreadable_file", f"The {file_format.value} file cannot be read: {str(exc)[:200]}"
        ) from None


def read_rows(version: DatasetVersion, page: int = 1, page_size: int = 50) -> RowsPage:
    """Rows of one page, read batch by batch from the stored file (never all of it)."""
    path = artifact_store().path(version.file_sha256)
    names = [column["name"] for column in version.column_types]
    start = (page - 1) * page_size
    rows: list[list[str | None]] = []
    seen = 0
    for batch in _batches(path, version.format, names):
        if seen + batch.num_rows > start and len(rows) < page_size:
            offset = max(0, start - seen)
            piece = batch.slice(offset, page_size - len(rows))
            columns = [piece.column(i).to_pylist() for i in range(piece.num_columns)]
            rows.extend([_cell(value) for value in row] for row in zip(*columns, strict=True))
        seen += batch.num_rows
        if len(rows) >= page_size:
            break
    return RowsPage(names, rows, page, page_size, version.row_count)


def _batches(path: Path, file_format: str, names: list[str]) -> Iterator[pa.RecordBatch]:
    if file_format == FileFormat.PARQUET.value:
        yield from pq.ParquetFile(path).iter_batches(batch_size=65536)
        return
    # As text: the stored file was checked whole; a block's own type inference could differ.
    convert = pa_csv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()))
    with pa_csv.open_csv(path, parse_options=parse_options(), convert_options=convert) as reader:
        yield from reader


def _cell(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _check_table(table: pa.Table) -> None:
    names = table.column_names
    if not names:
        raise DatasetRefused("no_columns", "The file has no columns.")
    if len(names) > MAX_COLUMNS:
        raise DatasetRefused(
            "too_many_columns", f"The file has {len(names)} columns; at most {MAX_COLUMNS}."
        )
    if any(not str(name).strip() for name in names):
        raise DatasetRefused("unnamed_column", "Every column needs a name in the header.")
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise DatasetRefused("duplicate_column", f"Column names repeat: {', '.join(repeated)}.")
    for field in table.schema:
        if pa.types.is_nested(field.type) or _is_binary(field.type):
            raise DatasetRefused(
                "unsupported_column_type",
                f"Column {field.name} holds {field.type}; datasets take numbers, text, "
                "booleans and dates.",
            )
    if table.num_rows == 0:
        raise DatasetRefused("no_rows", "The file has a header but no rows.")


def _is_binary(kind: pa.DataType) -> bool:
    return (
        pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_fixed_size_binary(kind)
    )


def _display_name(filename: str, fallback: str) -> str:
    """The uploaded file's own name, without folders or control characters (PostgreSQL
    cannot store NUL), at most 255 characters."""
    name = "".join(ch for ch in Path(filename or "").name if ch.isprintable())
    return (name or fallback)[-255:]


def _store(
    name: str,
    path: Path,
    file_format: FileFormat,
    frame: pd.DataFrame,
    stats: dict[str, Any],
    filename: str,
    created_by: User | None,
) -> DatasetVersion:
    store = artifact_store()
    size = path.stat().st_size
    # The store is shared: a file already there (the same bytes uploaded before, or a model
    # artifact) belongs to someone else and stays if this version is not saved.
    existed = store.exists(_sha256(path))
    with path.open("rb") as file:
        digest = store.put(file)
    try:
        dataset = db.session.scalar(select(Dataset).where(Dataset.name == name))
        if dataset is None:
            dataset = Dataset(name=name, owner_id=created_by.id if created_by else None)
            db.session.add(dataset)
            db.session.flush()
        number = (
            db.session.scalar(
                select(func.max(DatasetVersion.number)).where(
                    DatasetVersion.dataset_id == dataset.id
                )
            )
            or 0
        ) + 1
        version = DatasetVersion(
            dataset=dataset,
            number=number,
            file_sha256=digest,
            filename=_display_name(filename, f"{name}.{file_format.value}"),
            format=file_format.value,
            row_count=len(frame),
            column_count=frame.shape[1],
            column_types=[
                {"name": str(column), "type": str(dtype)} for column, dtype in frame.dtypes.items()
            ],
            size_bytes=size,
            profile=stats,
            created_by_id=created_by.id if created_by else None,
        )
        db.session.add(version)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        if not existed:
            store.remove(digest)
        raise DatasetConflict(
            "dataset_conflict", f"Another upload to {name} was saved first; try again."
        ) from None
    except BaseException:
        db.session.rollback()
        if not existed:
            store.remove(digest)
        raise
    return version


@contextlib.contextmanager
def _spooled(source: BinaryIO | bytes | Path, limit: int) -> Iterator[Path]:
    """The upload as a file on disk (a Path is used as it is), refused past ``limit`` bytes
    before more is read; the temporary copy is always removed."""
    if isinstance(source, Path):
        if source.stat().st_size > limit:
            raise _too_large(limit)
        yield source
        return
    fd, name = tempfile.mkstemp(prefix="modelport-dataset-")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(source, bytes | bytearray | memoryview):
                if len(source) > limit:
                    raise _too_large(limit)
                out.write(source)
            else:
                written = 0
                while chunk := source.read(CHUNK):
                    written += len(chunk)
                    if written > limit:
                        raise _too_large(limit)
                    out.write(chunk)
        yield path
    finally:
        path.unlink(missing_ok=True)


def _too_large(limit: int) -> DatasetTooLarge:
    return DatasetTooLarge(
        "payload_too_large",
        f"The file is larger than {limit} bytes (MODELPORT_DATASET_MAX_BYTES).",
    )


def _is_utf8_prefix(data: bytes, *, complete: bool) -> bool:
    """Whether ``data`` is UTF-8, allowing a character cut at the end of a partial read."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(data, final=complete)
    except UnicodeDecodeError:
        return False
    return True


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
