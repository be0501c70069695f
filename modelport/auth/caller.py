"""Who is calling, with which credential, and what that credential allows.

One rule: a signed-in caller holds the powers of their role only as far as the credential
they used carries them. A session or a password carries every scope; an API token carries
its own scopes and never more, whoever owns it. So an administrator's ``predict`` token is
an ordinary member's token: it predicts and reads its owner's records, nothing else.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from modelport.models.tokens import Scope
from modelport.models.users import Role


class Credential(enum.StrEnum):
    """How the caller proved who they are."""

    NONE = "anonymous"
    SESSION = "session"  # a browser's session cookie (CSRF-checked)
    TOKEN = "token"  # noqa: S105 - Authorization: Bearer <API token>
    BASIC = "basic"  # Authorization: Basic e-mail:password (token endpoints only)


class ScopedToken(Protocol):
    """An API token as the caller holds it: the stored row or the cache's snapshot."""

    id: int

    def allows(self, scope: str) -> bool: ...


@dataclass(frozen=True)
class Caller:
    """The caller of one request (``identity.current_caller``, or the hot path's own)."""

    user_id: int | None = None
    role: str | None = None
    credential: Credential = Credential.NONE
    token: ScopedToken | None = None

    @property
    def signed_in(self) -> bool:
        return self.user_id is not None

    @property
    def token_id(self) -> int | None:
        return self.token.id if self.token is not None else None

    def allows(self, scope: str) -> bool:
        """Whether the caller is signed in with a credential that carries ``scope``."""
        return self.signed_in and (self.token is None or self.token.allows(scope))

    @property
    def is_admin(self) -> bool:
        """An administrator acting with a credential that carries every scope."""
        return self.role == Role.ADMIN.value and self.allows(Scope.FULL.value)


ANONYMOUS = Caller()
