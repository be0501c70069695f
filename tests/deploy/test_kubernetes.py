"""deploy/k8s: both overlays render with ``kubectl kustomize``, validate strictly with
kubernetes-validate for kubectl's Kubernetes version, and meet
../shared/reference/kubernetes-checklist.md item by item (one test each, on the rendered
objects). Self-contained: no helpers from other test modules."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
KUBECTL = shutil.which("kubectl") or (
    "/usr/bin/kubectl" if Path("/usr/bin/kubectl").exists() else None
)
CONTROLLERS = ("Deployment", "Job", "CronJob")

pytestmark = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl is not installed (CI requires it: .ci/run)"
)


@cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    out = subprocess.run(
        [KUBECTL, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


@cache
def kubernetes_version() -> str:
    """kubectl's own version (its client, e.g. 1.32), which the schemas must match."""
    out = subprocess.run(
        [KUBECTL, "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    client = json.loads(out)["clientVersion"]
    return f"{client['major']}.{re.sub(r'[^0-9]', '', client['minor'])}.0"


def objects(overlay: str, kind: str) -> list[dict[str, Any]]:
    return [doc for doc in render(overlay) if doc["kind"] == kind]


def one(overlay: str, kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects(overlay, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"{overlay}: {len(found)} {kind} objects named {name}"
    return found[0]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return obj["spec"]["template"]["spec"]


def pods(overlay: str) -> list[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every object that makes pods."""
    return [
        (f"{o['kind']}/{o['metadata']['name']}", pod_spec(o))
        for o in render(overlay)
        if o["kind"] in CONTROLLERS
    ]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def server(overlay: str) -> dict[str, Any]:
    return pod_spec(one(overlay, "Deployment", "modelport"))


def container(overlay: str, name: str) -> dict[str, Any]:
    (found,) = [c for c in containers(server(overlay)) if c["name"] == name]
    return found


def settings(overlay: str) -> dict[str, str]:
    (config,) = [
        c
        for c in objects(overlay, "ConfigMap")
        if c["metadata"]["name"].startswith("modelport-settings")
    ]
    return config["data"]


def secret_files(overlay: str) -> dict[str, str]:
    """The settings that name files of the mounted Secret (MODELPORT_<NAME>_FILE)."""
    from modelport.config import SECRET_FILES

    names = {f"MODELPORT_{name}_FILE" for name in SECRET_FILES}
    return {k: v for k, v in settings(overlay).items() if k in names}


def kubernetes_validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "kubernetes-validate"),
            "--strict",
            "--kubernetes-version",
            kubernetes_version(),
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


# Rendering and validation -------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates_strictly(overlay: str, tmp_path: Path):
    manifest = tmp_path / f"{overlay}.yaml"
    manifest.write_text(yaml.safe_dump_all(render(overlay)))
    result = kubernetes_validate(manifest, K8S / "secret.example.yaml")

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # An unknown kind is only a warning with exit code 0: warnings fail too.
    assert not re.search(r"^(WARN|ERROR)", output, flags=re.M), output
    assert output.count(" passed for resource ") == len(render(overlay)) + 1, output


def test_strict_validation_rejects_an_unknown_field(tmp_path: Path):
    deployment = json.loads(json.dumps(one("prod", "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(yaml.safe_dump(deployment))

    assert kubernetes_validate(manifest).returncode != 0


# The checklist, item by item ----------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_namespace_enforces_the_restricted_pod_security_standard(overlay: str):
    namespace = one(overlay, "Namespace")
    labels = namespace["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    name = namespace["metadata"]["name"]
    for obj in render(overlay):
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == name, obj["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configmap_counts_the_ingress_and_the_sidecar_as_proxy_hops(overlay: str):
    values = settings(overlay)
    assert values["MODELPORT_PROXY_HOPS"] == "2"  # ingress controller + nginx sidecar
    assert values["MODELPORT_BIND"].startswith("127.0.0.1:")  # only nginx reaches gunicorn
    assert values["MODELPORT_ENV"] == "production"
    assert all(key.startswith("MODELPORT_") for key in values)
    assert not {"MODELPORT_SECRET_KEY", "MODELPORT_DATABASE_URL"} & set(values)


def test_example_secret_has_placeholders_only_and_every_key_the_pods_read():
    example = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    assert set(example["stringData"].values()) == {"CHANGE-ME"}
    for overlay in OVERLAYS:
        assert not objects(overlay, "Secret"), "no overlay may apply placeholder secrets"
        files = secret_files(overlay)
        assert set(files) >= {"MODELPORT_SECRET_KEY_FILE", "MODELPORT_DATABASE_URL_FILE"}
        for path in files.values():
            assert path.rpartition("/")[2] in example["stringData"], path


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_read_only_files_not_environment_variables(overlay: str):
    files = list(secret_files(overlay).values())
    for where, spec in pods(overlay):
        secret_volumes = {
            v["name"]
            for v in spec.get("volumes", [])
            if v.get("secret", {}).get("secretName") == "modelport-secrets"
        }
        for c in containers(spec):
            label = (where, c["name"])
            assert not any("valueFrom" in env for env in c.get("env", [])), label
            assert not any("secretRef" in source for source in c.get("envFrom", [])), label
            if c["name"] == "nginx":
                assert not secret_volumes & {m["name"] for m in c["volumeMounts"]}
                continue
            (mount,) = [m for m in c["volumeMounts"] if m["name"] in secret_volumes]
            assert mount["readOnly"] is True, label
            assert all(path.startswith(mount["mountPath"] + "/") for path in files), label


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployment_has_no_replicas_field_since_the_hpa_owns_the_count(overlay: str):
    assert "replicas" not in one(overlay, "Deployment")["spec"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_readiness_on_readyz_liveness_on_the_process_only_and_a_startup_probe(
    overlay: str,
):
    app = container(overlay, "app")
    assert app["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # /healthz checks nothing but the process (modelport/ops/health.py).
    assert app["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert app["startupProbe"]["httpGet"]["path"] == "/healthz"
    startup = app["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120  # model loading
    health = (ROOT / "modelport" / "ops" / "health.py").read_text()
    healthz = health.split("def healthz", 1)[1].split("\ndef ", 1)[0]
    assert "db." not in healthz and "engine" not in healthz
    nginx = container(overlay, "nginx")
    assert "livenessProbe" in nginx and "readinessProbe" in nginx


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_cpu_and_memory_requests_and_a_memory_limit(overlay: str):
    for where, spec in pods(overlay):
        for c in containers(spec):
            resources = c.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), (where, c["name"])
            assert "memory" in resources.get("limits", {}), (where, c["name"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_runs_with_the_restricted_security_context(overlay: str):
    for where, spec in pods(overlay):
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, where
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", where
        for c in containers(spec):
            context = c["securityContext"]
            label = (where, c["name"])
            assert context["runAsNonRoot"] is True, label
            assert isinstance(context["runAsUser"], int) and context["runAsUser"] > 0, label
            assert context["allowPrivilegeEscalation"] is False, label
            assert context["capabilities"]["drop"] == ["ALL"], label
            assert "add" not in context["capabilities"], label
            assert context["seccompProfile"]["type"] == "RuntimeDefault", label
            assert context["readOnlyRootFilesystem"] is True, label
            assert not context.get("privileged"), label


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_an_emptydir_at_tmp(overlay: str):
    for where, spec in pods(overlay):
        empty = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for c in containers(spec):
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            assert mounts.get("/tmp") in empty, (where, c["name"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_account_token_is_not_mounted(overlay: str):
    assert one(overlay, "ServiceAccount")["automountServiceAccountToken"] is False
    for where, spec in pods(overlay):
        assert spec["automountServiceAccountToken"] is False, where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_spread_over_zones_and_nodes(overlay: str):
    spec = server(overlay)
    selector = one(overlay, "Deployment")["spec"]["selector"]["matchLabels"]
    keys = set()
    for constraint in spec["topologySpreadConstraints"]:
        assert constraint["maxSkew"] == 1
        assert constraint["labelSelector"]["matchLabels"] == selector
        keys.add(constraint["topologyKey"])
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_init_container_waits_for_the_schema_at_head_and_migrates_nothing(overlay: str):
    from modelport.cli import wait_for_migrations

    (init,) = server(overlay)["initContainers"]
    assert init["args"][0] == wait_for_migrations.name == "wait-for-migrations"
    assert "migrate" not in init["args"] and "upgrade" not in init["args"]
    assert init["image"] == container(overlay, "app")["image"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_targets_the_nginx_sidecar(overlay: str):
    (port,) = one(overlay, "Service")["spec"]["ports"]
    nginx = container(overlay, "nginx")
    (exposed,) = nginx["ports"]
    assert port["targetPort"] in (exposed["name"], exposed["containerPort"])
    assert "ports" not in container(overlay, "app")
    conf = (K8S / "base" / "nginx" / "modelport.conf").read_text()
    assert re.search(rf"^\s*listen {exposed['containerPort']};", conf, flags=re.M)
    assert (
        one(overlay, "Service")["spec"]["selector"]
        == (one(overlay, "Deployment")["spec"]["selector"]["matchLabels"])
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ingress_routes_to_the_service_with_tls_in_prod_only(overlay: str):
    ingress = one(overlay, "Ingress")
    service = one(overlay, "Service")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] == service["spec"]["ports"][0]["name"]
    if overlay == "prod":
        assert ingress["spec"]["tls"][0]["hosts"] == [ingress["spec"]["rules"][0]["host"]]
        assert settings(overlay)["MODELPORT_BASE_URL"].startswith("https://")
    else:
        assert "tls" not in ingress["spec"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_hpa_is_autoscaling_v2_with_at_least_two_replicas(overlay: str):
    hpa = one(overlay, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == one(overlay, "Deployment")["metadata"]["name"]
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    # CPU targets are computed against requests: the app container has one.
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert "cpu" in container(overlay, "app")["resources"]["requests"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pod_disruption_budget_lets_drains_through_and_keeps_one_pod(overlay: str):
    pdb = one(overlay, "PodDisruptionBudget")["spec"]
    minimum = one(overlay, "HorizontalPodAutoscaler")["spec"]["minReplicas"]
    assert (
        pdb["selector"]["matchLabels"]
        == one(overlay, "Deployment")["spec"]["selector"]["matchLabels"]
    )
    if "maxUnavailable" in pdb:
        assert 1 <= pdb["maxUnavailable"] < minimum
    else:
        assert 1 <= pdb["minAvailable"] < minimum


def _peers(rule: dict[str, Any]) -> list[dict[str, Any]]:
    return rule.get("from", rule.get("to", []))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy_is_on_and_allows_only_the_named_peers(overlay: str):
    policies = {p["metadata"]["name"]: p["spec"] for p in objects(overlay, "NetworkPolicy")}
    deny = policies["default-deny"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny

    inbound = policies["modelport-server-ingress"]
    assert inbound["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "server"
    (rule,) = inbound["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    namespaces = {
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for p in rule["from"]
        if "podSelector" not in p
    }
    assert namespaces == {"ingress-nginx", "monitoring"}
    labelled = [p["podSelector"]["matchLabels"] for p in rule["from"] if "podSelector" in p]
    assert {"app.kubernetes.io/name": "mlflow"} in labelled
    assert {"modelport.io/client": "true"} in labelled
    # docs/deploy.md names the client label.
    assert "modelport.io/client" in (ROOT / "docs" / "deploy.md").read_text()

    outbound = policies["modelport-egress"]
    assert outbound["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "modelport"}
    ports = sorted(p["port"] for rule in outbound["egress"] for p in rule["ports"])
    assert ports == [53, 53, 5000, 5432, 6379]  # DNS, MLflow, PostgreSQL, Redis
    for rule in outbound["egress"]:
        assert all("ipBlock" not in peer for peer in _peers(rule))  # never the internet
    # Every pod the overlay makes is covered by the egress policy.
    for obj in render(overlay):
        if obj["kind"] in CONTROLLERS:
            template = (
                obj["spec"]["jobTemplate"]["spec"]["template"]
                if obj["kind"] == "CronJob"
                else obj["spec"]["template"]
            )
            labels = template["metadata"]["labels"]
            assert labels["app.kubernetes.io/name"] == "modelport", obj["metadata"]["name"]


def _job_name_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("migration_job", K8S / "migration_job.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migration_job_name_carries_the_hash_of_migrations_and_the_job(overlay: str):
    (job,) = objects(overlay, "Job")
    expected = _job_name_module().job_name(K8S / "overlays" / overlay, job)
    assert job["metadata"]["name"] == expected, "stale: run `make k8s-migration-job`"
    spec = job["spec"]
    assert spec["backoffLimit"] >= 1 and spec["activeDeadlineSeconds"] > 0
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    assert spec["template"]["spec"]["containers"][0]["image"] == container(overlay, "app")["image"]
    # No Helm-style hooks, and no TTL (a GitOps tool would re-create a Job that vanished).
    annotations = job["metadata"].get("annotations", {})
    assert not any("hook" in key for key in annotations)
    assert "ttlSecondsAfterFinished" not in spec


def test_migration_job_name_changes_with_the_image_tag_and_the_settings():
    module = _job_name_module()
    overlay = K8S / "overlays" / "prod"
    (job,) = objects("prod", "Job")
    names = {module.job_name(overlay, job)}
    retagged = json.loads(json.dumps(job))
    retagged["spec"]["template"]["spec"]["containers"][0]["image"] += "-next"
    names.add(module.job_name(overlay, retagged))
    resettled = json.loads(json.dumps(job))
    resettled["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"][
        "name"
    ] += "x"
    names.add(module.job_name(overlay, resettled))
    assert len(names) == 3
    result = subprocess.run(
        [sys.executable, str(K8S / "migration_job.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prestop_turns_readyz_to_503_and_drains_before_sigterm(overlay: str):
    spec = server(overlay)
    app = container(overlay, "app")
    command = app["lifecycle"]["preStop"]["exec"]["command"]
    assert command[:3] == ["modelport", "drain", "--wait"]
    wait = float(command[3])
    # The drain file is on a writable volume of the app container.
    drain_file = settings(overlay)["MODELPORT_DRAIN_FILE"]
    mounts = [m["mountPath"] for m in app["volumeMounts"]]
    assert any(drain_file.startswith(f"{m}/") for m in mounts)
    # Endpoints go once readiness has failed: within the wait.
    probe = app["readinessProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] < wait
    # nginx keeps serving while the app drains.
    assert container(overlay, "nginx")["lifecycle"]["preStop"]["sleep"]["seconds"] >= wait
    # The grace period covers the drain and gunicorn's graceful shutdown.
    conf = (ROOT / "modelport" / "ops" / "gunicorn_conf.py").read_text()
    graceful = int(re.search(r"^graceful_timeout = (\d+)", conf, flags=re.M).group(1))
    assert spec["terminationGracePeriodSeconds"] > wait + graceful


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_purge_runs_as_a_cronjob_one_at_a_time(overlay: str):
    from modelport.cli import purge

    cronjob = one(overlay, "CronJob", "modelport-purge")
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    (purger,) = pod_spec(cronjob)["containers"]
    assert purger["args"] == [purge.name]
    assert cronjob["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] > 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rollup_runs_as_a_cronjob_one_at_a_time_within_its_period(overlay: str):
    from modelport.cli import rollup

    cronjob = one(overlay, "CronJob", "modelport-rollup")
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert cronjob["spec"]["schedule"] == "*/5 * * * *"
    (runner,) = pod_spec(cronjob)["containers"]
    assert runner["args"] == [rollup.name]
    assert cronjob["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] > 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_artifacts_live_on_a_volume_every_replica_shares(overlay: str):
    claim = one(overlay, "PersistentVolumeClaim", "modelport-artifacts")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    volume = next(
        v["name"]
        for v in server(overlay)["volumes"]
        if v.get("persistentVolumeClaim", {}).get("claimName") == "modelport-artifacts"
    )
    mounts = {m["name"]: m["mountPath"] for m in container(overlay, "app")["volumeMounts"]}
    assert mounts[volume] == settings(overlay)["MODELPORT_ARTIFACTS_DIR"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_pinned(overlay: str):
    for where, spec in pods(overlay):
        for c in containers(spec):
            name, _, tag = c["image"].rpartition(":")
            assert name and tag and tag != "latest", (where, c["name"], c["image"])


@pytest.mark.parametrize("name", ["nginx.conf", "modelport.conf"])
def test_nginx_config_copy_equals_deploy_nginx_byte_for_byte(name: str):
    copy = K8S / "base" / "nginx" / name
    assert copy.read_bytes() == (ROOT / "deploy" / "nginx" / name).read_bytes(), (
        f"{copy.relative_to(ROOT)} is stale: run `make k8s-sync`"
    )


def test_dev_is_smaller_than_prod():
    def requests(overlay: str) -> str:
        return container(overlay, "app")["resources"]["requests"]["memory"]

    dev = one("dev", "HorizontalPodAutoscaler")["spec"]
    prod = one("prod", "HorizontalPodAutoscaler")["spec"]
    assert dev["maxReplicas"] < prod["maxReplicas"]
    assert (requests("dev"), requests("prod")) == ("512Mi", "2Gi")


def test_ci_requires_kubectl():
    # These tests skip without kubectl; CI must not let them.
    assert "[ -x /usr/bin/kubectl ]" in (ROOT / ".ci" / "run").read_text()
