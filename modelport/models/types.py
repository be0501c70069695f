"""Column types shared by the models, portable across SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import DateTime, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

# The largest id of an INTEGER primary key (users, tokens, models, versions) and of a BIGINT
# one (prediction records), the same on every database. A larger id in a path or a form is
# simply not found: the database would refuse the number itself.
MAX_INT_ID = 2**31 - 1
MAX_BIGINT_ID = 2**63 - 1

if TYPE_CHECKING:
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import Column


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timestamp stored as naive UTC and always read back as aware UTC.

    SQLite and MariaDB keep no time zone; storing naive UTC everywhere and attaching UTC on
    the way out gives the same values on all three databases. MariaDB/MySQL ``DATETIME``
    drops (MariaDB) or rounds (MySQL) fractions of a second unless asked for six digits, so
    a stored time would not read back equal, and a rounded one could lie in the future.
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine:
        if dialect.name in {"mysql", "mariadb"}:
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect):  # noqa: ANN001
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect):  # noqa: ANN001
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def compare_type(
    context: MigrationContext,
    inspected_column: Column,
    metadata_column: Column,
    inspected_type: TypeEngine,
    metadata_type: TypeEngine,
) -> bool | None:
    """Alembic hook: also compare MariaDB/MySQL fractional-second digits, which it ignores.

    ``None`` leaves every other column to Alembic's own ``compare_type``.
    """
    if context.dialect.name in {"mysql", "mariadb"} and isinstance(metadata_type, UTCDateTime):
        wanted = getattr(metadata_type.load_dialect_impl(context.dialect), "fsp", None) or 0
        found = getattr(inspected_type, "fsp", None) or 0
        if wanted != found:
            return True
    return None


class JSONDocument(TypeDecorator):
    """A JSON value stored as text, the same way on all three databases.

    The native JSON types differ (MariaDB's is a LONGTEXT with a check constraint that
    reflects back as text), which would make autogenerate see differences that are not
    there. Text on MariaDB/MySQL is LONGTEXT because stored prediction inputs can pass
    TEXT's 64 KiB.
    """

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine:
        if dialect.name in {"mysql", "mariadb"}:
            return dialect.type_descriptor(mysql.LONGTEXT())
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect):  # noqa: ANN001
        if value is None:
            return None
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

    def process_result_value(self, value: str | None, dialect):  # noqa: ANN001
        if value is None:
            return None
        return json.loads(value)
