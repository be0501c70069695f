"""gunicorn settings (``modelport serve`` and the container use these).

Each can be overridden by gunicorn's own environment variable ``GUNICORN_CMD_ARGS``.
"""

from __future__ import annotations

import multiprocessing
import os

bind = os.environ.get("MODELPORT_BIND", "127.0.0.1:5000")
workers = int(os.environ.get("MODELPORT_WORKERS", min(4, multiprocessing.cpu_count() * 2)))
worker_class = "sync"
# Inference must finish well below this, or a worker is killed mid-request.
timeout = int(os.environ.get("MODELPORT_WORKER_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
# The heartbeat file on tmpfs: on a full disk, fchmod would block the worker.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
limit_request_line = 8190
limit_request_field_size = 8190
accesslog = (
    "-" if os.environ.get("MODELPORT_ACCESS_LOG", "true").lower() in {"1", "true", "yes"} else None
)
errorlog = "-"


def post_fork(server, worker):  # noqa: ANN001, ANN201, ARG001
    """A pool created before fork must not share its connections with the children."""
    try:
        from modelport.extensions import db

        app = worker.app.wsgi() if hasattr(worker.app, "wsgi") else None
        if app is not None:
            with app.app_context():
                db.engine.dispose(close=False)
    except Exception:  # noqa: BLE001, S110 - without --preload there is no engine yet
        pass
