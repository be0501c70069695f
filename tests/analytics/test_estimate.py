"""Realized and estimated accuracy on the demo classifiers: their held-out rows predicted
through the API, the true labels given as feedback, then the monitoring's figures against
the share of right rows counted here, and the estimate without labels (CBPE) within 5
points of it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.support.http import bearer
from tests.support.models import register_demo
from tests.support.tokens import issue_token
from tests.support.users import make_user

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

CHUNK = 10  # rows per request: every row's answer stays in its record


@pytest.mark.parametrize("name", ["iris", "breast-cancer", "digits"])
def test_the_estimate_without_labels_is_within_5_points_of_realized_accuracy(
    app_factory: Any, demo_models: dict[str, Any], name: str
) -> None:
    app = app_factory()
    register_demo(app, demo_models, name)
    demo = demo_models[name]
    rows = demo.holdout.to_dict("records")
    truth = [t.item() if isinstance(t, np.generic) else t for t in demo.holdout_target]
    token = bearer(issue_token(app, make_user(app), scopes=["predict"]))
    client = app.test_client()
    right = 0
    for start in range(0, len(rows), CHUNK):
        answer = client.post(
            f"/api/v1/models/{name}/predict",
            json={"inputs": rows[start : start + CHUNK]},
            headers=token,
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)
        body = answer.get_json()
        actuals = truth[start : start + CHUNK]
        right += sum(
            str(p["label"]) == str(a) for p, a in zip(body["predictions"], actuals, strict=True)
        )
        record = client.get("/api/v1/predictions?page_size=1", headers=token).get_json()
        record_id = record["items"][0]["id"]
        given = client.post(
            f"/api/v1/predictions/{record_id}/feedback", json={"actuals": actuals}, headers=token
        )
        assert given.status_code == 200, given.get_data(as_text=True)
    totals = client.get(f"/api/v1/models/{name}/monitoring", headers=token).get_json()["totals"]
    assert totals["feedback_rows"] == len(rows)
    assert totals["realized_accuracy"] == round(right / len(rows), 4)
    assert abs(totals["estimated_accuracy"] - totals["realized_accuracy"]) <= 0.05
