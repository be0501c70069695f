"""A model's report (``/models/<name>/report``, ``/api/v1/models/<name>/report``): computed
at registration from held-out rows (the demo, the API, the upload page, the CLI), shown
for one version or two side by side, honest about versions without held-out data, and
refusing bad input with a clear 4xx that changes nothing."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from flask import Flask

from tests.support.databases import table_counts
from tests.support.html import check_page, csrf_from
from tests.support.http import assert_api_error, bearer
from tests.support.models import register_demo
from tests.support.tokens import issue_token
from tests.support.users import login, make_user

pytestmark = [
    pytest.mark.db,
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning"),
]


@pytest.fixture
def served(app_factory: Any, demo_models: dict[str, Any]) -> Flask:
    app = app_factory()
    register_demo(app, demo_models, "iris", "diabetes")
    return app


def member(app: Flask) -> Any:
    make_user(app, "ann@example.com")
    client = app.test_client()
    assert login(client).status_code == 302
    return client


def held_out_csv(item: Any, target: str = "_target") -> bytes:
    frame = item.holdout.assign(**{target: item.holdout_target.to_numpy()})
    return frame.to_csv(index=False).encode()


def upload(app: Flask, token: str, item: Any, **files: Any) -> Any:
    data = {
        "artifact": (io.BytesIO(item.artifact.read_bytes()), item.artifact.name),
        "sample": (io.BytesIO(item.sample.to_csv(index=False).encode()), "sample.csv"),
        **files,
    }
    return app.test_client().post(
        f"/api/v1/models/{item.name}/versions",
        data=data,
        headers=bearer(token),
        content_type="multipart/form-data",
    )


def test_the_demo_models_report_on_their_test_split(
    served: Flask, demo_models: dict[str, Any]
) -> None:
    client = member(served)
    body = client.get("/api/v1/models/iris/report").get_json()
    assert (body["model"], body["task"], body["versions"]) == ("iris", "classification", [1])
    (entry,) = body["reports"]
    report = entry["report"]
    assert (entry["version"], entry["status"]) == (1, "ready")
    assert (report["source"], report["rows"]) == ("holdout", len(demo_models["iris"].holdout))
    assert report["metrics"]["accuracy"] == pytest.approx(
        demo_models["iris"].metrics["accuracy"], abs=1e-6
    )
    assert {"confusion", "roc", "pr", "calibration", "importance", "per_class"} <= set(report)
    diabetes = client.get("/api/v1/models/diabetes/report").get_json()["reports"][0]["report"]
    for metric in ("mae", "rmse", "r2"):
        assert diabetes["metrics"][metric] == pytest.approx(
            demo_models["diabetes"].metrics[metric], abs=1e-5
        )
    assert diabetes["importance"]["features"][0]["name"] in {"s5", "bmi"}


def test_the_page_draws_each_chart_with_its_data_and_table(served: Flask) -> None:
    client = member(served)
    page = client.get("/models/iris/report")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    check_page(html, "en")
    assert "style-src-attr 'unsafe-inline'" in page.headers["Content-Security-Policy"]
    for key in ("confusion-1", "roc", "pr", "calibration", "importance"):
        assert f'data-chart="chart-{key}-data"' in html, key
    assert "held-out rows" in html and "The data as a table" in html
    for chart in ("per_class", "confusion", "roc", "pr", "calibration", "importance"):
        assert f"report.csv?chart={chart}" in html, chart
    csv = client.get("/models/iris/report.csv?chart=confusion")
    assert csv.mimetype == "text/csv"
    assert csv.get_data(as_text=True).splitlines()[0] == "version,actual,predicted,rows"
    regression = client.get("/models/diabetes/report").get_data(as_text=True)
    for key in ("predicted", "residuals", "importance"):
        assert f'data-chart="chart-{key}-data"' in regression, key
    assert "chart-roc-data" not in regression
    korean = client.get("/models/diabetes/report", headers={"Accept-Language": "ko"})
    check_page(korean.get_data(as_text=True), "ko")
    assert "리포트" in korean.get_data(as_text=True)
    # Linked from the model page and the monitoring page.
    assert "/models/iris/report" in client.get("/models/iris").get_data(as_text=True)
    assert "/models/iris/report" in client.get("/models/iris/monitoring").get_data(as_text=True)


def test_two_versions_side_by_side(served: Flask, demo_models: dict[str, Any]) -> None:
    admin = make_user(served, "root@example.com", role="admin")
    token = issue_token(served, admin, ["full"])
    item = demo_models["iris"]
    # Version 2: the same model with held-out rows whose answers are all "setosa".
    wrong = item.holdout.assign(species="setosa").to_csv(index=False).encode()
    answer = upload(
        served, token, item, evaluation=(io.BytesIO(wrong), "held.csv"), target="species"
    )
    assert answer.status_code == 201, answer.get_data(as_text=True)
    body = served.test_client().get(
        "/api/v1/models/iris/report?version=2&compare=1", headers=bearer(token)
    )
    assert body.status_code == 200, body.get_data(as_text=True)
    second, first = body.get_json()["reports"]
    assert (second["version"], first["version"]) == (2, 1)
    share = (item.holdout_target == "setosa").mean()
    assert second["report"]["metrics"]["accuracy"] == pytest.approx(share, abs=1e-6)
    assert first["report"]["metrics"]["accuracy"] == 1.0
    client = member(served)
    html = client.get("/models/iris/report?version=2&compare=1").get_data(as_text=True)
    check_page(html, "en")
    assert "chart-confusion-1-data" in html and "chart-confusion-2-data" in html
    assert html.count("Version 1") >= 1 and html.count("Version 2") >= 1
    # (version 2 has no ROC curve: its answers are all one class, a curve needs both kinds)
    matrix = client.get("/models/iris/report.csv?chart=confusion&version=2&compare=1")
    versions = {line.split(",")[0] for line in matrix.get_data(as_text=True).splitlines()[1:]}
    assert versions == {"1", "2"}


def test_a_version_without_held_out_data_says_so(app_factory: Any, demo_models: dict) -> None:
    from modelport.serving import registry

    app = app_factory()
    item = demo_models["iris"]
    with app.app_context():
        model = registry.create_model("bare", task="classification")
        registry.register_version(model, item.artifact, filename="m.skops", sample=item.sample)
        registry.register_version(
            model, item.artifact, filename="m.skops", sample=item.sample, target=item.target_sample
        )
    client = member(app)
    reports = client.get("/api/v1/models/bare/report?version=1&compare=2").get_json()["reports"]
    assert reports[0]["report"] is None
    assert reports[1]["report"]["source"] == "training_sample"
    html = client.get("/models/bare/report?version=1&compare=2").get_data(as_text=True)
    assert "registered without held-out data" in html
    assert "not on held-out data" in html


def test_bad_queries_get_a_clear_4xx(served: Flask) -> None:
    client = member(served)
    before = table_counts(served)
    for query, status, code in (
        ("version=abc", 422, "invalid_input"),
        ("version=0", 422, "invalid_input"),
        ("compare=1.5", 422, "invalid_input"),
        ("version=9", 404, "version_not_found"),
        ("version=1&compare=7", 404, "version_not_found"),
        ("version=1&compare=1", 422, "same_version"),
    ):
        answer = client.get(f"/api/v1/models/iris/report?{query}")
        assert_api_error(answer, status, code)
    assert_api_error(client.get("/api/v1/models/nothing/report"), 404, "model_not_found")
    assert_api_error(served.test_client().get("/api/v1/models/iris/report"), 401)
    for query, status in (("version=x", 400), ("version=9", 404), ("version=1&compare=1", 422)):
        page = client.get(f"/models/iris/report?{query}")
        assert page.status_code == status, query
        assert "version" in page.get_data(as_text=True).lower()
    assert client.get("/models/iris/report.csv?chart=nope").status_code == 404
    assert client.get("/models/nothing/report").status_code == 404
    assert table_counts(served) == before


def test_a_private_model_is_as_missing_as_none(app_factory: Any, demo_models: dict) -> None:
    app = app_factory()
    register_demo(app, demo_models, "iris", visibility="private")
    assert app.test_client().get("/models/iris/report").status_code == 302  # to sign in
    assert_api_error(app.test_client().get("/api/v1/models/iris/report"), 401)
    assert member(app).get("/api/v1/models/iris/report").status_code == 200


def test_refused_held_out_rows_register_nothing(served: Flask, demo_models: dict) -> None:
    admin = make_user(served, "root@example.com", role="admin")
    token = issue_token(served, admin, ["full"])
    item = demo_models["iris"]
    store = Path(served.config["ARTIFACTS_DIR"])
    files_before = sorted(p.name for p in store.rglob("*") if p.is_file())
    before = table_counts(served)
    no_target = item.holdout.to_csv(index=False).encode()
    missing_feature = held_out_csv(item)
    missing_feature = pd.read_csv(io.BytesIO(missing_feature)).drop(columns="petal_width")
    for files, hint in (
        ({"evaluation": (io.BytesIO(no_target), "e.csv")}, "target column"),
        (
            {"evaluation": (io.BytesIO(missing_feature.to_csv(index=False).encode()), "e.csv")},
            "petal_width",
        ),
        ({"evaluation": (io.BytesIO(b"\xff\xfe\x00garbage"), "e.csv")}, "evaluation"),
        ({"evaluation": (io.BytesIO(held_out_csv(item)), "e.csv"), "target": "nope"}, "nope"),
    ):
        error = assert_api_error(upload(served, token, item, **files), 422, "invalid_evaluation")
        assert hint in error["message"], error
    assert table_counts(served) == before
    assert sorted(p.name for p in store.rglob("*") if p.is_file()) == files_before


def test_held_out_rows_from_the_upload_page_and_the_cli(
    served: Flask, demo_models: dict, tmp_path: Path
) -> None:
    item = demo_models["iris"]
    make_user(served, "root@example.com", role="admin")
    admin = served.test_client()
    assert login(admin, "root@example.com").status_code == 302
    form = admin.get("/admin/models/iris/upload").get_data(as_text=True)
    check_page(form, "en")
    answer = admin.post(
        "/admin/models/iris/upload",
        data={
            "csrf_token": csrf_from(form),
            "artifact": (io.BytesIO(item.artifact.read_bytes()), item.artifact.name),
            "sample": (io.BytesIO(item.sample.to_csv(index=False).encode()), "s.csv"),
            "evaluation": (io.BytesIO(held_out_csv(item, "species")), "e.csv"),
            "target": "species",
        },
        content_type="multipart/form-data",
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)
    held = tmp_path / "held.csv"
    held.write_bytes(held_out_csv(item))
    sample = tmp_path / "sample.csv"
    item.sample.to_csv(sample, index=False)
    result = served.test_cli_runner().invoke(
        args=["register", str(item.artifact), "--name", "iris", "--sample", str(sample),
              "--evaluation", str(held)]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "/models/iris/report?version=3" in result.output
    body = admin.get("/api/v1/models/iris/report?version=2&compare=3").get_json()
    for entry in body["reports"]:
        assert entry["report"]["source"] == "holdout"
        assert entry["report"]["rows"] == len(item.holdout)
    refused = served.test_cli_runner().invoke(
        args=["register", str(item.artifact), "--name", "iris", "--sample", str(sample),
              "--evaluation", str(sample)]
    )  # fmt: skip
    assert refused.exit_code == 1 and "target column" in refused.output
