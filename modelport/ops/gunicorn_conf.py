"""gunicorn settings (``modelport serve`` and the container use these).

Each can be overridden by gunicorn's own environment variable ``GUNICORN_CMD_ARGS``.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import shutil
import tempfile
import time

_ON = {"1", "true", "yes", "on"}
_OFF = {"0", "false", "no", "off"}


def _switch(name: str, default: bool) -> bool:
    """An on/off setting; a value that is neither stops the server here."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value not in _ON | _OFF:
        raise ValueError(f"{name} must be true or false, not {value!r}")
    return value in _ON


# prometheus-client picks its multiprocess mode when it is first imported, so the directory
# is chosen here, before anything imports it: the user's PROMETHEUS_MULTIPROC_DIR, else a
# new one under /tmp (writable in the container too). Emptied when the server starts.
# A directory made here is removed when the server exits (on_exit).
_OWN_METRICS_DIR: str | None = None
if _switch("MODELPORT_METRICS", default=True):
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _OWN_METRICS_DIR = tempfile.mkdtemp(prefix="modelport-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = _OWN_METRICS_DIR
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

from modelport.lazy import LAZY  # noqa: E402
from modelport.ops.worker import group_size, head_timeout  # noqa: E402

bind = os.environ.get("MODELPORT_BIND", "127.0.0.1:5000")
workers = int(os.environ.get("MODELPORT_WORKERS", min(4, multiprocessing.cpu_count() * 2)))
# gunicorn's sync worker, answering waiting predictions as a group (docs/configuration.md).
worker_class = "modelport.ops.worker.GroupWorker"
# The application and every module it imports are loaded once, in the master, before the
# workers fork: the workers share those pages instead of each holding a copy of its own
# (docs/benchmarks.md, "Memory"); libraries only some requests need are imported by the
# worker that first needs them (modelport.lazy). What must not cross a fork is made after
# it: post_fork below drops the master's database connections, and each worker loads its
# models (and imports onnxruntime for them: serving/flavors.py) on first use.
# MODELPORT_PRELOAD=false: each worker imports the application itself, as gunicorn does by
# default.
preload_app = _switch("MODELPORT_PRELOAD", default=True)


def _preload_libraries(value: str) -> list[str]:
    """The modules of MODELPORT_PRELOAD_LIBRARIES; one that is not of a library imported on
    first use (modelport.lazy) stops the server here."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    for name in names:
        if name.split(".")[0] not in LAZY:
            raise ValueError(
                f"MODELPORT_PRELOAD_LIBRARIES: {name!r} is not a module of {', '.join(LAZY)}"
            )
    return names


# Libraries that features import on first use (modelport.lazy), imported here in the master
# too, so that the workers share them instead of each importing its own copy: worth it when
# every worker will need them (all take CSV uploads, say). Without preload, nothing is.
preload_libraries = _preload_libraries(os.environ.get("MODELPORT_PRELOAD_LIBRARIES", ""))
if preload_app:
    for _name in preload_libraries:
        importlib.import_module(_name)
group_size()  # a bad MODELPORT_WORKER_GROUP stops the server here, not each worker at boot
# Inference must finish well below this, or a worker is killed mid-request.
timeout = int(os.environ.get("MODELPORT_WORKER_TIMEOUT", "60"))
# A connection that has not sent its whole request head by then is closed (GroupWorker).
if head_timeout() >= timeout:
    raise ValueError("MODELPORT_REQUEST_HEAD_TIMEOUT must be below MODELPORT_WORKER_TIMEOUT")
graceful_timeout = 30
# How long a stopping worker still does its queued shadow runs (well within the above).
SHADOW_EXIT_SECONDS = 10
keepalive = 5
# The heartbeat file on tmpfs: on a full disk, fchmod would block the worker.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
limit_request_line = 8190
limit_request_field_size = 8190
# Off by default: the application writes one line per request itself, the hot path's too
# (MODELPORT_REQUEST_LOG, ops.request_log), at a fraction of the cost.
accesslog = "-" if os.environ.get("MODELPORT_ACCESS_LOG", "false").strip().lower() in _ON else None
# The path without its query string (%(U)s, not the request line %(r)s): a client that puts a
# token in the URL is refused, and the token must not reach the log either.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss "%(a)s" %({x-request-id}o)s'
errorlog = "-"
# gunicorn 27's control socket sits at one fixed path, so a second server on the machine (a
# test, a benchmark, `make run`) would take it over; nothing here uses it. Older versions
# ignore the name.
control_socket_disable = True


def post_fork(server, worker):  # noqa: ANN001, ANN201, ARG001
    """A pool created in the master (``preload_app``) must not share connections with workers."""
    if not server.cfg.preload_app:
        return  # each worker builds its own app, and its own engine, after the fork
    from modelport.extensions import dispose_engines

    app = worker.app.wsgi()
    if "sqlalchemy" not in getattr(app, "extensions", {}):
        return  # not Modelport (another app served with this configuration): no engines
    with app.app_context():
        # close=False: the parent's sockets stay open for the parent; the child forgets them.
        dispose_engines(close=False)


def post_worker_init(worker):  # noqa: ANN001, ANN201
    """Each worker rolls up new prediction records every MODELPORT_ROLLUP_SECONDS, and reads
    the MLflow aliases of the models that follow one every MODELPORT_MLFLOW_POLL_SECONDS."""
    app = worker.app.wsgi()
    if "sqlalchemy" not in getattr(app, "extensions", {}):
        return  # not Modelport
    from modelport.analytics import schedule
    from modelport.mlops import follow

    schedule.start(app)
    follow.start(app)


def on_starting(server):  # noqa: ANN001, ANN201, ARG001
    """Counting starts at zero: the files of an earlier server in the directory go."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        for entry in os.scandir(directory):
            if entry.name.endswith(".db") and entry.is_file():
                os.unlink(entry.path)


def child_exit(server, worker):  # noqa: ANN001, ANN201, ARG001
    """A dead worker's live gauges (pool connections) leave the sums; its counters stay."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # prometheus-client's only: the master creates no metrics (no files of its own).
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def worker_exit(server, worker):  # noqa: ANN001, ANN201, ARG001
    """What the worker only noted (metrics, request log lines) is written, and the shadow
    runs it still holds are done, before it goes."""
    from modelport.ops import flusher
    from modelport.serving import variants

    deadline = time.monotonic() + SHADOW_EXIT_SECONDS
    while time.monotonic() < deadline and variants.run_queued():
        pass  # each call does what is queued; a run may queue nothing more, so this ends
    flusher.flush_all()


def on_exit(server):  # noqa: ANN001, ANN201, ARG001
    """The metrics directory this configuration made goes with the server."""
    if _OWN_METRICS_DIR:
        shutil.rmtree(_OWN_METRICS_DIR, ignore_errors=True)
