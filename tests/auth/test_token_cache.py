"""The token memory of prediction endpoints (modelport/auth/token_cache.py).

Within the worker that revokes a token or changes its owner, the change is seen at once.
A change made elsewhere (another worker, another program on the database) reaches a
prediction endpoint within MODELPORT_TOKEN_CACHE_SECONDS, and every other endpoint at once.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from modelport.auth import token_cache
from modelport.extensions import db
from tests.support.http import bearer
from tests.support.models import IRIS_ROW, register_demo
from tests.support.tokens import issue_token
from tests.support.users import make_user

PREDICT = "/api/v1/models/iris/predict"


class FakeClock:
    """The cache's clock, moved on by the test instead of by sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(token_cache, "clock", fake)
    return fake


@pytest.fixture
def served(app_factory: Any, demo_models: dict[str, Any]) -> Any:
    token_cache.forget_all()
    app = app_factory(TOKEN_CACHE_SECONDS="1")
    register_demo(app, demo_models, "iris", visibility="private")
    yield app
    token_cache.forget_all()


def _predict(client: Any, headers: dict[str, str]) -> int:
    return client.post(PREDICT, json={"inputs": IRIS_ROW}, headers=headers).status_code


@pytest.mark.db
def test_revocation_in_this_worker_is_seen_at_once(served: Any) -> None:
    client = served.test_client()
    user_id = make_user(served)
    headers = bearer(issue_token(served, user_id))
    assert _predict(client, headers) == 200
    listed = client.get("/api/v1/tokens", headers=bearer(issue_token(served, user_id, ["full"])))
    token_id = next(t["id"] for t in listed.get_json()["items"] if t["scopes"] == ["predict"])
    full = bearer(issue_token(served, user_id, ["full"]))
    assert client.delete(f"/api/v1/tokens/{token_id}", headers=full).status_code == 204
    assert _predict(client, headers) == 401


@pytest.mark.db
def test_a_change_made_elsewhere_reaches_predictions_within_the_cache_time(
    served: Any, clock: FakeClock
) -> None:
    client = served.test_client()
    headers = bearer(issue_token(served, make_user(served)))
    assert _predict(client, headers) == 200
    # Another worker disables the owner: this process sees no ORM event, only the database.
    with served.app_context(), db.engine.begin() as connection:
        connection.execute(sa.text("UPDATE users SET active = :no"), {"no": False})
    clock.now += 0.9
    assert _predict(client, headers) == 200  # remembered for up to a second
    assert client.get("/api/v1/me", headers=headers).status_code == 401  # not cached there
    clock.now += 0.2
    assert _predict(client, headers) == 401


@pytest.mark.db
def test_a_token_deleted_elsewhere_cannot_record_and_is_refused(served: Any) -> None:
    client = served.test_client()
    headers = bearer(issue_token(served, make_user(served)))
    assert _predict(client, headers) == 200
    with served.app_context(), db.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM api_tokens"))
    # The record would name a token that no longer exists: refused, nothing written.
    before = _records(served)
    assert _predict(client, headers) == 401
    assert _records(served) == before


def _records(app: Any) -> int:
    with app.app_context(), db.engine.connect() as connection:
        return connection.execute(sa.text("SELECT count(*) FROM predictions")).scalar_one()


def test_no_cache_when_turned_off(app_factory: Any, demo_models: dict[str, Any]) -> None:
    token_cache.forget_all()
    app = app_factory(TOKEN_CACHE_SECONDS="0")
    register_demo(app, demo_models, "iris", visibility="private")
    client = app.test_client()
    headers = bearer(issue_token(app, make_user(app)))
    assert _predict(client, headers) == 200
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM api_tokens"))
    assert _predict(client, headers) == 401


@pytest.mark.db
def test_a_disabled_owner_is_refused_at_once_in_this_worker(served: Any) -> None:
    from modelport.models import User

    client = served.test_client()
    user_id = make_user(served)
    headers = bearer(issue_token(served, user_id))
    assert _predict(client, headers) == 200
    with served.app_context():
        db.session.get(User, user_id).active = False
        db.session.commit()
    assert _predict(client, headers) == 401
