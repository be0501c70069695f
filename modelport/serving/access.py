"""Who may use which model: one rule, for the pages, the JSON API, CSV, ``/v2`` and the hot
path alike.

A caller who may not use a private model gets the answer a caller asking for a model that
does not exist gets, word for word apart from the name: no channel tells the two apart,
whichever version, alias or state is asked for.
"""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import select

from modelport.auth.caller import Caller, Credential
from modelport.extensions import db
from modelport.models.predictions import Source
from modelport.models.registry import RegisteredModel, Visibility
from modelport.models.tokens import Scope
from modelport.serving import registry
from modelport.serving.predictor import ModelNotFound, ModelNotReady, Route, Served, resolve, route


def may_use(caller: Caller, visibility: str | None, channel: str) -> bool:
    """Whether ``caller`` may see and predict with a model of ``visibility`` on ``channel``
    (a ``Source``; ``None`` visibility: there is no such model).

    Public models: anyone. Private ones: a signed-in caller whose credential carries the
    ``predict`` scope; on ``/v2``, which takes no CSRF token, only a Bearer token, so that a
    session cookie cannot let another site predict in a member's name.
    """
    if visibility is None:
        return False
    if visibility == Visibility.PUBLIC.value:
        return True
    if channel == Source.V2 and caller.credential != Credential.TOKEN:
        return False
    return caller.allows(Scope.PREDICT.value)


def no_such_model(name: str, channel: str) -> ModelNotFound:
    """The one answer to a model that does not exist or that the caller may not use."""
    if channel == Source.PAGE:
        return ModelNotFound(_("There is no model named %(name)s.", name=name))
    credential = (
        "Authorization: Bearer <token>" if channel == Source.V2 else "a signed-in user or a token"
    )
    return ModelNotFound(f"There is no model named {name} (private models need {credential}).")


def model_for(caller: Caller, name: str, channel: str) -> RegisteredModel:
    """The registered model ``name`` if ``caller`` may use it; else ``no_such_model``."""
    model = registry.get_model(name)
    if model is None or not may_use(caller, model.visibility, channel):
        raise no_such_model(name, channel)
    return model


def served_for(
    caller: Caller,
    name: str,
    *,
    channel: str,
    version: int | None = None,
    alias: str | None = None,
) -> Served:
    """The loaded version of ``name`` (``version`` or ``alias``, else the champion or the
    newest) that ``caller`` may use. Raises ``ModelNotFound`` (the same for a model the caller
    may not use as for none at all, whatever version or alias is asked for) or
    ``ModelNotReady``."""
    try:
        served = resolve(name, version=version, alias=alias)
    except (ModelNotFound, ModelNotReady):
        # The model's own errors (no such alias, not loadable) would say that it exists.
        if not may_use(caller, _visibility(name), channel):
            raise no_such_model(name, channel) from None
        raise
    if not may_use(caller, served.visibility, channel):
        raise no_such_model(name, channel)
    return served


def route_for(caller: Caller, name: str, *, channel: str) -> Route:
    """The ``Route`` of ``name`` for a request naming no version, if ``caller`` may use the
    model; else ``served_for``'s errors, word for word."""
    try:
        found = route(name)
    except (ModelNotFound, ModelNotReady):
        if not may_use(caller, _visibility(name), channel):
            raise no_such_model(name, channel) from None
        raise
    if not may_use(caller, found.champion.visibility, channel):
        raise no_such_model(name, channel)
    return found


def _visibility(name: str) -> str | None:
    return db.session.scalar(select(RegisteredModel.visibility).where(RegisteredModel.name == name))


def visible_models(caller: Caller, channel: str) -> list[RegisteredModel]:
    """The models ``caller`` may use on ``channel``, by name."""
    query = select(RegisteredModel).order_by(RegisteredModel.name)
    if not may_use(caller, Visibility.PRIVATE.value, channel):
        query = query.where(RegisteredModel.visibility == Visibility.PUBLIC.value)
    return list(db.session.scalars(query))
