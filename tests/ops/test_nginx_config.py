"""The shipped nginx config (``deploy/nginx``) and the app agree.

Each location's body limit is the app's own for the routes it serves, the proxy's timeouts
and header sizes are gunicorn's, the main config writes only under /tmp, and the app marks
its streamed answers so that nginx passes them on as they come. The config is read as text
here; ``tests/ops/test_slow_clients.py`` runs it in front of gunicorn.
"""

from __future__ import annotations

import ast
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask

from modelport.api.v2 import infer_body_limit
from modelport.config import read_settings, typed_settings
from modelport.serving.web.blueprint import MULTIPART_OVERHEAD
from tests.support.html import csrf_token
from tests.support.models import IRIS_ROW, register_demo
from tests.support.servers import server_settings
from tests.support.users import make_user

gunicorn_conf = server_settings()

ROOT = Path(__file__).resolve().parents[2]
NGINX = ROOT / "deploy" / "nginx"
DEFAULTS = read_settings({})
TYPED = typed_settings(DEFAULTS)
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


@dataclass
class Block:
    """A directive of nginx's configuration: its arguments and, for a block, its children."""

    name: str
    args: list[str]
    children: list[Block] = field(default_factory=list)

    def all(self, name: str) -> list[Block]:
        return [child for child in self.children if child.name == name]

    def one(self, name: str) -> Block:
        (found,) = self.all(name)
        return found

    def value(self, name: str) -> list[str] | None:
        found = self.all(name)
        assert len(found) <= 1, f"{name} is set twice in {self.name} {self.args}"
        return found[0].args if found else None


# Comments, quoted strings, punctuation, words: a '#' inside quotes is not a comment.
_TOKEN = re.compile(r"""#[^\n]*|'[^']*'|"[^"]*"|[{};]|[^\s{};'"#]+""")


def parse(text: str) -> Block:
    """nginx's configuration syntax (directives, blocks, quotes, comments) as a tree."""
    root = Block("main", [])
    stack = [root]
    words: list[str] = []
    for token in _TOKEN.findall(text):
        if token.startswith("#"):
            continue
        if token == ";":
            stack[-1].children.append(Block(words[0], words[1:]))
            words = []
        elif token == "{":
            block = Block(words[0], words[1:])
            stack[-1].children.append(block)
            stack.append(block)
            words = []
        elif token == "}":
            assert not words, f"unterminated directive {words}"
            stack.pop()
        else:
            words.append(token.strip("'\"") if token[0] in "'\"" else token)
    assert len(stack) == 1 and not words, "unbalanced configuration"
    return root


def size(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kmg]?)", value.lower()).groups()
    return int(number) * SIZE_UNITS[unit]


def seconds(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(s?)", value).groups()
    return int(number)


def server() -> Block:
    return parse((NGINX / "modelport.conf").read_text()).one("server")


def location_for(server: Block, path: str) -> Block:
    """The location nginx picks for ``path``: an exact match, else the longest prefix unless
    a regular expression matches first (in the order written)."""
    locations = server.all("location")
    exact = [b for b in locations if b.args[0] == "=" and b.args[1] == path]
    if exact:
        return exact[0]
    prefixes = [b for b in locations if len(b.args) == 1 and path.startswith(b.args[0])]
    longest = max(prefixes, key=lambda b: len(b.args[0]), default=None)
    for block in locations:
        if block.args[0] in ("~", "~*"):
            flags = re.IGNORECASE if block.args[0] == "~*" else 0
            if re.search(block.args[1], path, flags):
                return block
    assert longest is not None, f"no location for {path}"
    return longest


def body_limit(server: Block, path: str) -> int:
    location = location_for(server, path)
    value = location.value("client_max_body_size") or server.value("client_max_body_size")
    assert value, "client_max_body_size must be set explicitly"
    return size(value[0])


# The app's body limit per endpoint, from its own code (the views marked with
# modelport.ops.inputs.body_limit, and v2.infer_body_limit).
CSV_LIMIT = DEFAULTS["CSV_MAX_BYTES"]
UPLOAD_LIMIT = DEFAULTS["UPLOAD_MAX_BYTES"]
DATASET_LIMIT = DEFAULTS["DATASET_MAX_BYTES"]
PREDICT_ENDPOINTS = {"api_models.predict", "api_models.predict_version"}
APP_LIMITS: dict[str, int] = {
    **dict.fromkeys(PREDICT_ENDPOINTS, CSV_LIMIT),
    "api_models.upload_version": UPLOAD_LIMIT,
    "serving.batch": CSV_LIMIT + MULTIPART_OVERHEAD,
    "serving.admin_upload": UPLOAD_LIMIT,
    "api_datasets.upload_dataset": DATASET_LIMIT + MULTIPART_OVERHEAD,
    "analytics.upload": DATASET_LIMIT + MULTIPART_OVERHEAD,
}
V2_INFER = {"v2.infer", "v2.version_infer"}


def _sample_path(rule: str) -> str:
    """A path of ``rule`` with each variable filled in (whole numbers for numbers)."""
    return re.sub(
        r"<(?:(\w+)(?:\([^)]*\))?:)?\w+>", lambda m: "1" if m[1] == "int" else "iris", rule
    )


def test_each_location_allows_the_body_the_app_allows_on_its_routes(app: Flask) -> None:
    """Every route that takes a body, as the app routes it today."""
    routes = app.url_map.bind("localhost")
    site = server()
    tried = set()
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods & {"POST", "PUT", "PATCH"}):
            paths = [_sample_path(rule.rule)]
            if rule.endpoint in PREDICT_ENDPOINTS:
                paths.append(paths[0].replace("/iris/", "/iris@champion/"))
            for path in paths:
                assert routes.match(path, method=method)[0] == rule.endpoint, path
                tried.add(rule.endpoint)
                if rule.endpoint in V2_INFER:
                    continue  # below: the app's limit depends on the model
                expected = APP_LIMITS.get(rule.endpoint, DEFAULTS["MAX_CONTENT_LENGTH"])
                assert body_limit(site, path) == expected, (method, path, rule.endpoint)
    assert set(APP_LIMITS) | V2_INFER <= tried


def test_v2_inference_allows_a_full_batch_of_models_up_to_the_documented_width(
    demo_models: dict[str, Any],
) -> None:
    """The app lets a /v2 body grow with the model's width; nginx allows CSV_MAX_BYTES,
    which the config's comment says covers 1118 features."""
    site = server()
    limit = body_limit(site, "/v2/models/digits/infer")
    assert limit == body_limit(site, "/v2/models/digits/versions/3/infer") == CSV_LIMIT
    for trained in demo_models.values():
        assert infer_body_limit(TYPED, trained.sample.shape[1]) <= limit, trained.name
    assert infer_body_limit(TYPED, 1118) <= limit < infer_body_limit(TYPED, 1119)
    assert infer_body_limit(TYPED, 64) == 15_425_536  # "14.7 MiB" for digits


def _raising_functions(path: Path) -> set[str]:
    """Functions of ``path`` that assign ``request.max_content_length``."""
    found = set()
    for function in ast.walk(ast.parse(path.read_text())):
        if isinstance(function, ast.FunctionDef):
            for node in ast.walk(function):
                if isinstance(node, ast.Assign) and any(
                    ast.unparse(target) == "request.max_content_length" for target in node.targets
                ):
                    found.add(function.name)
    return found


def test_no_view_raises_its_body_limit_without_a_location_here(app: Flask) -> None:
    """A view that takes bodies over the general limit is marked with ``body_limit`` and needs
    a location in modelport.conf (and an entry in APP_LIMITS above): these are all there are,
    and nothing else raises ``request.max_content_length`` but the one preprocessor (and /v2,
    whose limit depends on the model)."""
    marked = {
        endpoint
        for endpoint, view in app.view_functions.items()
        if getattr(view, "body_limit", None) is not None
    }
    assert marked == set(APP_LIMITS)
    raising = {
        f"{path.relative_to(ROOT)}:{name}"
        for path in (ROOT / "modelport").rglob("*.py")
        for name in _raising_functions(path)
    }
    assert raising == {
        "modelport/ops/inputs.py:apply_body_limit",
        "modelport/api/v2.py:infer",  # its nested read, below
        "modelport/api/v2.py:read",
    }


def test_the_proxy_keeps_gunicorns_limits_and_buffers_whole_requests() -> None:
    site = server()
    assert site.value("listen") == ["8080"]
    main = parse((NGINX / "modelport.conf").read_text())
    (upstream,) = main.all("upstream")
    assert upstream.value("server") == ["127.0.0.1:8000"]
    assert upstream.value("keepalive") is None  # gunicorn closes every connection
    for location in site.all("location"):
        if not location.args[0].startswith("@"):
            assert location.value("proxy_pass") == [f"http://{upstream.args[0]}"]
    assert site.value("proxy_request_buffering") == ["on"]
    assert site.value("proxy_buffering") == ["on"]
    assert site.value("proxy_http_version") == ["1.1"]
    assert seconds(site.value("proxy_read_timeout")[0]) == gunicorn_conf.timeout
    count, buffer = site.value("large_client_header_buffers")
    assert int(count) >= 2
    assert size(buffer) == gunicorn_conf.limit_request_line + 2  # and its CRLF
    assert gunicorn_conf.limit_request_field_size == gunicorn_conf.limit_request_line
    assert seconds(site.value("client_header_timeout")[0]) <= 10
    assert seconds(site.value("client_body_timeout")[0]) <= 30
    headers = {b.args[0]: b.args[1] for b in site.all("proxy_set_header")}
    assert headers["X-Forwarded-For"] == "$proxy_add_x_forwarded_for"
    assert headers["X-Request-ID"] == "$modelport_request_id"
    assert {"X-Forwarded-Proto", "X-Forwarded-Host"} <= set(headers)


def test_the_main_config_writes_only_to_tmp_and_logs_to_the_standard_streams() -> None:
    main = parse((NGINX / "nginx.conf").read_text())
    assert main.value("pid")[0].startswith("/tmp/")
    assert main.value("error_log")[0] == "stderr"
    assert main.value("user") is None  # not root: nothing to switch to
    assert int(main.one("events").value("worker_connections")[0]) >= 4096
    http = main.one("http")
    temp_paths = [b for b in http.children if b.name.endswith("_temp_path")]
    assert {b.name for b in temp_paths} == {
        f"{kind}_temp_path" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    }
    assert all(b.args[0].startswith("/tmp/") for b in temp_paths)
    assert http.value("include") == ["modelport.conf"]
    assert server().value("access_log")[0] == "/dev/stdout"


# ---- the app's streamed answers ------------------------------------------------------------


def test_streamed_csv_answers_tell_nginx_to_pass_them_on_unbuffered(
    app_factory: Any, demo_models: dict[str, Any]
) -> None:
    """X-Accel-Buffering: no on the CSV answers that stream; the others nginx buffers."""
    from modelport.auth import tokens
    from modelport.extensions import db
    from modelport.models import User

    app = app_factory()
    register_demo(app, demo_models, "iris")
    user_id = make_user(app)
    with app.app_context():
        _, token = tokens.create_token(db.session.get(User, user_id), "export")
    client = app.test_client()
    rows = "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n"

    def streamed(response: Any) -> None:
        assert response.status_code == 200, response.get_data(as_text=True)[:500]
        assert response.mimetype == "text/csv"
        assert response.headers["X-Accel-Buffering"] == "no"
        response.get_data()  # to the end (and out of its request context)

    streamed(client.post("/api/v1/models/iris/predict", data=rows, content_type="text/csv"))
    upload = {"file": (io.BytesIO(rows.encode()), "rows.csv")}
    upload["csrf_token"] = csrf_token(client, "/models/iris/batch")
    streamed(client.post("/models/iris/batch", data=upload, content_type="multipart/form-data"))
    # The history page's export link is this API's CSV.
    auth = {"Authorization": f"Bearer {token}"}
    streamed(client.get("/api/v1/predictions?format=csv", headers=auth))

    json_predict = app.test_client().post("/api/v1/models/iris/predict", json={"inputs": IRIS_ROW})
    assert json_predict.status_code == 200
    assert "X-Accel-Buffering" not in json_predict.headers
