"""A Modelport server as the benchmarks run it: its settings, and its benchmark member's token.

Nothing here imports Modelport at module level: bench/memory.py measures the servers'
memory, and must not share the pages of their libraries by importing them itself.
"""

from __future__ import annotations

import secrets
from pathlib import Path

GUNICORN_CONFIG = "python:modelport.ops.gunicorn_conf"
WORKERS = 2
BENCH_EMAIL = "bench@example.com"
# Far above what two workers can serve: the per-user budget must not cut the run short.
USER_LIMIT = "100000000 per minute"


def modelport_env(url: str, workdir: Path, *, record: bool, secret: str) -> dict[str, str]:
    """The MODELPORT_* settings of one Modelport server (and of its set-up)."""
    return {
        "MODELPORT_ENV": "production",
        "MODELPORT_SECRET_KEY": secret,
        "MODELPORT_BASE_URL": "https://modelport.invalid",
        "MODELPORT_DATABASE_URL": url,
        "MODELPORT_INSTANCE_PATH": str(workdir / "instance"),
        "MODELPORT_ARTIFACTS_DIR": str(workdir / "artifacts"),
        "MODELPORT_RECORD_PREDICTIONS": "true" if record else "false",
        "MODELPORT_PREDICT_LIMIT_USER": USER_LIMIT,
        "MODELPORT_ACCESS_LOG": "false",
        "MODELPORT_WORKERS": str(WORKERS),
        # The rollup is background work, measured on its own (bench/analytics.py). Servers
        # of one run share a database, so each one's rollup thread would roll up the
        # others' records too, and its CPU would land on whichever server took the turn:
        # on a row without records as often as on one with them.
        "MODELPORT_ROLLUP_SECONDS": "0",
    }


def create_bench_token() -> str:
    """Create the benchmark's member with a predict-only token (inside an app context);
    return the token."""
    from modelport.auth import accounts
    from modelport.auth.tokens import create_token
    from modelport.models import Role

    user = accounts.create_user(BENCH_EMAIL, "Bench", secrets.token_urlsafe(24), role=Role.USER)
    _token, plaintext = create_token(user, "bench", scopes=["predict"])
    return plaintext
