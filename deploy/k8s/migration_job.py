"""The migration Job's name: modelport-migrate-<hash of the migrations and the Job>.

Kustomize cannot hash files, so ``make k8s-migration-job`` runs this script, which writes
each overlay's ``migration-job-name.yaml`` (a patch that renames the Job), and
tests/deploy/test_kubernetes.py fails when one is stale. The hash covers every file of
modelport/migrations/versions and the Job as the overlay renders it, all but its name: the
image and its tag, the settings ConfigMap's name (which carries a hash of the settings), the
resources. A new migration or image makes a new Job, which Kubernetes, Argo CD and Flux run
once; and a Job that changed in any way is a new Job too, since Kubernetes refuses to change
the template of an existing one.

    python deploy/k8s/migration_job.py          # write the patches (needs kubectl)
    python deploy/k8s/migration_job.py --check  # exit 1 if one is stale
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

K8S = Path(__file__).resolve().parent
ROOT = K8S.parent.parent
VERSIONS = ROOT / "modelport" / "migrations" / "versions"
OVERLAYS = K8S / "overlays"
PATCH = "migration-job-name.yaml"


def rendered_job(overlay: Path) -> dict:
    """The overlay's migration Job, rendered by ``kubectl kustomize``."""
    kubectl = shutil.which("kubectl") or "/usr/bin/kubectl"
    out = subprocess.run(  # noqa: S603 - kubectl on our own overlay
        [kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=True
    ).stdout
    (job,) = [doc for doc in yaml.safe_load_all(out) if doc and doc["kind"] == "Job"]
    return job


def job_name(overlay: Path, job: dict | None = None) -> str:
    job = json.loads(json.dumps(job or rendered_job(overlay)))
    del job["metadata"]["name"]
    digest = hashlib.sha256()
    for path in sorted(VERSIONS.rglob("*.py")):
        digest.update(path.relative_to(VERSIONS).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    digest.update(json.dumps(job, sort_keys=True, separators=(",", ":")).encode())
    return f"modelport-migrate-{digest.hexdigest()[:10]}"


def patch(overlay: Path) -> str:
    return (
        f"# Written by `make k8s-migration-job` (deploy/k8s/migration_job.py): do not edit.\n"
        f"- op: replace\n"
        f"  path: /metadata/name\n"
        f"  value: {job_name(overlay)}\n"
    )


def main(argv: list[str]) -> int:
    stale = []
    for overlay in sorted(p for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").exists()):
        wanted = patch(overlay)
        target = overlay / PATCH
        if target.exists() and target.read_text() == wanted:
            continue
        if "--check" in argv:
            stale.append(str(target.relative_to(ROOT)))
        else:
            target.write_text(wanted)
            print(f"wrote {target.relative_to(ROOT)}")
    if stale:
        print(f"stale: {', '.join(stale)}; run `make k8s-migration-job`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
