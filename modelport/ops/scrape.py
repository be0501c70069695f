"""``GET /metrics``: the Prometheus text, for the scrapers the settings allow.

A scrape is answered when it comes from one of ``MODELPORT_METRICS_NETWORKS`` (loopback by
default, so ``curl 127.0.0.1:5000/metrics`` works on a laptop), judged on the address the
app trusts (behind ``MODELPORT_PROXY_HOPS`` proxies, the forwarded one), or when it carries
``Authorization: Bearer <MODELPORT_METRICS_TOKEN>``. The scrape token is not an account's
API token: it opens this endpoint and nothing else, and an account's token does not open it.
"""

from __future__ import annotations

import hmac
import ipaddress
from contextlib import suppress

from flask import Blueprint, Flask, Response, current_app, request
from sqlalchemy.exc import SQLAlchemyError

from modelport.analytics import rollups
from modelport.config import networks
from modelport.errors import ApiError
from modelport.extensions import limiter
from modelport.ops import metrics

bp = Blueprint("metrics", __name__)
ENDPOINT = "metrics.scrape"


def _allowed_address(address: str | None) -> bool:
    allowed = current_app.extensions["modelport_metrics_networks"]
    try:
        client = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if isinstance(client, ipaddress.IPv6Address) and client.ipv4_mapped is not None:
        client = client.ipv4_mapped
    return any(client in network for network in allowed)


def _token_matches(header: str) -> bool:
    expected = current_app.settings.metrics_token
    if not expected or header[:7].lower() != "bearer ":
        return False
    return hmac.compare_digest(header[7:].strip().encode(), expected.encode())


@bp.get("/metrics")
@limiter.exempt
def scrape() -> Response:
    """Every worker's metrics in the Prometheus text format."""
    if not current_app.settings.metrics:
        raise ApiError(404, "not_found", "Metrics are switched off (MODELPORT_METRICS=false).")
    header = request.headers.get("Authorization", "")
    if not (_token_matches(header) or _allowed_address(request.remote_addr)):
        if current_app.settings.metrics_token:
            raise ApiError(401, "unauthorized", "Send Authorization: Bearer <scrape token>.")
        raise ApiError(403, "forbidden", "This address may not read the metrics.")
    with suppress(SQLAlchemyError):  # the database down: the other metrics still answer
        for model, share in rollups.drift_shares().items():
            metrics.set_drift_share(model, share)
    return Response(metrics.exposition(), mimetype=None, content_type=metrics.CONTENT_TYPE)


def register_scrape(app: Flask) -> None:
    """The /metrics endpoint, with the allowed networks parsed once."""
    app.extensions["modelport_metrics_networks"] = networks(app.settings.metrics_networks)
    app.register_blueprint(bp)
