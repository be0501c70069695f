"""Datasets: named tables of data kept as files in the artifact store, one row per version."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from modelport.extensions import db
from modelport.models.types import JSONDocument, UTCDateTime, utcnow

if TYPE_CHECKING:
    from modelport.models.users import User


class FileFormat(enum.StrEnum):
    CSV = "csv"
    PARQUET = "parquet"


class Dataset(db.Model):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    owner: Mapped[User | None] = relationship()
    versions: Mapped[list[DatasetVersion]] = relationship(
        back_populates="dataset",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="DatasetVersion.number",
    )

    @property
    def latest(self) -> DatasetVersion | None:
        """The newest version, if any."""
        return self.versions[-1] if self.versions else None


class DatasetVersion(db.Model):
    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    number: Mapped[int]
    # The file itself, in the content-addressed artifact store.
    file_sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(10))
    row_count: Mapped[int] = mapped_column(BigInteger)
    column_count: Mapped[int]
    # [{"name", "type"}] in file order; the type is the pandas dtype the file reads as.
    column_types: Mapped[list[Any]] = mapped_column(JSONDocument())
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    profile: Mapped[dict[str, Any]] = mapped_column(JSONDocument())
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    dataset: Mapped[Dataset] = relationship(back_populates="versions")
    created_by: Mapped[User | None] = relationship()


Index("ix_dataset_versions_dataset_id", DatasetVersion.dataset_id)
