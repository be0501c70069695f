"""Guards on what the code relies on inside its libraries (issue 10).

Modelport overrides a few private methods of Flask-Limiter, Flask-Login, flask-smorest and
webargs, reads private attributes of Flask-Login, flask-smorest and prometheus-client, and
follows gunicorn's sync worker in a copy of its own. pyproject.toml bounds each of those libraries to the
versions tested; these tests fail, naming the file to revisit, when an upgrade within the
bounds changes what a hook relies on: the method is still there with the same parameters,
and the library still goes through it (shown by behaviour where that is cheap, by a hash of
the upstream source for the copied gunicorn code).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import webargs.flaskparser
from flask import Flask, g, request
from flask_limiter import Limiter
from flask_login import AnonymousUserMixin, LoginManager, current_user
from flask_migrate import Migrate
from flask_smorest import Api as SmorestApi
from gunicorn import http, sock, util
from gunicorn.config import Config
from gunicorn.http import wsgi
from gunicorn.workers.base import Worker
from gunicorn.workers.sync import StopWaiting, SyncWorker
from marshmallow import Schema
from werkzeug.exceptions import HTTPException

from modelport.api import Api
from modelport.api.parser import ApiParser, parser
from modelport.errors import ApiError
from modelport.extensions import SiteLimiter, SiteLoginManager, db, login_manager
from modelport.serving.flavors import TRUSTED_TYPES

Parameters = list[tuple[str, Any, Any]]


def installed(distribution: str) -> str:
    """The installed version of ``distribution``, for the messages."""
    return f"{distribution} {version(distribution)}"


def parameters(function: Callable[..., Any]) -> Parameters:
    """Name, kind and default of each parameter (annotations left out: their spelling varies)."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def same_parameters(function: Callable[..., Any], like: Callable[..., Any], revisit: str) -> None:
    assert parameters(function) == parameters(like), (
        f"{function.__module__}.{function.__qualname__} changed its parameters "
        f"{inspect.signature(function)}: revisit {revisit}"
    )


def _positional(*names: str) -> Callable[..., None]:
    """A stand-in whose signature is ``names``, all positional-or-keyword without defaults."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD

    def stand_in(*args: Any) -> None: ...

    stand_in.__signature__ = inspect.Signature([inspect.Parameter(n, kind) for n in names])  # type: ignore[attr-defined]
    return stand_in


# --- Flask-Limiter: SiteLimiter._check_request_limit (modelport/extensions.py) -------------

LIMITER = "modelport/extensions.py (SiteLimiter)"


def test_flask_limiter_check_request_limit_keeps_its_parameters() -> None:
    def expected(self, callable_name=None, in_middleware=True): ...  # noqa: ANN001, ANN202

    same_parameters(Limiter._check_request_limit, expected, LIMITER)
    same_parameters(SiteLimiter._check_request_limit, expected, LIMITER)


def test_flask_limiter_checks_each_request_through_check_request_limit(app: Flask) -> None:
    checks = [getattr(f, "__func__", None) for f in app.before_request_funcs.get(None, [])]
    assert SiteLimiter._check_request_limit in checks, (
        f"{installed('flask-limiter')} no longer registers _check_request_limit "
        f"as its per-request check: revisit {LIMITER}"
    )


def test_a_view_that_counts_its_own_budget_skips_the_default_limit() -> None:
    site = Flask("limiter_probe")
    limiter = SiteLimiter(
        key_func=lambda: "one", default_limits=["1 per minute"], storage_uri="memory://"
    )
    limiter.init_app(site)

    @site.get("/marked")
    def marked() -> str:
        return "ok"

    marked.own_rate_limit = True  # type: ignore[attr-defined]  (as prediction_limit marks)

    @site.get("/plain")
    def plain() -> str:
        return "ok"

    client = site.test_client()
    plain_statuses = [client.get("/plain").status_code for _ in range(2)]
    assert plain_statuses == [200, 429]  # the default limit applies to an unmarked view
    marked_statuses = [client.get("/marked").status_code for _ in range(2)]
    assert marked_statuses == [200, 200], (
        f"{installed('flask-limiter')} counted a view marked own_rate_limit: "
        f"its per-request check no longer goes through _check_request_limit; revisit {LIMITER}"
    )


# --- Flask-Login: _session_protection_failed, _load_user and g._login_user ------------------
# (modelport/extensions.py SiteLoginManager; modelport/errors.py; modelport/api/v2.py)

LOGIN = "modelport/extensions.py (SiteLoginManager), modelport/errors.py and modelport/api/v2.py"


def test_flask_login_private_methods_keep_their_parameters() -> None:
    same_parameters(LoginManager._session_protection_failed, _positional("self"), LOGIN)
    same_parameters(SiteLoginManager._session_protection_failed, _positional("self"), LOGIN)
    same_parameters(LoginManager._load_user, _positional("self"), LOGIN)


def test_flask_login_does_not_fingerprint_the_caller(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flask-Login's session protection hashes address and user agent on each request; the
    override skips it. If Flask-Login stops calling _session_protection_failed, it hashes."""
    calls: list[str] = []

    def counting() -> str:
        calls.append("ident")
        return "ident"

    monkeypatch.setattr(login_manager, "_session_identifier_generator", counting)
    with app.test_request_context("/"):
        LoginManager._session_protection_failed(login_manager)  # upstream's own: it hashes
    assert calls == ["ident"]
    calls.clear()
    page = app.test_client().get("/")
    assert page.status_code == 200
    assert calls == [], (
        f"{installed('flask-login')} fingerprinted the caller: it no longer goes "
        f"through _session_protection_failed; revisit {LOGIN}"
    )


def test_flask_login_keeps_the_caller_in_g_login_user(app: Flask) -> None:
    """errors.py and v2.py set ``g._login_user`` to make the caller anonymous without loading
    them, and errors.py calls ``_load_user()`` to resolve them early."""
    refused = {"Authorization": "Bearer not-a-token"}  # loading this caller raises
    with app.test_request_context("/", headers=refused):
        anonymous = login_manager.anonymous_user()
        g._login_user = anonymous
        assert current_user._get_current_object() is anonymous, (
            f"{installed('flask-login')} no longer reads the caller from "
            f"g._login_user: revisit {LOGIN}"
        )
    with app.test_request_context("/"):
        assert "_login_user" not in g
        login_manager._load_user()
        assert "_login_user" in g, (
            f"{installed('flask-login')}'s _load_user() no longer stores the caller "
            f"in g._login_user: revisit {LOGIN}"
        )
        assert isinstance(g._login_user, AnonymousUserMixin)
        assert current_user._get_current_object() is g._login_user
        db.session.rollback()


# --- flask-smorest: Api._register_error_handlers, view._apidoc ------------------------------
# (modelport/api/__init__.py; modelport/api/blueprint.py Blueprint.doc_only)

SMOREST_ERRORS = "modelport/api/__init__.py (Api._register_error_handlers)"
SMOREST_DOC = "modelport/api/blueprint.py (Blueprint.doc_only)"


def _smorest_app() -> Flask:
    probe = Flask("smorest_probe")
    probe.config.update(API_TITLE="probe", API_VERSION="1", OPENAPI_VERSION="3.0.3")
    return probe


def _handlers(probe: Flask) -> list[Callable[..., Any]]:
    return [
        handler
        for per_blueprint in probe.error_handler_spec.values()
        for per_code in per_blueprint.values()
        for handler in per_code.values()
    ]


def test_flask_smorest_registers_its_error_handlers_through_the_hook() -> None:
    same_parameters(SmorestApi._register_error_handlers, _positional("self"), SMOREST_ERRORS)
    stock = _smorest_app()
    SmorestApi().init_app(stock)
    assert _handlers(stock), "flask-smorest registers an error handler of its own"
    ours = _smorest_app()
    SmorestApi.init_app(Api(), ours)  # flask-smorest's init_app, with the override in place
    assert _handlers(ours) == [], (
        f"{installed('flask-smorest')} registered error handlers past "
        f"_register_error_handlers: revisit {SMOREST_ERRORS}"
    )


def test_flask_smorest_documents_a_doc_only_view(app: Flask) -> None:
    """``doc_only`` copies the ``_apidoc`` attribute flask-smorest's decorators write."""
    spec = app.test_client().get("/api/openapi.json").get_json()
    predict = spec["paths"]["/api/v1/models/{ref}/predict"]["post"]
    assert {"200", "422", "503"} <= set(predict["responses"]) and "requestBody" in predict, (
        f"{installed('flask-smorest')} no longer documents a view from its "
        f"_apidoc attribute: revisit {SMOREST_DOC}"
    )


# --- webargs: ApiParser._raw_load_json (modelport/api/parser.py) ----------------------------

PARSER = "modelport/api/parser.py (ApiParser._raw_load_json)"


def test_webargs_raw_load_json_keeps_its_parameters() -> None:
    expected = _positional("self", "req")
    same_parameters(webargs.flaskparser.FlaskParser._raw_load_json, expected, PARSER)
    same_parameters(ApiParser._raw_load_json, expected, PARSER)


def test_webargs_reads_json_bodies_through_raw_load_json(app: Flask) -> None:
    """A JSON body sent as text/plain: webargs alone reads it as no body at all."""
    body = {"data": b'{"name": "x"}', "content_type": "text/plain"}
    refused: HTTPException | None = None
    with app.test_request_context("/api/v1/tokens", method="POST", **body):
        try:
            parser.load_json(request, Schema())
        except HTTPException as exc:
            refused = exc
    assert isinstance(refused, ApiError) and refused.error_code == "invalid_content_type", (
        f"{installed('webargs')}'s load_json no longer reads the body through "
        f"_raw_load_json: revisit {PARSER}"
    )


# --- Flask-Migrate: the app's extensions["migrate"] (modelport/ops/health.py, migrations) ----


def test_flask_migrate_keeps_its_config_object(app: Flask) -> None:
    config = app.extensions["migrate"]
    revisit = "modelport/ops/health.py and modelport/migrations/env.py"
    assert isinstance(config.migrate, Migrate), f"revisit {revisit}"
    assert config.db is db, f"revisit {revisit}"
    assert config.configure_args.get("render_as_batch") is True, f"revisit {revisit}"


# --- scikit-learn: private classes trusted by name (modelport/serving/flavors.py) -----------


@pytest.mark.parametrize("name", sorted(TRUSTED_TYPES))
def test_every_trusted_scikit_learn_type_still_exists(name: str) -> None:
    module, _, attribute = name.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError):
        found = None
    assert inspect.isclass(found), (
        f"scikit-learn moved {name}: models that hold it are refused as untrusted; "
        "update TRUSTED_TYPES in modelport/serving/flavors.py"
    )


# --- gunicorn: GroupWorker follows SyncWorker (modelport/ops/worker.py) ---------------------

WORKER = "modelport/ops/worker.py (GroupWorker)"
# sha256 of inspect.getsource() of the SyncWorker methods GroupWorker follows, in gunicorn
# 27.0.1: run_for_one, handle and handle_request are copied (as generators), accept's first
# lines are _accept, and run must still hand one listening socket to run_for_one.
SYNC_WORKER_SOURCES = {
    "run": "0e129efc34636abadd46284e8c21c555e047956fa62280e322195d2c847713b5",
    "accept": "0ca51efcb38a77788585f963dcfd072abd650ff88403f8836f1ad9d927b6bd24",
    "run_for_one": "d3cad6476a5a7cb71fe12024b9bf4f560278bca712c5573d2ff6629e40e50049",
    "handle": "dde5313b59db58250f56e87006491b8f506e03079b16787d4ddbee27a9ef8991",
    "handle_request": "c706b9604ab86dd826389ae6261fcc7732732a80d28c0e3ef6e8bb1f564d709f",
}


def test_gunicorn_sync_worker_is_what_group_worker_follows() -> None:
    changed = {
        name: hashlib.sha256(inspect.getsource(getattr(SyncWorker, name)).encode()).hexdigest()
        for name in SYNC_WORKER_SOURCES
    }
    changed = {name: h for name, h in changed.items() if h != SYNC_WORKER_SOURCES[name]}
    assert not changed, (
        f"gunicorn's sync worker changed ({installed('gunicorn')}, SyncWorker."
        f"{', SyncWorker.'.join(changed)}): compare {WORKER} with it and update the hashes "
        f"in tests/test_upstream.py ({changed})"
    )


def test_gunicorn_helpers_the_group_worker_calls_keep_their_parameters() -> None:
    def get_parser(cfg, source, source_addr, http2_connection=False): ...  # noqa: ANN001, ANN202

    def create(req, sock, client, server, cfg, response_class=None, response_args=()): ...  # noqa: ANN001, ANN202

    def close_graceful(sock, timeout=2.0, max_drain=65536): ...  # noqa: ANN001, ANN202

    def reraise(tp, value, tb=None): ...  # noqa: ANN001, ANN202

    same_parameters(http.get_parser, get_parser, WORKER)
    same_parameters(wsgi.create, create, WORKER)
    same_parameters(util.close_graceful, close_graceful, WORKER)
    same_parameters(util.reraise, reraise, WORKER)
    same_parameters(util.close_on_exec, _positional("fd"), WORKER)
    same_parameters(sock.ssl_wrap_socket, _positional("sock", "conf"), WORKER)
    same_parameters(
        Worker.handle_error, _positional("self", "req", "client", "addr", "exc"), WORKER
    )
    same_parameters(SyncWorker.wait, _positional("self", "timeout"), WORKER)
    same_parameters(SyncWorker.is_parent_alive, _positional("self"), WORKER)
    same_parameters(Worker.notify, _positional("self"), WORKER)
    assert issubclass(StopWaiting, Exception), f"revisit {WORKER}"


class _RecvOnly:
    """A socket as ``_HeadDeadline`` presents it to gunicorn's parser: ``recv`` and no more."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.sizes: list[int] = []

    def recv(self, size: int) -> bytes:
        self.sizes.append(size)
        chunk, self.data = self.data[:size], self.data[size:]
        return chunk


def test_gunicorn_parser_reads_the_socket_with_recv_only() -> None:
    """GroupWorker hands the parser a wrapper whose ``recv`` enforces the head deadline."""
    source = _RecvOnly(b"POST /predict?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}")
    try:
        request_ = next(http.get_parser(Config(), source, ("127.0.0.1", 1)))
    except AttributeError as exc:
        pytest.fail(f"gunicorn's parser needs more of the socket than recv ({exc}): {WORKER}")
    assert (request_.method, request_.path) == ("POST", "/predict")
    assert request_.body.read() == b"{}"
    assert source.sizes, f"gunicorn's parser did not read through recv(): revisit {WORKER}"


def test_xdist_loadgroup_keeps_a_group_on_one_worker(tmp_path: Path) -> None:
    """``make test`` runs ``--dist loadgroup`` so that the tests of one ``xdist_group`` (the
    slow-client and packaging tests, the browser's live server) share a worker instead of
    loading both at once. pytest-xdist marks them by rewriting ``item._nodeid``, which pytest
    9.2 no longer reads (its ``nodeid`` comes from ``_id``): with that pair the groups are
    silently spread over the workers. pyproject.toml keeps pytest below 9.2 until xdist
    follows; this fails when an upgrade breaks grouping again."""
    (tmp_path / "test_grouped.py").write_text(
        "import os, pathlib, pytest\n"
        "@pytest.mark.xdist_group('one')\n"
        "@pytest.mark.parametrize('i', range(6))\n"
        "def test_grouped(i):\n"
        "    worker = os.environ['PYTEST_XDIST_WORKER']\n"
        "    pathlib.Path(__file__).with_name(f'ran-{i}').write_text(worker)\n"
        "@pytest.mark.parametrize('i', range(6))\n"
        "def test_free(i):\n"
        "    pass\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-q", "-p"]
        + ["no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    workers = {path.read_text() for path in tmp_path.glob("ran-*")}
    assert len(list(tmp_path.glob("ran-*"))) == 6, run.stdout
    assert len(workers) == 1, (
        f"pytest {version('pytest')} with pytest-xdist {version('pytest-xdist')} spread one "
        f"xdist_group over {sorted(workers)}: --dist loadgroup does not group (see above)"
    )


# ---- prometheus-client (modelport/ops/metrics.py) ----------------------------------------


def test_prometheus_histogram_takes_a_tally_like_observations() -> None:
    """ops.metrics writes a tally of observations into a histogram's buckets and sum (its
    private ``_upper_bounds``, ``_buckets`` and ``_sum``): the same text as observing each."""
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from modelport.ops.metrics import _observe_many

    seen = [0.003, 0.02, 0.02, 0.4, 7.0, 42.0]
    one, many = CollectorRegistry(), CollectorRegistry()
    observed = Histogram("t", "t", ("route",), registry=one).labels("/x")
    tallied = Histogram("t", "t", ("route",), registry=many)
    for value in seen:
        observed.observe(value)
    bounds = tuple(tallied._upper_bounds)
    assert bounds[-1] == float("inf")
    tally = [0.0] * (len(bounds) + 1)
    for value in seen:
        tally[next(i for i, bound in enumerate(bounds) if value <= bound)] += 1
        tally[-1] += value
    _observe_many(tallied.labels("/x"), tally)

    def text(registry: CollectorRegistry) -> list[str]:
        return [
            line
            for line in generate_latest(registry).decode().splitlines()
            if not line.startswith("t_created")
        ]

    assert text(many) == text(one)


def test_prometheus_value_class_says_when_it_is_multiprocess(tmp_path: Path) -> None:
    """ops.metrics refuses to start when PROMETHEUS_MULTIPROC_DIR was set too late, telling
    the two value classes apart by their ``_multiprocess`` mark."""
    code = (
        "import prometheus_client.values as v; print(getattr(v.ValueClass, '_multiprocess', False))"
    )
    env = {"PATH": "/usr/bin:/bin"}
    plain = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    shared = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert (plain.stdout.strip(), shared.stdout.strip()) == ("False", "True")
