"""deploy/compose.yaml keeps the promises docs/deploy.md makes of it.

Read with PyYAML (no Docker engine, nor the compose plugin, runs here): ``<<`` merge keys
are resolved as Compose resolves them, ``${...}`` left as written.
"""

from __future__ import annotations

import re

import pytest
import yaml

from .dockerfile import DOCKERFILE, ROOT, stages

COMPOSE = ROOT / "deploy" / "compose.yaml"
EXAMPLE = ROOT / "deploy" / "env.example"
ONE_SHOT = {"migrate"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


def _env(service: dict) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.partition("=")[::2] for item in environment)
    return {k: str(v) for k, v in environment.items()}


def test_the_services(services: dict[str, dict]) -> None:
    assert set(services) == {"nginx", "app", "migrate", "db", "redis", "mlflow"}
    for name in ("app", "migrate"):
        assert services[name]["image"].startswith("${MODELPORT_IMAGE:-modelport")
        assert services[name]["build"]["context"] == ".."
        assert (COMPOSE.parent / services[name]["build"]["context"] / "Dockerfile").is_file()
    assert services["app"]["command"] == ["serve"]
    # The image carries the driver of the database URL compose gives it.
    build = stages(DOCKERFILE.read_text())[0]
    (wheels,) = [r.arguments for r in build.all("RUN") if "pip wheel" in r.arguments]
    assert "postgres" in re.search(r"\.\[([\w,]+)\]", wheels)[1].split(",")
    assert _env(services["app"])["MODELPORT_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert services["migrate"]["command"] == ["migrate"]
    # Debian's official images (not alpine): the nginx image is the official one.
    assert re.fullmatch(r"nginx:[\d.]+", services["nginx"]["image"])
    assert re.fullmatch(r"postgres:\d+", services["db"]["image"])
    assert re.fullmatch(r"redis:\d+", services["redis"]["image"])


def test_every_long_running_service_has_a_healthcheck(services: dict[str, dict]) -> None:
    for name, service in services.items():
        check = service.get("healthcheck", {})
        if name in ONE_SHOT:
            # It exits when done: the image's HEALTHCHECK means nothing for it.
            assert check == {"disable": True}, name
            assert service["restart"] == "no"
            continue
        assert not check.get("disable"), name
        test = check.get("test")
        assert isinstance(test, list) and test[0] == "CMD" and len(test) > 1, name
        assert "curl" not in test and "wget" not in test, f"{name}: the image may not have it"
    assert services["app"]["healthcheck"]["test"] == ["CMD", "modelport-entrypoint", "healthcheck"]
    # The image's own HEALTHCHECK runs the same command.
    (image_check,) = stages(DOCKERFILE.read_text())[-1].all("HEALTHCHECK")
    assert '["modelport-entrypoint", "healthcheck"]' in image_check.arguments


def test_the_app_waits_for_the_migration_and_healthy_services(services: dict[str, dict]) -> None:
    # It starts after nginx, whose network it joins (network_mode implies it).
    assert services["app"]["network_mode"] == "service:nginx"
    assert services["app"]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "db": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}


def test_only_nginx_publishes_a_port_and_gunicorn_listens_behind_it(
    services: dict[str, dict],
) -> None:
    published = {name for name, s in services.items() if s.get("ports")}
    assert published == {"nginx"}
    assert services["nginx"]["ports"] == ["${MODELPORT_HTTP_PORT:-8080}:8080"]
    nginx_conf = (ROOT / "deploy" / "nginx" / "modelport.conf").read_text()
    assert re.search(r"^\s*listen 8080;", nginx_conf, re.M)
    assert re.search(r"^\s*server 127\.0\.0\.1:8000;", nginx_conf, re.M)
    app = services["app"]
    # The app shares nginx's network namespace: nginx reaches it on loopback, and nothing
    # else can, because gunicorn listens on loopback only.
    assert app["network_mode"] == "service:nginx"
    assert _env(app)["MODELPORT_BIND"] == "127.0.0.1:8000"
    for name, service in services.items():
        assert "expose" not in service, name


def test_proxy_hops_is_one_on_the_app_only(services: dict[str, dict]) -> None:
    assert _env(services["app"])["MODELPORT_PROXY_HOPS"] == "1"
    assert "MODELPORT_PROXY_HOPS" not in _env(services["migrate"])


def test_nginx_runs_the_shipped_config_read_only(services: dict[str, dict]) -> None:
    nginx = services["nginx"]
    mounts = {}
    for volume in nginx["volumes"]:
        source, target, mode = volume.split(":")
        mounts[target] = (source, mode)
    assert mounts == {
        "/etc/nginx/nginx.conf": ("./nginx/nginx.conf", "ro"),
        "/etc/nginx/modelport.conf": ("./nginx/modelport.conf", "ro"),
    }
    for source, _ in mounts.values():
        assert (COMPOSE.parent / source).is_file(), source
    # The main config includes modelport.conf from its own folder.
    assert "include modelport.conf;" in (ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
    assert nginx["entrypoint"][:3] == ["nginx", "-e", "stderr"]
    assert nginx["user"] != "0" and not nginx["user"].startswith("root")


def test_containers_of_the_image_run_hardened(services: dict[str, dict]) -> None:
    for name in ("nginx", "app", "migrate"):
        service = services[name]
        assert service["read_only"] is True, name
        assert service["tmpfs"] == ["/tmp"], name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name


def test_named_volumes_hold_the_data(compose: dict, services: dict[str, dict]) -> None:
    assert set(compose["volumes"]) == {"db-data", "app-data", "mlflow-data"}
    assert "db-data:/var/lib/postgresql/data" in services["db"]["volumes"]
    image_env = stages(DOCKERFILE.read_text())[-1].env()
    assert image_env["MODELPORT_ARTIFACTS_DIR"].startswith("/data/")
    assert "app-data:/data" in services["app"]["volumes"]
    assert "mlflow-data:/mlflow" in services["mlflow"]["volumes"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith("./") or source in compose["volumes"], (name, volume)


def test_mlflow_is_optional(services: dict[str, dict]) -> None:
    assert services["mlflow"]["profiles"] == ["mlflow"]
    for name, service in services.items():
        if name != "mlflow":
            assert "profiles" not in service, name
            assert "mlflow" not in service.get("depends_on", {}), name
    assert _env(services["app"])["MODELPORT_MLFLOW_TRACKING_URI"] == (
        "${MODELPORT_MLFLOW_TRACKING_URI:-}"
    )


def test_secrets_come_from_deploy_env_and_none_is_committed(services: dict[str, dict]) -> None:
    required = {"MODELPORT_SECRET_KEY", "MODELPORT_BASE_URL", "POSTGRES_PASSWORD"}
    text = COMPOSE.read_text()
    for name in required:
        # Required: compose refuses to start without them, naming the file.
        assert re.search(rf"\$\{{{name}:\?[^}}]*deploy/\.env", text), name
    for service in services.values():
        for key, value in _env(service).items():
            if re.search(r"SECRET|PASSWORD|TOKEN", key):
                # From deploy/.env: required, or optional and empty by default; never a value.
                optional = value == f"${{{key}:-}}"
                assert value.startswith("${") and (":?" in value or optional), f"{key}={value}"
    assert "postgresql+psycopg://modelport:${POSTGRES_PASSWORD:?" in text
    example = {}
    for line in EXAMPLE.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            example[key] = value
    assert required <= set(example)
    assert example["MODELPORT_SECRET_KEY"] == "" and example["POSTGRES_PASSWORD"] == ""
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in ignored, "deploy/.env must stay out of git"
