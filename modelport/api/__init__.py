"""JSON API v1 (OpenAPI documented at /api/openapi.json, browsable at /api/docs)."""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from flask import Blueprint, render_template, send_from_directory
from flask_smorest import Api as SmorestApi
from werkzeug.wrappers import Response

from modelport.api.parser import StrictJSONProvider
from modelport.api.schemas import ErrorSchema


class Api(SmorestApi):
    """flask-smorest, with errors answered by ``modelport.errors`` in the house format."""

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        # modelport.errors handles every HTTPException, API and pages alike. A private hook
        # of flask-smorest's init_app; guarded by tests/test_upstream.py.
        pass

    def init_app(self, app, *, spec_kwargs=None):  # noqa: ANN001, ANN201
        super().init_app(app, spec_kwargs=spec_kwargs)
        # request.get_json() anywhere in the app reads JSON as strictly as the API's parser.
        app.json = StrictJSONProvider(app)
        from modelport.api import (  # noqa: F401 (routes register on import)
            datasets,
            mlflow,
            monitoring,
            predict,
            predictions,
            registry,
            v1,
        )

        self.register_blueprint(v1.blp)
        self.register_blueprint(registry.blp)  # predict's routes too: one blueprint, api_models
        self.register_blueprint(predictions.blp)
        self.register_blueprint(datasets.blp)
        self.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
        self.spec.components.security_scheme("basic", {"type": "http", "scheme": "basic"})
        self.spec.components.security_scheme(
            "session", {"type": "apiKey", "in": "cookie", "name": app.config["SESSION_COOKIE_NAME"]}
        )
        from modelport.api.v2_openapi import document_v2

        document_v2(self.spec)
        app.register_blueprint(docs_bp)


api = Api()

SWAGGER_DIR = Path(swagger_ui_bundle.swagger_ui_path)
docs_bp = Blueprint("api_docs", __name__, url_prefix="/api/docs")


@docs_bp.get("")
def docs() -> str:
    """Swagger UI from the installed swagger-ui-bundle package: no CDN."""
    return render_template("api/docs.html")


@docs_bp.get("/assets/<path:filename>")
def assets(filename: str) -> Response:
    return send_from_directory(SWAGGER_DIR, filename, max_age=86400)
