"""Language choice: the visitor's pick (kept in the session), else Accept-Language."""

from __future__ import annotations

from flask import current_app, has_request_context, request, session

LANGUAGE_NAMES = {"en": "English", "ko": "한국어"}


def select_locale() -> str:
    """Babel's locale selector."""
    if not has_request_context():  # CLI and background work: messages in the default language
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    offered = current_app.config["LANGUAGES"]
    chosen = session.get("lang")
    if chosen in offered:
        return chosen
    return (
        request.accept_languages.best_match(offered) or current_app.config["BABEL_DEFAULT_LOCALE"]
    )


def template_context() -> dict[str, object]:
    """What every template needs: the language switch, and the settings (limits in hints)."""
    from flask_babel import get_locale

    return {
        "current_locale": str(get_locale()),
        "language_names": LANGUAGE_NAMES,
        "settings": current_app.settings,  # type: ignore[attr-defined]
    }
