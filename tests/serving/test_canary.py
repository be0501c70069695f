"""Canary and shadow (``modelport.serving.variants``): which version answers a request that
names none, sticky per caller on every channel, and shadow runs that never touch the answer.

iris is registered twice: version 1 is the champion, version 2 the challenger (and the
shadow); both are the same model, so an answer is the same whichever version gives it, and
only ``model.version``/``variant`` and the records tell them apart.
"""

from __future__ import annotations

import io
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from modelport import create_app
from modelport.auth.caller import Caller, Credential
from modelport.extensions import db
from modelport.models.predictions import PredictionRecord
from modelport.serving import predictor, registry, variants
from modelport.serving.predictor import HASH_SPACE
from tests.support.databases import migrated_sqlite
from tests.support.html import csrf_token
from tests.support.http import bearer
from tests.support.models import IRIS_ROW, register_demo
from tests.support.tokens import issue_token
from tests.support.users import login, make_user

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

PREDICT = "/api/v1/models/iris/predict"
BODY = {"inputs": IRIS_ROW}


def share_of_keys(keys: list[str], share: float, model: str = "iris") -> float:
    cut = int(share * HASH_SPACE)
    return sum(variants.bucket(key, model) < cut for key in keys) / len(keys)


@pytest.mark.parametrize("share", [0.05, 0.1, 0.3, 0.5, 0.9])
def test_the_challenger_gets_its_share_of_2000_callers_within_5_points(share: float) -> None:
    for kind in ("token", "user", "address"):
        keys = [f"{kind}:{n}" for n in range(1, 2001)]
        if kind == "address":
            keys = [f"address:10.{n // 256}.{n % 256}.7" for n in range(2000)]
        assert abs(share_of_keys(keys, share) - share) <= 0.05, kind


def test_a_callers_key_is_its_token_else_its_user_else_its_address() -> None:
    class Token:
        id = 7

        def allows(self, scope: str) -> bool:
            return True

    assert variants.sticky_key(Caller(3, "user", Credential.TOKEN, Token()), "1.2.3.4") == (
        "token:7"
    )
    assert variants.sticky_key(Caller(3, "user", Credential.SESSION), "1.2.3.4") == "user:3"
    assert variants.sticky_key(Caller(), "1.2.3.4") == "address:1.2.3.4"
    # The same key falls differently for another model, and the same way every time.
    assert variants.bucket("token:7", "iris") == variants.bucket("token:7", "iris")
    assert variants.bucket("token:7", "iris") != variants.bucket("token:7", "wine")


def test_raising_the_share_keeps_the_callers_already_on_the_challenger() -> None:
    keys = [f"token:{n}" for n in range(2000)]
    low, high = int(0.1 * HASH_SPACE), int(0.2 * HASH_SPACE)
    on_low = {k for k in keys if variants.bucket(k, "iris") < low}
    on_high = {k for k in keys if variants.bucket(k, "iris") < high}
    assert on_low <= on_high


@pytest.fixture
def two_versions(app_factory: Any, demo_models: dict[str, Any]) -> Flask:
    """iris 1 (champion) and 2 (challenger); workers see registry changes at once."""
    app = app_factory(
        TOKEN_CACHE_SECONDS="60",
        REGISTRY_POLL_SECONDS="0.001",
        PREDICT_LIMIT_USER="10000 per minute",
    )
    register_twice(app, demo_models, "challenger")
    return app


def register_twice(app: Flask, demo_models: dict[str, Any], alias: str, **shares: float) -> None:
    """iris registered twice: version 1 the champion, version 2 ``alias`` (``challenger``
    or ``shadow``), the ``shares`` set if any; Ann signed up."""
    register_demo(app, demo_models, "iris")
    register_demo(app, demo_models, "iris")
    with app.app_context():
        model = registry.get_model("iris")
        assert model is not None
        registry.set_alias(model, "champion", 1)
        registry.set_alias(model, alias, 2)
        if shares:
            registry.set_shares(model, **shares)
    make_user(app)


def set_shares(app: Flask, canary: float | None = None, shadow: float | None = None) -> None:
    with app.app_context():
        model = registry.get_model("iris")
        assert model is not None
        registry.set_shares(model, canary=canary, shadow=shadow)


def token_ids(app: Flask, count: int, user_id: int = 1) -> list[tuple[str, int]]:
    """``count`` new tokens of a user's (Ann's by default): (plaintext, id)."""
    from modelport.models import ApiToken

    plaintexts = [issue_token(app, user_id, ["predict"], name=f"t{n}") for n in range(count)]
    with app.app_context():
        ids = list(db.session.scalars(sa.select(ApiToken.id).order_by(ApiToken.id)))
    return list(zip(plaintexts, ids[-count:], strict=True))


def expected(token_id: int, share: float) -> int:
    return 2 if variants.bucket(f"token:{token_id}", "iris") < int(share * HASH_SPACE) else 1


def records(app: Flask) -> list[PredictionRecord]:
    with app.app_context():
        found = list(db.session.scalars(sa.select(PredictionRecord).order_by(PredictionRecord.id)))
        db.session.expunge_all()
        return found


def post(client: FlaskClient, path: str, **kwargs: Any) -> Any:
    """POST and close the response, as a server does once it has sent it (which runs the
    shadow; the test client leaves responses open)."""
    response = client.post(path, **kwargs)
    response.close()
    return response


def drain(app: Flask) -> None:
    assert variants.runner(app).drain(30)


def test_each_token_gets_the_version_its_hash_says_on_both_paths(two_versions: Flask) -> None:
    app = two_versions
    set_shares(app, canary=0.5)
    client = app.test_client()
    tokens = token_ids(app, 24)
    seen: dict[int, set[tuple[int, str]]] = {}
    for plaintext, token_id in tokens:
        for _ in range(3):  # the first request of a token is Flask's, the others the hot path's
            response = client.post(PREDICT, json=BODY, headers=bearer(plaintext))
            assert response.status_code == 200, response.json
            model = response.json["model"]
            seen.setdefault(token_id, set()).add((model["version"], model["variant"]))
    assert app.extensions["modelport_fast_path"].answered == 48
    for token_id, answers in seen.items():
        version = expected(token_id, 0.5)
        assert answers == {(version, "champion" if version == 1 else "challenger")}
    assert {v for answers in seen.values() for v, _ in answers} == {1, 2}
    variants_recorded = {(r.version_number, r.variant) for r in records(app)}
    assert variants_recorded == {(1, "champion"), (2, "challenger")}


def test_a_request_naming_a_version_or_alias_gets_exactly_it(two_versions: Flask) -> None:
    app = two_versions
    set_shares(app, canary=1.0)  # everyone naming nothing gets the challenger
    client = app.test_client()
    token = issue_token(app, 1, ["predict"])
    for path, version, alias in (
        ("/api/v1/models/iris/versions/1/predict", 1, None),
        ("/api/v1/models/iris@champion/predict", 1, "champion"),
        ("/api/v1/models/iris@challenger/predict", 2, "challenger"),
        (PREDICT, 2, "challenger"),
    ):
        for _ in range(2):
            model = client.post(path, json=BODY, headers=bearer(token)).json["model"]
            assert (model["version"], model["alias"]) == (version, alias), path
            assert model["variant"] == (None if path != PREDICT else "challenger")
    tensor = {
        "inputs": [
            {"name": k, "shape": [1], "datatype": "FP64", "data": [v]} for k, v in IRIS_ROW.items()
        ]
    }
    answer = client.post("/v2/models/iris/versions/1/infer", json=tensor, headers=bearer(token))
    assert answer.json["model_version"] == "1"
    answer = client.post("/v2/models/iris/infer", json=tensor, headers=bearer(token))
    assert answer.json["model_version"] == "2"


def test_every_channel_gives_a_caller_the_same_variant(two_versions: Flask) -> None:
    app = two_versions
    set_shares(app, canary=0.5)
    client = app.test_client()
    token, token_id = token_ids(app, 1)[0]
    version = expected(token_id, 0.5)
    csv = ",".join(IRIS_ROW) + "\n" + ",".join(str(v) for v in IRIS_ROW.values()) + "\n"
    client.post(PREDICT, json=BODY, headers=bearer(token))
    client.post(PREDICT, data=csv, headers={**bearer(token), "Content-Type": "text/csv"})
    tensor = {
        "inputs": [
            {"name": k, "shape": [1], "datatype": "FP64", "data": [v]} for k, v in IRIS_ROW.items()
        ]
    }
    v2 = client.post("/v2/models/iris/infer", json=tensor, headers=bearer(token))
    assert v2.status_code == 200
    assert v2.get_json()["model_version"] == str(version)
    assert v2.get_json()["parameters"] == {"variant": "challenger" if version == 2 else "champion"}
    named = client.post("/v2/models/iris/versions/1/infer", json=tensor, headers=bearer(token))
    assert "parameters" not in named.get_json()
    found = records(app)[:3]
    assert [r.source for r in found] == ["api", "csv", "v2"]
    assert {r.version_number for r in found} == {version}
    # A signed-in browser is kept by its user id on the model page.
    login(client)
    form = {f"feature:{k}": str(v) for k, v in IRIS_ROW.items()}
    form["csrf_token"] = csrf_token(client, "/models/iris")
    assert client.post("/models/iris", data=form).status_code == 200
    user_version = 2 if variants.bucket("user:1", "iris") < HASH_SPACE // 2 else 1
    assert records(app)[-1].version_number == user_version
    assert records(app)[-1].variant == ("challenger" if user_version == 2 else "champion")


def test_without_a_share_the_champion_answers_and_says_so(two_versions: Flask) -> None:
    client = two_versions.test_client()
    token = issue_token(two_versions, 1, ["predict"])
    for _ in range(3):
        model = client.post(PREDICT, json=BODY, headers=bearer(token)).json["model"]
        assert (model["version"], model["alias"], model["variant"]) == (1, "champion", "champion")


def test_shares_need_their_alias_and_promote_and_rollback_end_the_canary(
    two_versions: Flask,
) -> None:
    app = two_versions
    with app.app_context():
        model = registry.get_model("iris")
        assert model is not None
        with pytest.raises(registry.RegistryConflict):
            registry.set_shares(model, shadow=0.5)  # no shadow alias
        with pytest.raises(registry.RegistryError):
            registry.set_shares(model, canary=1.5)
        revision = model.revision
        registry.set_shares(model, canary=0.25)
        assert model.revision == revision + 1  # every worker reloads
        registry.promote(model)
        assert model.alias_map() == {"champion": 2}
        assert model.canary_share is None
        registry.set_alias(model, "challenger", 1)
        registry.set_shares(model, canary=0.5)
        registry.rollback(model)
        assert model.alias_map() == {"champion": 2}
        assert model.canary_share is None
        with pytest.raises(registry.RegistryNotFound):
            registry.promote(model)
        # A share ends with its alias (removed, or its version archived).
        registry.set_alias(model, "challenger", 1)
        registry.set_alias(model, "shadow", 1)
        registry.set_shares(model, canary=0.5, shadow=0.5)
        registry.delete_alias(model, "challenger")
        assert (model.canary_share, model.shadow_share) == (None, 0.5)
        registry.archive_version(model, 1)
        assert model.shadow_share is None and model.alias_map() == {"champion": 2}


@pytest.mark.db
def test_a_rollback_without_a_canary_undoes_the_last_promote_once(two_versions: Flask) -> None:
    app = two_versions
    with app.app_context():
        model = registry.get_model("iris")
        assert model is not None
        assert registry.rollback(model) is None  # nothing promoted yet: nothing changes
        assert model.alias_map() == {"champion": 1}
        registry.set_alias(model, "challenger", 2)
        registry.promote(model)
        assert (model.alias_map(), model.previous_champion) == ({"champion": 2}, 1)
        # A canary started after the promote is ended first; the next step undoes the promote.
        registry.set_alias(model, "challenger", 1)
        registry.set_shares(model, canary=0.5)
        assert registry.rollback(model) is None
        assert (model.alias_map(), model.canary_share) == ({"champion": 2}, None)
        restored = registry.rollback(model)
        assert restored is not None and restored.number == 1
        assert (model.alias_map(), model.previous_champion) == ({"champion": 1}, None)
        assert registry.rollback(model) is None  # once
        assert model.alias_map() == {"champion": 1}
        # Moving the champion by hand forgets the promote.
        registry.set_alias(model, "challenger", 2)
        registry.promote(model)
        registry.set_alias(model, "champion", 2)
        assert model.previous_champion is None
        assert registry.rollback(model) is None and model.alias_map() == {"champion": 2}
        # The version to go back to is archived: refused, nothing moves.
        registry.set_alias(model, "challenger", 1)
        registry.promote(model)
        assert model.previous_champion == 2
        registry.archive_version(model, 2)
        with pytest.raises(registry.RegistryConflict) as refused:
            registry.rollback(model)
        assert refused.value.code == "rollback_unavailable"
        assert model.alias_map() == {"champion": 1}


def test_the_api_the_cli_and_the_page_undo_a_promote(two_versions: Flask) -> None:
    app = two_versions
    make_user(app, "root@example.com", role="admin")
    admin = issue_token(app, 2, ["full"])
    client = app.test_client()
    url = "/api/v1/models/iris/canary"
    assert client.post(f"{url}/promote", headers=bearer(admin)).json["champion"] == 2
    undone = client.post(f"{url}/rollback", headers=bearer(admin))
    assert undone.status_code == 200, undone.json
    assert (undone.json["champion"], undone.json["challenger"]) == (1, None)
    # The CLI.
    with app.app_context():
        registry.set_alias(registry.get_model("iris"), "challenger", 2)  # type: ignore[arg-type]
    runner = app.test_cli_runner()
    assert runner.invoke(args=["promote", "iris"]).exit_code == 0
    result = runner.invoke(args=["rollback", "iris"])
    assert result.exit_code == 0, result.output
    assert "Rolled back: version 1 is the champion again." in result.output
    # The page offers it after a promote, and does it.
    with app.app_context():
        registry.set_alias(registry.get_model("iris"), "challenger", 2)  # type: ignore[arg-type]
    assert runner.invoke(args=["promote", "iris"]).exit_code == 0
    login(client, "root@example.com")
    page = client.get("/admin/models").get_data(as_text=True)
    assert "Undo the promote: version 1 is the champion again" in page
    token = csrf_token(client, "/admin/models")
    done = client.post(
        "/admin/models/iris/canary",
        data={"csrf_token": token, "action": "rollback"},
        follow_redirects=True,
    )
    assert done.status_code == 200
    assert "Version 1 of iris is the champion again." in done.get_data(as_text=True)
    with app.app_context():
        model = registry.get_model("iris")
        assert model is not None and model.alias_map() == {"champion": 1}


def test_the_api_and_the_cli_set_promote_and_roll_back(two_versions: Flask) -> None:
    app = two_versions
    make_user(app, "root@example.com", role="admin")
    admin = issue_token(app, 2, ["full"])
    member = issue_token(app, 1, ["full"])
    client = app.test_client()
    url = "/api/v1/models/iris/canary"
    assert client.put(url, json={"share": 0.1}, headers=bearer(member)).status_code == 403
    answer = client.put(url, json={"share": 0.1}, headers=bearer(admin))
    assert answer.status_code == 200, answer.json
    assert answer.json == {
        "model": "iris",
        "share": 0.1,
        "shadow_share": None,
        "champion": 1,
        "challenger": 2,
        "shadow": None,
    }
    assert client.put(url, json={"share": 2}, headers=bearer(admin)).status_code == 422
    assert client.put(url, json={}, headers=bearer(admin)).status_code == 422
    refused = client.put(url, json={"shadow_share": 0.5}, headers=bearer(admin))
    assert refused.status_code == 409
    assert refused.json["error"]["code"] == "no_shadow"
    assert client.get("/api/v1/models/iris", headers=bearer(admin)).json["canary_share"] == 0.1
    promoted = client.post(f"{url}/promote", headers=bearer(admin)).json
    assert (promoted["champion"], promoted["challenger"], promoted["share"]) == (2, None, None)

    runner = app.test_cli_runner()
    with app.app_context():
        registry.set_alias(registry.get_model("iris"), "challenger", 1)  # type: ignore[arg-type]
    result = runner.invoke(args=["canary", "iris", "--share", "0.2"])
    assert result.exit_code == 0, result.output
    assert "challenger 1 for 20.0% of callers" in result.output
    result = runner.invoke(args=["rollback", "iris"])
    assert result.exit_code == 0, result.output
    assert "challenger -" in result.output
    result = runner.invoke(args=["promote", "iris"])
    assert result.exit_code != 0 and "no challenger alias" in result.output
    with app.app_context():
        registry.set_alias(registry.get_model("iris"), "challenger", 1)  # type: ignore[arg-type]
    result = runner.invoke(args=["promote", "iris"])
    assert result.exit_code == 0 and "Promoted version 1" in result.output
    result = runner.invoke(args=["canary", "iris", "--shadow-share", "0.5"])
    assert result.exit_code != 0 and "no shadow alias" in result.output


def test_the_admin_page_sets_the_shares_promotes_and_rolls_back(two_versions: Flask) -> None:
    app = two_versions
    make_user(app, "root@example.com", role="admin")
    client = app.test_client()
    login(client, "root@example.com")
    page = client.get("/admin/models").get_data(as_text=True)
    assert "Promote the challenger" in page and "Canary share (per cent)" in page
    token = csrf_token(client, "/admin/models")
    url = "/admin/models/iris/canary"
    saved = client.post(url, data={"csrf_token": token, "share": "25", "shadow_share": "0"})
    assert saved.status_code == 302
    with app.app_context():
        model = registry.get_model("iris")
        assert model is not None and model.canary_share == 0.25
    refused = client.post(url, data={"csrf_token": token, "share": "10", "shadow_share": "5"})
    assert refused.status_code == 409
    assert "shadow alias" in refused.get_data(as_text=True)
    bad = client.post(url, data={"csrf_token": token, "share": "250"})
    assert bad.status_code == 400
    promoted = client.post(url, data={"csrf_token": token, "action": "promote"})
    assert promoted.status_code == 302
    with app.app_context():
        model = registry.get_model("iris")
        assert model is not None
        assert model.alias_map() == {"champion": 2} and model.canary_share is None
        registry.set_alias(model, "challenger", 1)
        registry.set_shares(model, canary=0.5)
    assert client.post(url, data={"csrf_token": token, "action": "rollback"}).status_code == 302
    with app.app_context():
        model = registry.get_model("iris")
        assert model is not None
        assert model.alias_map() == {"champion": 2} and model.canary_share is None


# --- shadow -----------------------------------------------------------------------------------


@pytest.fixture
def shadowed(two_versions: Flask) -> Flask:
    """iris 1 answers everyone; every request is also run on version 2, the shadow."""
    app = two_versions
    with app.app_context():
        model = registry.get_model("iris")
        assert model is not None
        registry.delete_alias(model, "challenger")
        registry.set_alias(model, "shadow", 2)
        registry.set_shares(model, shadow=1.0)
    return app


def shadow_runtime(app: Flask, version: int = 2) -> Any:
    with app.test_request_context():
        found = predictor.route("iris").shadow
        assert found is not None and found.version == version
        return found.runtime


def test_shadow_records_match_their_requests_one_to_one(shadowed: Flask) -> None:
    app = shadowed
    client = app.test_client()
    token = issue_token(app, 1, ["predict"])
    tensor = {
        "inputs": [
            {"name": k, "shape": [2], "datatype": "FP64", "data": [v, v]}
            for k, v in IRIS_ROW.items()
        ]
    }
    for _ in range(5):  # Flask first, then the hot path
        answer = post(client, PREDICT, json=BODY, headers=bearer(token))
        assert answer.json["model"]["version"] == 1
    assert post(
        client, "/v2/models/iris/infer", json=tensor, headers=bearer(token)
    ).status_code == (200)
    named = post(client, "/api/v1/models/iris/versions/1/predict", json=BODY, headers=bearer(token))
    assert named.status_code == 200  # names a version: not shadowed
    drain(app)
    found = records(app)
    served = [r for r in found if r.variant != "shadow"]
    shadows = [r for r in found if r.variant == "shadow"]
    assert len(served) == 7
    assert len(shadows) == 6
    assert sorted(s.shadow_of for s in shadows) == [r.id for r in served if r.variant][:6]
    by_id = {r.id: r for r in served}
    for shadow in shadows:
        primary = by_id[shadow.shadow_of]
        assert shadow.version_number == 2 and primary.version_number == 1
        assert shadow.request_id == primary.request_id
        assert shadow.source == primary.source
        assert shadow.status == "ok"
        assert shadow.outputs == primary.outputs  # the same model: they agree
        assert shadow.inputs is None and shadow.user_id is None and shadow.token_id is None
    assert app.extensions["modelport_fast_path"].answered == 5


def test_a_shadow_that_raises_never_changes_the_answer(
    shadowed: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = shadowed
    client = app.test_client()
    token = issue_token(app, 1, ["predict"])
    before = post(
        client, "/api/v1/models/iris/versions/1/predict", json=BODY, headers=bearer(token)
    )

    def explode(_batch: Any) -> Any:
        raise RuntimeError("the shadow is broken")

    monkeypatch.setattr(shadow_runtime(app), "predict", explode)
    for _ in range(3):
        answer = post(client, PREDICT, json=BODY, headers=bearer(token))
        assert answer.status_code == 200
        assert answer.json["predictions"] == before.json["predictions"]
    drain(app)
    shadows = [r for r in records(app) if r.variant == "shadow"]
    assert [(s.status, s.error_code) for s in shadows] == [("error", "model_error")] * 3


def test_a_slow_shadow_never_delays_the_answer(
    shadowed: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = shadowed
    client = app.test_client()
    token = issue_token(app, 1, ["predict"])
    runtime = shadow_runtime(app)
    real = runtime.predict
    release = threading.Event()

    def slow(batch: Any) -> Any:
        release.wait(10)
        return real(batch)

    monkeypatch.setattr(runtime, "predict", slow)
    post(client, PREDICT, json=BODY, headers=bearer(token))  # the token is remembered
    started = time.perf_counter()
    for _ in range(variants.QUEUE_SIZE + 10):  # more than the queue holds: some are dropped
        answer = post(client, PREDICT, json=BODY, headers=bearer(token))
        assert answer.status_code == 200
        assert answer.json["model"]["version"] == 1
    assert time.perf_counter() - started < 8  # the shadow alone would take 10 s a request
    release.set()
    drain(app)
    found = records(app)
    shadows = [r for r in found if r.variant == "shadow"]
    assert len([r for r in found if r.variant != "shadow"]) == variants.QUEUE_SIZE + 11
    # The queue, the batch the thread had taken from it, and no more: the rest dropped.
    assert variants.QUEUE_SIZE <= len(shadows) <= variants.QUEUE_SIZE + variants.BATCH + 2
    assert all(s.status == "ok" for s in shadows)


def test_a_csv_upload_is_not_shadowed(shadowed: Flask) -> None:
    client = shadowed.test_client()
    token = issue_token(shadowed, 1, ["predict"])
    csv = ",".join(IRIS_ROW) + "\n" + ",".join(str(v) for v in IRIS_ROW.values()) + "\n"
    answer = post(
        client,
        PREDICT,
        data=io.BytesIO(csv.encode()),
        headers={**bearer(token), "Content-Type": "text/csv"},
    )
    assert answer.status_code == 200
    drain(shadowed)
    assert [r.variant for r in records(shadowed)] == ["champion"]


# --- a real gunicorn with two workers ---------------------------------------------------------


def served_twice(
    tmp_path: Path, demo_models: dict[str, Any], alias: str, **shares: float
) -> tuple[str, Flask]:
    """A migrated SQLite file for a real server, set up by ``register_twice``; its URL and
    an app on it (close it with ``closed`` before serving)."""
    url = migrated_sqlite(tmp_path)
    app = create_app(
        {"ENV": "testing", "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path / "instance")}
    )
    register_twice(app, demo_models, alias, **shares)
    return url, app


def closed(app: Flask) -> None:
    """Let go of the app's connections, so that only the server uses the database."""
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.mark.slow
def test_two_gunicorn_workers_give_each_of_200_tokens_one_version(
    tmp_path: Path, demo_models: dict[str, Any]
) -> None:
    from tests.support.servers import gunicorn

    url, app = served_twice(tmp_path, demo_models, "challenger", canary=0.3)
    make_user(app, "bob@example.com", name="Bob")
    tokens = token_ids(app, 100) + token_ids(app, 100, 2)  # at most 100 tokens per account
    closed(app)

    def ask(token: str) -> tuple[int, str]:
        answer = requests.post(
            f"{server.url}{PREDICT}", json=BODY, headers=bearer(token), timeout=30
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["model"]["version"], answer.json()["model"]["variant"]

    with gunicorn(tmp_path, url, PREDICT_LIMIT_USER="100000 per minute") as server:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, [t for t, _ in tokens for _ in range(4)]))
        pids = re.findall(r"^<(\d+)> POST /api/v1/models/iris/predict 200", server.text(), re.M)
    assert len(set(pids)) == 2, "both workers answered"
    by_token = [set(answers[i * 4 : i * 4 + 4]) for i in range(len(tokens))]
    for (_, token_id), seen in zip(tokens, by_token, strict=True):
        version = expected(token_id, 0.3)
        assert seen == {(version, "challenger" if version == 2 else "champion")}
    share = sum(expected(token_id, 0.3) == 2 for _, token_id in tokens) / len(tokens)
    assert abs(share - 0.3) <= 0.05


@pytest.mark.slow
def test_gunicorn_workers_shadow_every_request_between_requests_and_before_they_stop(
    tmp_path: Path, demo_models: dict[str, Any]
) -> None:
    """The product's worker does the shadow runs itself, between requests (none lost under
    load: they are caught up in batches), and those it still holds when it stops."""
    from tests.support.servers import gunicorn

    url, app = served_twice(tmp_path, demo_models, "shadow", shadow=1.0)
    ((token, _id),) = token_ids(app, 1)
    closed(app)

    def ask(_: int) -> int:
        answer = requests.post(
            f"{server.url}{PREDICT}", json=BODY, headers=bearer(token), timeout=30
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["record_id"]

    # The last few runs wait for a pause, or for the workers to stop: SIGTERM comes at once.
    with (
        gunicorn(tmp_path, url, PREDICT_LIMIT_USER="100000 per minute") as server,
        ThreadPoolExecutor(8) as pool,
    ):
        primaries = set(pool.map(ask, range(400)))
    found = records(app)
    shadows = [r for r in found if r.variant == "shadow"]
    assert len(primaries) == 400
    assert sorted(s.shadow_of for s in shadows) == sorted(primaries)
    assert all(s.status == "ok" and s.version_number == 2 for s in shadows)


def test_monitoring_compares_the_variants_and_the_shadow(
    shadowed: Flask, demo_models: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    import numpy as np

    app = shadowed
    make_user(app, "root@example.com", role="admin")
    register_demo(app, demo_models, "iris")  # version 3: the shadow, loaded on its own
    with app.app_context():
        model = registry.get_model("iris")
        assert model is not None
        registry.set_alias(model, "champion", 1)
        registry.set_alias(model, "challenger", 2)
        registry.set_alias(model, "shadow", 3)
        registry.set_shares(model, canary=0.5)
    client = app.test_client()
    runtime = shadow_runtime(app, 3)
    real = runtime.predict
    calls = {"n": 0}

    def sometimes_wrong(batch: Any) -> Any:
        calls["n"] += 1
        found = real(batch)
        if calls["n"] % 2:  # every other shadow run answers another class
            return dataclasses.replace(found, labels=np.array(["virginica"] * len(found.labels)))
        return found

    monkeypatch.setattr(runtime, "predict", sometimes_wrong)
    tokens = token_ids(app, 10)
    for plaintext, _ in tokens:
        assert post(client, PREDICT, json=BODY, headers=bearer(plaintext)).status_code == 200
    drain(app)
    found = records(app)
    served = [r for r in found if r.variant != "shadow"]
    assert len(served) == 10 and len(found) == 20
    admin = issue_token(app, 2, ["full"])
    report = client.get("/api/v1/models/iris/monitoring", headers=bearer(admin)).json
    assert report["totals"]["requests"] == 10  # shadow runs are no traffic
    by_variant = {v["variant"]: v for v in report["variants"]}
    assert set(by_variant) == {"champion", "challenger"}
    on_challenger = sum(r.version_number == 2 for r in served)
    assert by_variant["challenger"]["requests"] == on_challenger
    assert by_variant["champion"]["requests"] == 10 - on_challenger
    assert by_variant["champion"]["error_rate"] in (0, None)
    shadow = report["shadow"]
    assert (shadow["version"], shadow["runs"], shadow["compared"], shadow["failed"]) == (
        3,
        10,
        10,
        0,
    )
    assert shadow["agreement_rate"] == 0.5
    assert shadow["latency_ms"]["shadow"]["p95"] is not None
    assert len(shadow["disagreements"]) == 5
    first = shadow["disagreements"][0]
    assert first["shadow"] == ["virginica"] and first["served"] == ["setosa"]
    # Members see the figures, not whose answers disagreed.
    member = issue_token(app, 1, ["predict"])
    assert (
        "disagreements"
        not in client.get("/api/v1/models/iris/monitoring", headers=bearer(member)).json["shadow"]
    )
    login(client, "root@example.com")
    page = client.get("/models/iris/monitoring").get_data(as_text=True)
    assert "Champion, challenger and shadow" in page
    assert f'href="/predictions/{first["shadow_record_id"]}"' in page
    assert "50.00 %" in page
