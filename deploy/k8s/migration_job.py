"""The migration Job's name: modelport-migrate-<hash of the migrations and the image>.

Kustomize cannot hash files, so ``make k8s-migration-job`` runs this script, which writes
each overlay's ``migration-job-name.yaml`` (a patch that renames the Job), and
tests/deploy/test_kubernetes.py fails when one is stale. The hash covers every file of
modelport/migrations/versions and the overlay's ``modelport`` image (name and tag): a new
migration or a new image makes a new Job, which Kubernetes, Argo CD and Flux run once.

    python deploy/k8s/migration_job.py          # write the patches
    python deploy/k8s/migration_job.py --check  # exit 1 if one is stale
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import yaml

K8S = Path(__file__).resolve().parent
ROOT = K8S.parent.parent
VERSIONS = ROOT / "modelport" / "migrations" / "versions"
OVERLAYS = K8S / "overlays"
PATCH = "migration-job-name.yaml"


def image(overlay: Path) -> str:
    """The overlay's ``modelport`` image, as ``name:tag``."""
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    for entry in kustomization.get("images", []):
        if entry["name"] == "modelport":
            return f"{entry.get('newName', 'modelport')}:{entry['newTag']}"
    raise SystemExit(f"{overlay}: no pinned `modelport` image (images: newTag)")


def job_name(overlay: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(VERSIONS.rglob("*.py")):
        digest.update(path.relative_to(VERSIONS).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    digest.update(image(overlay).encode())
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
