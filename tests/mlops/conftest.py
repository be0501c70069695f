"""Fixtures of the MLOps tests: the real MLflow server (tests/support/mlflow_server.py)."""

from __future__ import annotations

from tests.support.mlflow_server import mlflow_server  # noqa: F401 - the session fixture
