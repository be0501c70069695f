"""A full disk while a model upload is stored (issue 12, item 9): 507 with a JSON error, no
partial or orphaned file in the artifact store, no version row, and the server goes on.

The artifact store is a small tmpfs of the test's own (tests/support/disks.py), so the disk
really fills: the kernel answers ENOSPC, as a full volume does.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from modelport.extensions import db
from modelport.models.registry import ModelVersion
from tests.support.databases import empty_database_url
from tests.support.deployments import deploy
from tests.support.disks import PAGE, file_tree, free_bytes, pages, small_disk
from tests.support.models import iris_with_swapped_labels

pytestmark = pytest.mark.slow

DISK_BYTES = 4 * 1024 * 1024
UPLOAD = "/api/v1/models/iris/versions"
FULL = {
    "error": {
        "code": "insufficient_storage",
        "message": "The model store is full: nothing was stored. Try again once space is freed.",
        "details": None,
    }
}


def _upload(url: str, token: str, artifact: bytes, sample: bytes) -> requests.Response:
    return requests.post(
        url + UPLOAD,
        headers={"Authorization": f"Bearer {token}"},
        files={
            "artifact": ("iris-swapped.skops", io.BytesIO(artifact)),
            "sample": ("sample.csv", io.BytesIO(sample)),
        },
        timeout=60,
    )


def _sizes(tmp_path: Path, artifact: bytes, sample: bytes) -> tuple[int, int]:
    """The sizes of the artifact's compiled form and of its stored sample, as a registration
    on a disk with room writes them (on SQLite, in an app of the test's own)."""
    from flask_migrate import upgrade

    from modelport import create_app
    from modelport.serving import registry

    scratch = tmp_path / "scratch"
    app = create_app(
        {
            "ENV": "testing",
            "DATABASE_URL": f"sqlite:///{scratch / 'scratch.db'}",
            "INSTANCE_PATH": str(scratch),
            "ARTIFACTS_DIR": str(scratch / "artifacts"),
        }
    )
    with app.app_context():
        upgrade()
        model = registry.create_model("iris", task="classification")
        version = registry.register_version(
            model, artifact, filename="iris-swapped.skops", sample=sample
        )
        store = registry.artifact_store()
        sizes = (
            store.path(version.compiled_sha256).stat().st_size,
            store.path(version.sample_sha256).stat().st_size,
        )
        db.session.remove()
        db.engine.dispose()
    return sizes


def test_a_full_disk_refuses_an_upload_and_leaves_nothing_behind(
    tmp_path: Path, demo_models: dict[str, Any]
) -> None:
    deployment = deploy(tmp_path, empty_database_url("postgres", tmp_path, "disk"), demo_models)
    artifact = iris_with_swapped_labels()
    sample = demo_models["iris"].sample.to_csv(index=False).encode()
    compiled, sample_size = _sizes(tmp_path, artifact, sample)
    assert pages(len(artifact)) + pages(compiled) + pages(sample_size) < DISK_BYTES // 2

    def versions() -> int:
        with deployment.app.app_context():
            count = db.session.scalar(select(func.count(ModelVersion.id)))
            db.session.remove()
        return count

    try:
        with small_disk(tmp_path / "small", DISK_BYTES) as store:
            shutil.copytree(deployment.artifacts, store, dirs_exist_ok=True)
            stored = file_tree(store)
            with deployment.serve(env={"MODELPORT_ARTIFACTS_DIR": str(store)}) as master:
                url = master.server.url
                workers = master.workers()

                # 1. The artifact alone is larger than the room left: its first write fails.
                too_big = _upload(url, deployment.token, b"\0" * (free_bytes(store) + PAGE), sample)
                after_too_big = file_tree(store)

                # 2. Room for the artifact and not a byte more: it is stored, then the disk
                # is full when its compiled form is written. 3. Room for both: the sample
                # is the write that fails. Each time the files already written go too.
                filler = store / "filler"
                later = []
                for room in (pages(len(artifact)), pages(len(artifact)) + pages(compiled)):
                    filler_size = free_bytes(store) - room
                    filler.write_bytes(b"\0" * filler_size)
                    assert free_bytes(store) == room
                    refused = _upload(url, deployment.token, artifact, sample)
                    later.append((refused, file_tree(store), free_bytes(store), filler_size))
                    filler.unlink()
                refused_versions = versions()

                # 4. Room again: the same upload goes through, on the same workers.
                accepted = _upload(url, deployment.token, artifact, sample)
                ready = requests.get(f"{url}/readyz", timeout=30)
                assert master.workers() == workers
            after_accepted = file_tree(store)
    finally:
        deployment.close()

    assert too_big.status_code == 507, too_big.text
    assert too_big.json() == FULL
    assert after_too_big == stored
    for (refused, files, free, filler_size), room in zip(
        later, (pages(len(artifact)), pages(len(artifact)) + pages(compiled)), strict=True
    ):
        assert refused.status_code == 507, refused.text
        assert refused.json() == FULL
        # Everything written for the refused version is gone, the files that fitted included.
        assert files == {**stored, "filler": filler_size}
        assert free == room
    assert refused_versions == 1
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["number"] == 2
    assert ready.status_code == 200
    assert versions() == 2
    # The artifact, its compiled (ONNX) form and its sample.
    assert len(set(after_accepted) - set(stored)) == 3, accepted.json()


def test_a_full_temporary_folder_refuses_an_upload_and_the_server_goes_on(
    tmp_path: Path, demo_models: dict[str, Any]
) -> None:
    """werkzeug keeps an uploaded part over 500 KiB in a temporary file while it reads the
    request: with the temporary folder full, the upload gets 507 with a JSON error (it was a
    500), nothing is stored, and the same workers answer the next upload."""
    deployment = deploy(tmp_path, empty_database_url("sqlite", tmp_path, "scratch"), demo_models)
    artifact = iris_with_swapped_labels()
    sample = demo_models["iris"].sample.to_csv(index=False).encode()
    stored = file_tree(deployment.artifacts)
    try:
        with small_disk(tmp_path / "scratch", 1024 * 1024) as scratch:
            env = {"TMPDIR": str(scratch), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
            with deployment.serve(env=env) as master:
                url = master.server.url
                workers = master.workers()
                big = b"\0" * (free_bytes(scratch) + 2 * PAGE)
                refused = _upload(url, deployment.token, big, sample)
                after_refused = file_tree(deployment.artifacts)
                ready = requests.get(f"{url}/readyz", timeout=30)
                accepted = _upload(url, deployment.token, artifact, sample)
                assert master.workers() == workers
            log = master.server.text()
    finally:
        deployment.close()

    assert refused.status_code == 507, refused.text
    assert refused.json()["error"]["code"] == "insufficient_storage"
    assert "nothing was stored" in refused.json()["error"]["message"]
    assert after_refused == stored
    assert ready.status_code == 200
    assert accepted.status_code == 201, accepted.text
    assert "Traceback" not in log
