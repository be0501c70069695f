"""Time buckets in SQL: the one place where the three databases differ for monitoring.

``epoch_bucket(column, seconds)`` is the start of the bucket a timestamp falls in, as whole
seconds since 1970 (UTC), computed by the database so that a query groups by it. Timestamps
are stored as naive UTC everywhere (``models.types.UTCDateTime``); each database reads its
own kind:

* SQLite keeps text (``2026-12-04 16:30:00.123456``): ``strftime('%s', ...)``;
* PostgreSQL a ``timestamp without time zone``: ``extract(epoch from ...)`` reads it as UTC;
* MariaDB/MySQL a ``DATETIME(6)``: ``TIMESTAMPDIFF(SECOND, '1970-01-01', ...)``, which,
  unlike ``UNIX_TIMESTAMP``, does not depend on the session's time zone.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement


class epoch_bucket(FunctionElement):  # noqa: N801 - used like a SQL function
    """The bucket's start, in seconds since 1970 UTC: ``epoch_bucket(column, 3600)``."""

    type = Integer()
    # The width is written into the SQL, not bound: statements with it are not cached (a
    # monitoring query runs once a page view, not once a prediction).
    inherit_cache = False

    def __init__(self, column: ColumnElement, seconds: int) -> None:
        if int(seconds) < 1:
            raise ValueError("a bucket lasts at least a second")
        self.seconds = int(seconds)
        super().__init__(column)


def _column(element: epoch_bucket, compiler: Any, **kw: Any) -> str:
    return compiler.process(next(iter(element.clauses)), **kw)


def _seconds(element: epoch_bucket) -> int:
    return element.seconds


@compiles(epoch_bucket, "sqlite")
def _sqlite(element: epoch_bucket, compiler: Any, **kw: Any) -> str:
    seconds = _seconds(element)
    return f"((CAST(strftime('%s', {_column(element, compiler, **kw)}) AS INTEGER) / {seconds}) * {seconds})"


@compiles(epoch_bucket, "postgresql")
def _postgresql(element: epoch_bucket, compiler: Any, **kw: Any) -> str:
    seconds = _seconds(element)
    return (
        f"(CAST(FLOOR(EXTRACT(EPOCH FROM {_column(element, compiler, **kw)}) / {seconds}) "
        f"AS BIGINT) * {seconds})"
    )


@compiles(epoch_bucket, "mysql")
@compiles(epoch_bucket, "mariadb")
def _mysql(element: epoch_bucket, compiler: Any, **kw: Any) -> str:
    seconds = _seconds(element)
    return (
        f"(FLOOR(TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', "
        f"{_column(element, compiler, **kw)}) / {seconds}) * {seconds})"
    )


@compiles(epoch_bucket)
def _other(element: epoch_bucket, compiler: Any, **kw: Any) -> str:
    raise NotImplementedError(f"no time buckets for {compiler.dialect.name}")
