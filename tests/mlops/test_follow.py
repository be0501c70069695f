"""A Modelport model following an MLflow registered model: ``modelport follow`` / ``sync``
/ ``unfollow`` and the API, against a real MLflow server (issue 13, item 3). Workers of a
running server picking up the move: test_follow_e2e.py."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask

from modelport.serving import registry
from tests.support.databases import rows, table_counts
from tests.support.mlops import IRIS_ROW, add_demo_dataset, cli, client
from tests.support.tokens import make_token
from tests.support.users import make_user

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning"),
]


@pytest.fixture
def trained(app_factory: Any, mlflow_server: str) -> tuple[Flask, str]:
    """An app trusting the MLflow server, and a model trained twice by ``modelport train``
    (MLflow versions 1 and 2, Modelport versions 1 and 2 of the model of the same name)."""
    app = app_factory(
        MLFLOW_TRACKING_URI=mlflow_server, MLFLOW_TRUSTED="true", REGISTRY_POLL_SECONDS="0.001"
    )
    name = f"petals-{uuid.uuid4().hex[:8]}"
    dataset = add_demo_dataset(app, "iris")
    for c in ("0.05", "30"):
        result = cli(app, "train", dataset, "--recipe", "logistic-regression", "--name", name,
                     "--param", f"C={c}")  # fmt: skip
        assert result.exit_code == 0, result.output
    return app, name


def _mirror(app: Flask, name: str = "mirror") -> None:
    with app.app_context():
        registry.create_model(name, task="classification")


def _predict(app: Flask, name: str) -> dict[str, Any]:
    answer = app.test_client().post(f"/api/v1/models/{name}/predict", json={"inputs": IRIS_ROW})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def test_follow_imports_what_the_aliases_name_and_sync_moves_them(
    trained: tuple[Flask, str], mlflow_server: str
) -> None:
    app, name = trained
    found = client(mlflow_server)
    found.set_registered_model_alias(name, "champion", "1")
    found.set_registered_model_alias(name, "challenger", "2")
    _mirror(app)

    followed = cli(app, "follow", "mirror", name)
    assert followed.exit_code == 0, followed.output
    assert "imported MLflow version 1 as version 1" in followed.output
    assert "imported MLflow version 2 as version 2" in followed.output
    assert "champion → version 1 (MLflow 1)" in followed.output
    assert "challenger → version 2 (MLflow 2)" in followed.output
    versions = {v["number"]: v for v in rows(app, "model_versions") if v["artifact_uri"]}
    assert {v["artifact_uri"] for v in versions.values()} >= {
        f"models:/{name}/1",
        f"models:/{name}/2",
    }
    assert _predict(app, "mirror")["model"]["version"] == 1

    # The alias moves in MLflow; the challenger goes. No version is imported twice.
    found.set_registered_model_alias(name, "champion", "2")
    found.delete_registered_model_alias(name, "challenger")
    before = len(rows(app, "model_versions"))
    synced = cli(app, "sync", "mirror")
    assert synced.exit_code == 0, synced.output
    assert "champion → version 2 (MLflow 2)" in synced.output
    assert "challenger removed (MLflow has none)" in synced.output
    assert len(rows(app, "model_versions")) == before
    assert _predict(app, "mirror")["model"]["version"] == 2
    assert cli(app, "sync").output.strip().endswith("up to date.")

    # While it follows, its rollout aliases move in MLflow only.
    for args in (("promote", "mirror"), ("rollback", "mirror")):
        refused = cli(app, *args)
        assert refused.exit_code != 0 and "follows the MLflow model" in refused.output

    assert cli(app, "unfollow", "mirror").exit_code == 0
    assert cli(app, "rollback", "mirror").exit_code == 0


def test_the_trained_model_follows_its_own_mlflow_model_without_importing(
    trained: tuple[Flask, str], mlflow_server: str
) -> None:
    """``modelport train`` registered each MLflow version in Modelport already: following
    reuses them (found by their source, ``models:/NAME/N``)."""
    app, name = trained
    client(mlflow_server).set_registered_model_alias(name, "champion", "2")
    before = table_counts(app)["model_versions"]
    followed = cli(app, "follow", name, name)
    assert followed.exit_code == 0, followed.output
    assert "imported" not in followed.output
    assert "champion → version 2 (MLflow 2)" in followed.output
    assert table_counts(app)["model_versions"] == before


def test_the_api_follows_and_refuses_what_it_cannot(
    trained: tuple[Flask, str], mlflow_server: str
) -> None:
    app, name = trained
    client(mlflow_server).set_registered_model_alias(name, "champion", "1")
    _mirror(app)
    make_user(app, email="admin@example.com", role="admin")
    headers = {"Authorization": f"Bearer {make_token(app, 'admin@example.com')}"}
    api = app.test_client()
    before = table_counts(app)
    unknown = api.put("/api/v1/models/mirror/follow", json={"mlflow_model": "no-such-model"},
                      headers=headers)  # fmt: skip
    assert unknown.status_code == 422
    assert unknown.get_json()["error"]["code"] == "mlflow_model_not_found"
    assert table_counts(app) == before

    answer = api.put("/api/v1/models/mirror/follow", json={"mlflow_model": name}, headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    state = answer.get_json()
    assert state["mlflow_model"] == name and state["aliases"] == {"champion": 1}
    assert state["sync"]["error"] is None and state["synced_at"]
    moved = api.put("/api/v1/models/mirror/aliases/champion", json={"version": 1},
                     headers=headers)  # fmt: skip
    assert (moved.status_code, moved.get_json()["error"]["code"]) == (409, "follows_mlflow")
    again = api.post("/api/v1/models/mirror/follow/sync", headers=headers)
    assert again.status_code == 200 and again.get_json()["sync"]["changes"] == []
    assert api.delete("/api/v1/models/mirror/follow", headers=headers).status_code == 204
    gone = api.delete("/api/v1/models/mirror/follow", headers=headers)
    assert (gone.status_code, gone.get_json()["error"]["code"]) == (409, "not_following")


def test_an_untrusted_server_is_not_followed(app_factory: Any, mlflow_server: str) -> None:
    app = app_factory(MLFLOW_TRACKING_URI=mlflow_server)
    _mirror(app)
    before = table_counts(app)
    refused = cli(app, "follow", "mirror", "anything")
    assert refused.exit_code != 0
    assert "MODELPORT_MLFLOW_TRUSTED" in refused.output
    assert table_counts(app) == before
    assert rows(app, "registered_models")[0]["mlflow_model"] is None


def test_the_admin_page_follows_syncs_and_stops(
    trained: tuple[Flask, str], mlflow_server: str
) -> None:
    from tests.support.html import csrf_token, text
    from tests.support.users import login

    app, name = trained
    client(mlflow_server).set_registered_model_alias(name, "champion", "2")
    _mirror(app)
    make_user(app, email="admin@example.com", role="admin")
    browser = app.test_client()
    login(browser, "admin@example.com")

    def post(action: str, mlflow_model: str) -> str:
        form = {
            "action": action,
            "mlflow_model": mlflow_model,
            "csrf_token": csrf_token(browser, "/admin/models"),
        }
        answer = browser.post("/admin/models/mirror/follow", data=form, follow_redirects=True)
        return text(answer)

    refused = post("follow", "no-such-model")
    assert "MLflow has no registered model no-such-model." in refused
    assert rows(app, "registered_models")[-1]["mlflow_model"] is None
    page = post("follow", name)
    assert f"mirror follows the MLflow model {name}" in page
    assert "champion → version 1 (MLflow 2)" in page
    assert f"Follows the MLflow model {name}" in page and "Last sync:" in page
    assert "nothing to change" in post("sync", name)
    assert "mirror no longer follows MLflow." in post("unfollow", name)
    assert rows(app, "registered_models")[-1]["mlflow_model"] is None
