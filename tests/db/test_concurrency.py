"""Several threads writing at once: no "database is locked" reaches a caller (WAL + busy timeout)."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from flask import Flask

from modelport.auth import accounts, tokens
from modelport.extensions import db
from modelport.models import ApiToken, User
from tests.support.users import PASSWORD

THREADS = 8
TOKENS_EACH = 3


@pytest.mark.db
def test_parallel_signups_and_tokens_all_succeed(app: Flask) -> None:
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            with app.app_context():
                barrier.wait(timeout=30)  # start together, so the writes really overlap
                user = accounts.create_user(f"user{n}@example.com", f"User {n}", PASSWORD)
                for t in range(TOKENS_EACH):
                    tokens.create_token(user, f"token {t}")
                    # A read of another thread's rows between writes, as pages do.
                    db.session.scalar(sa.select(sa.func.count()).select_from(User))
                db.session.remove()
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == THREADS
        assert (
            db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken))
            == THREADS * TOKENS_EACH
        )
