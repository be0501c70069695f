"""``/api/v1/datasets``: registered CSV and Parquet files with their profiles. Signed-in
callers read (a token needs the ``full`` scope); administrators upload."""

from __future__ import annotations

from functools import wraps
from typing import Any

from flask import abort, request
from flask_login import current_user

from modelport.analytics import datasets
from modelport.api.blueprint import Blueprint
from modelport.api.dataset_schemas import DatasetDetailSchema, DatasetPageSchema
from modelport.api.schemas import PageQuerySchema
from modelport.auth.web.identity import AuthError, current_caller, full_scope_required
from modelport.config import current_settings
from modelport.errors import ApiError
from modelport.models.datasets import Dataset, DatasetVersion
from modelport.ops.inputs import body_limit
from modelport.serving.web.blueprint import MULTIPART_OVERHEAD

blp = Blueprint("api_datasets", __name__, url_prefix="/api/v1", description="Datasets")
SECURITY = [{"bearer": []}, {"session": []}]
SUMMARY_KEYS = ("mean", "std", "min", "max", "distinct", "top")


def dataset_upload_limit() -> int | None:
    """A dataset upload's body, for administrators (others keep the general limit)."""
    if not current_caller().is_admin:
        return None
    return current_settings().dataset_max_bytes + MULTIPART_OVERHEAD


def admin_only(view: Any) -> Any:
    """Uploads: administrators with a session or a ``full`` token, checked before the body."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            raise AuthError("Sign in or send Authorization: Bearer <token>.")
        if not current_caller().is_admin:
            abort(403, description="Only administrators may add datasets.")
        return view(*args, **kwargs)

    return wrapped


def _email(user: Any) -> str | None:
    return user.email if user is not None else None


def dataset_summary(dataset: Dataset) -> dict[str, Any]:
    """A dataset as the API lists it."""
    latest = dataset.latest
    return {
        "name": dataset.name,
        "owner": _email(dataset.owner),
        "latest_version": latest.number if latest else 0,
        "rows": latest.row_count if latest else 0,
        "columns": latest.column_count if latest else 0,
        "created_at": dataset.created_at,
    }


def version_detail(version: DatasetVersion) -> dict[str, Any]:
    """A version: its file, size and shape."""
    return {
        "number": version.number,
        "filename": version.filename,
        "format": version.format,
        "rows": version.row_count,
        "columns": version.column_count,
        "column_types": version.column_types,
        "size_bytes": version.size_bytes,
        "file_sha256": version.file_sha256,
        "created_by": _email(version.created_by),
        "created_at": version.created_at,
    }


def profile_summary(version: DatasetVersion) -> dict[str, Any]:
    """The stored profile without histograms and correlations: what a program usually wants."""
    columns = []
    for column in version.profile["columns"]:
        summary = {k: column[k] for k in ("name", "kind", "missing_share")}
        summary |= {k: column[k] for k in SUMMARY_KEYS if k in column}
        columns.append(summary)
    return {"version": version.number, "overview": version.profile["overview"], "columns": columns}


def dataset_detail(dataset: Dataset) -> dict[str, Any]:
    """A dataset with its versions and the profile summary of the newest."""
    return dataset_summary(dataset) | {
        "versions": [version_detail(v) for v in dataset.versions],
        "profile": profile_summary(datasets.get_version(dataset)),
    }


@blp.get("/datasets")
@full_scope_required
@blp.arguments(PageQuerySchema, location="query")
@blp.response(200, DatasetPageSchema)
@blp.errors(422)
@blp.doc(security=SECURITY)
def list_datasets(query: dict[str, int]) -> dict[str, Any]:
    """Registered datasets by name, with the shape of their newest version."""
    items, total = datasets.list_datasets(query["page"], query["page_size"])
    return {
        "items": [dataset_summary(d) for d in items],
        "page": query["page"],
        "page_size": query["page_size"],
        "total": total,
    }


@blp.get("/datasets/<name>")
@full_scope_required
@blp.response(200, DatasetDetailSchema)
@blp.errors(404)
@blp.doc(security=SECURITY)
def get_dataset(name: str) -> dict[str, Any]:
    """One dataset: its versions and the profile summary of the newest."""
    return dataset_detail(datasets.get_dataset(name))


@blp.post("/datasets")
@admin_only
@body_limit(dataset_upload_limit)
@blp.response(201, DatasetDetailSchema)
@blp.errors(409, 413, 415, 422)
@blp.doc(
    security=SECURITY,
    requestBody={
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "name"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"},
                    },
                }
            }
        },
    },
)
def upload_dataset() -> dict[str, Any]:
    """Add a CSV or Parquet file as a new dataset, or as the next version of one (admin)."""
    if request.mimetype != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "Send multipart/form-data.")
    file = request.files.get("file")
    if file is None or not file.filename:
        raise ApiError(
            422,
            "invalid_input",
            "Send the file as multipart/form-data.",
            [{"row": None, "field": "file", "code": "required", "message": "Missing file."}],
        )
    name = request.form.get("name", "").strip()
    version = datasets.add_version(
        name, file.stream, filename=file.filename, created_by=current_user
    )
    return dataset_detail(version.dataset)
