"""The registry's pages for administrators: models, new models, uploads, aliases, schemas and
archiving."""

from __future__ import annotations

from typing import Any

from flask import (
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user

from modelport.auth.web.admin import admin_required
from modelport.auth.web.forms import EmptyForm
from modelport.auth.web.identity import current_caller
from modelport.errors import registry_status
from modelport.extensions import db
from modelport.mlops import follow
from modelport.models.predictions import Source
from modelport.models.registry import RegisteredModel, VersionStatus
from modelport.ops.inputs import body_limit
from modelport.serving import access, registry
from modelport.serving.schema import FEATURE_TYPES, InputSchema
from modelport.serving.web.blueprint import bp, csrf_checked, upload_limit
from modelport.serving.web.forms import (
    AliasForm,
    CanaryForm,
    FollowForm,
    ModelForm,
    UploadForm,
    schema_from_form,
    schema_rows,
)
from modelport.serving.web.problems import registry_message

# Registry error codes and the form field each one is about.
REGISTRY_FIELDS = {
    "invalid_name": "name",
    "model_exists": "name",
    "invalid_task": "task",
    "invalid_visibility": "visibility",
    "invalid_artifact": "artifact",
    "unsupported_flavor": "artifact",
    "task_mismatch": "artifact",
    "invalid_sample": "sample",
    "sample_mismatch": "sample",
    "invalid_evaluation": "evaluation",
    "invalid_alias": "alias",
    "version_archived": "alias",
    "version_not_found": "version",
}


def _refused(form: Any, exc: registry.RegistryError) -> int:
    """Show a registry refusal on the form's field; nothing was changed. Returns the status."""
    db.session.rollback()
    target = getattr(form, REGISTRY_FIELDS.get(exc.code, ""), None)
    if target is not None:
        target.errors = [*target.errors, registry_message(exc)]
    else:
        flash(registry_message(exc), "error")
    return registry_status(exc)


def _admin_model(name: str) -> RegisteredModel:
    model = registry.get_model(name)
    if model is None:
        abort(404, description=_("There is no model named %(name)s.", name=name))
    return model


def _admin_models_page(status: int = 200) -> tuple[str, int]:
    models = access.visible_models(current_caller(), Source.PAGE)
    serving = {m.id: registry.served_version(m) for m in models}
    return render_template(
        "admin/models.html",
        models=models,
        serving=serving,
        alias_form=AliasForm(formdata=None),
        canary_form=CanaryForm(formdata=None),
        follow_form=FollowForm(formdata=None),
        action_form=EmptyForm(),
        ready=VersionStatus.READY.value,
    ), status


@bp.get("/admin/models")
@admin_required
def admin_models() -> tuple[str, int]:
    """Every model with its versions (runtime, parity, status) and aliases."""
    return _admin_models_page()


@bp.route("/admin/models/new", methods=["GET", "POST"])
@admin_required
def admin_new_model() -> Response | tuple[str, int]:
    """Register a new, empty model."""
    form = ModelForm()
    status = 200
    if form.validate_on_submit():
        try:
            model = registry.create_model(
                form.name.data.strip(),
                title=(form.title.data or "").strip(),
                description=form.description.data or "",
                task=form.task.data,
                visibility=form.visibility.data,
                owner=current_user,
            )
        except registry.RegistryError as exc:
            status = _refused(form, exc)
        else:
            flash(
                _("Model %(name)s is registered. Upload its first version.", name=model.name),
                "success",
            )
            return redirect(url_for("serving.admin_upload", name=model.name))
    elif form.is_submitted():
        status = 400
    return render_template("admin/model_new.html", form=form), status


@bp.route("/admin/models/<name>/upload", methods=["GET", "POST"])
@admin_required
@body_limit(upload_limit)
def admin_upload(name: str) -> Response | tuple[str, int]:
    """Add a version from a model file and a sample of its training data."""
    model = _admin_model(name)
    form = UploadForm()
    status = 200
    if form.validate_on_submit():
        alias = (form.alias.data or "").strip()
        held_out = form.evaluation.data
        try:
            version = registry.register_version(
                model,
                form.artifact.data.stream,
                filename=form.artifact.data.filename or "",
                sample=form.sample.data.stream,
                created_by=current_user,
                aliases=(alias,) if alias else (),
                evaluation=held_out.stream if held_out and held_out.filename else None,
                evaluation_target=(form.target.data or "").strip() or None,
            )
        except registry.RegistryError as exc:
            status = _refused(form, exc)
        else:
            flash(
                _(
                    "Version %(number)d of %(name)s is registered; %(runtime)s serves it.",
                    number=version.number,
                    name=model.name,
                    runtime=version.runtime,
                ),
                "success",
            )
            return redirect(url_for("serving.admin_models"))
    elif form.is_submitted():
        status = 400
    return render_template("admin/upload.html", model=model, form=form), status


@bp.post("/admin/models/<name>/aliases")
@admin_required
def admin_alias(name: str) -> Response | tuple[str, int]:
    """Point an alias at a version; every worker follows within the poll interval."""
    model = _admin_model(name)
    form = AliasForm()
    if not form.validate_on_submit():
        flash(_("Enter an alias and a version number."), "error")
        return _admin_models_page(400)
    alias = form.alias.data.strip()
    try:
        registry.set_alias(model, alias, form.version.data)
    except registry.RegistryError as exc:
        db.session.rollback()
        flash(registry_message(exc), "error")
        return _admin_models_page(registry_status(exc))
    flash(
        _(
            "%(alias)s of %(name)s now points at version %(number)d.",
            alias=alias,
            name=model.name,
            number=form.version.data,
        ),
        "success",
    )
    return redirect(url_for("serving.admin_models"))


@bp.route("/admin/models/<name>/versions/<int:number>/schema", methods=["GET", "POST"])
@admin_required
def admin_schema(name: str, number: int) -> Response | tuple[str, int]:
    """Edit a version's input schema: types, required, ranges, categories, descriptions."""
    model = _admin_model(name)
    version = registry.get_version(model, number)
    if version is None:
        abort(404, description=_("This model has no such version."))
    schema = InputSchema.from_dict(version.input_schema)
    rows, problems, status = schema_rows(schema), [], 200
    if request.method == "POST":
        csrf_checked()
        edited, rows, problems = schema_from_form(schema, request.form)
        if not problems:
            try:
                registry.update_schema(version, edited)
            except registry.RegistryError as exc:
                db.session.rollback()
                problems = [registry_message(exc)]
            else:
                flash(
                    _(
                        "The input schema of version %(number)d of %(name)s is saved; every "
                        "worker uses it within seconds.",
                        number=number,
                        name=model.name,
                    ),
                    "success",
                )
                return redirect(url_for("serving.admin_models"))
        status = 422
    return render_template(
        "admin/schema.html",
        model=model,
        version=version,
        rows=rows,
        problems=problems,
        types=FEATURE_TYPES,
        form=EmptyForm(),
    ), status


@bp.post("/admin/models/<name>/canary")
@admin_required
def admin_canary(name: str) -> Response | tuple[str, int]:
    """Set a model's canary and shadow shares, promote its challenger or roll it back: one
    click each (``action``: shares, promote or rollback)."""
    model = _admin_model(name)
    form = CanaryForm()
    action = request.form.get("action", "shares")
    if not form.validate_on_submit() or action not in ("shares", "promote", "rollback"):
        flash(_("Enter shares from 0 to 100 per cent."), "error")
        return _admin_models_page(400)
    try:
        if action == "promote":
            version = registry.promote(model)
            message = _(
                "Version %(number)d of %(name)s is now the champion.",
                number=version.number,
                name=model.name,
            )
        elif action == "rollback":
            restored = registry.rollback(model)
            if restored is None:
                message = _("The canary of %(name)s is rolled back.", name=model.name)
            else:
                message = _(
                    "Version %(number)d of %(name)s is the champion again.",
                    number=restored.number,
                    name=model.name,
                )
        else:
            registry.set_shares(
                model,
                canary=None if form.share.data is None else form.share.data / 100,
                shadow=None if form.shadow_share.data is None else form.shadow_share.data / 100,
            )
            message = _("The shares of %(name)s are saved.", name=model.name)
    except registry.RegistryError as exc:
        db.session.rollback()
        flash(registry_message(exc), "error")
        return _admin_models_page(registry_status(exc))
    flash(message, "success")
    return redirect(url_for("serving.admin_models"))


@bp.post("/admin/models/<name>/follow")
@admin_required
def admin_follow(name: str) -> Response | tuple[str, int]:
    """Follow an MLflow registered model, sync with it now, or stop following it (``action``:
    follow, sync or unfollow; docs/mlops.md)."""
    model = _admin_model(name)
    form = FollowForm()
    action = request.form.get("action", "follow")
    wanted = (form.mlflow_model.data or "").strip()
    if not form.validate_on_submit() or action not in ("follow", "sync", "unfollow"):
        flash(_("Name the MLflow registered model (1–256 characters)."), "error")
        return _admin_models_page(400)
    try:
        if action == "unfollow":
            follow.unfollow(model)
            flash(_("%(name)s no longer follows MLflow.", name=model.name), "success")
            return redirect(url_for("serving.admin_models"))
        if action == "follow":
            if not wanted:
                flash(_("Name the MLflow registered model (1–256 characters)."), "error")
                return _admin_models_page(400)
            result = follow.follow(model, wanted)
        else:
            result = follow.sync(model, wait=follow.WAIT_SECONDS)
    except registry.RegistryError as exc:
        db.session.rollback()
        flash(registry_message(exc), "error")
        return _admin_models_page(registry_status(exc))
    if result.busy:
        flash(_("Another sync of %(name)s is still running; try again.", name=model.name), "error")
    elif result.error:
        flash(_("The sync with MLflow failed: %(error)s", error=result.error), "error")
    else:
        done = "; ".join(result.changes) or _("nothing to change")
        flash(
            _("%(name)s follows the MLflow model %(mlflow)s: %(done)s.",
              name=model.name, mlflow=result.mlflow_model, done=done),
            "success",
        )  # fmt: skip
    return redirect(url_for("serving.admin_models"))


@bp.post("/admin/models/<name>/versions/<int:number>/archive")
@admin_required
def admin_archive(name: str, number: int) -> Response:
    """Stop serving a version; its records stay and aliases on it are removed."""
    model = _admin_model(name)
    if registry.get_version(model, number) is None:
        abort(404, description=_("This model has no such version."))
    csrf_checked()
    registry.archive_version(model, number)
    flash(
        _("Version %(number)d of %(name)s is archived.", number=number, name=model.name),
        "success",
    )
    return redirect(url_for("serving.admin_models"))
