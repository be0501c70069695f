"""API tokens for programs: shown once, stored as a hash."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from modelport.extensions import db
from modelport.models.types import UTCDateTime, utcnow

if TYPE_CHECKING:
    from modelport.models.users import User


class Scope(enum.StrEnum):
    PREDICT = "predict"  # predictions and reading one's own records only
    FULL = "full"  # everything the user may do, tokens and account included


def scopes_allow(granted: Iterable[str], scope: str) -> bool:
    """Whether a token granted ``granted`` carries ``scope`` (``full`` carries every scope)."""
    granted = tuple(granted)
    return Scope.FULL.value in granted or scope in granted


class ApiToken(db.Model):
    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_user_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(100), default=Scope.PREDICT.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship(back_populates="tokens")

    @property
    def scope_list(self) -> list[str]:
        return [s for s in self.scopes.split() if s]

    def allows(self, scope: str) -> bool:
        """Whether this token carries ``scope`` (``full`` carries every scope)."""
        return scopes_allow(self.scope_list, scope)
