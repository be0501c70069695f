"""Settings from ``MODELPORT_*`` environment variables (a ``.env`` file is honoured).

Every setting is listed with its default in ``docs/configuration.md``; a test keeps the two
in step. Development defaults are safe; production refuses to start with a missing or
default secret key.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

ENVIRONMENTS = ("development", "testing", "production")

# Keys that must never be accepted as a production secret.
WEAK_SECRET_KEYS = {"", "dev", "development", "secret", "changeme", "change-me", "default"}
MIN_SECRET_KEY_LENGTH = 32


class ConfigError(RuntimeError):
    """Raised when the settings would make the app unsafe or unable to start."""


@dataclass(frozen=True)
class Setting:
    """One ``MODELPORT_<name>`` environment variable, its default and meaning."""

    name: str
    default: str
    help: str
    cast: type = str


# The single list of settings: config loading and docs/configuration.md both come from it.
SETTINGS: tuple[Setting, ...] = (
    Setting("ENV", "development", "development | testing | production."),
    Setting(
        "SECRET_KEY",
        "",
        "Signs sessions and e-mail links. Required in production (32+ characters); in "
        "development a random key is created once in the instance folder.",
    ),
    Setting(
        "DATABASE_URL",
        "",
        "SQLAlchemy URL. Empty means a SQLite file `modelport.db` in the instance folder. "
        "PostgreSQL: `postgresql+psycopg://user:pass@host/db`; MariaDB/MySQL: "
        "`mysql+pymysql://user:pass@host/db?charset=utf8mb4`.",
    ),
    Setting("DB_POOL_SIZE", "5", "Connections kept open per worker process.", int),
    Setting("DB_MAX_OVERFLOW", "10", "Extra connections opened under load, then closed.", int),
    Setting("DB_POOL_RECYCLE", "1800", "Seconds after which a pooled connection is replaced.", int),
    Setting("DB_POOL_TIMEOUT", "10", "Seconds to wait for a free pooled connection.", int),
    Setting(
        "DB_POOL_PRE_PING", "true", "Test each connection at checkout (survives DB restarts).", bool
    ),
    Setting("SQLITE_BUSY_TIMEOUT_MS", "5000", "How long SQLite waits on a locked database.", int),
    Setting(
        "REDIS_URL",
        "",
        "Redis for shared rate limits (all workers see one count). Empty: in-process memory.",
    ),
    Setting("ARTIFACTS_DIR", "", "Where model artifacts are stored. Empty: instance/artifacts."),
    Setting("MLFLOW_TRACKING_URI", "", "MLflow tracking server or store (optional)."),
    Setting(
        "INSTANCE_PATH", "", "Instance folder (SQLite file, dev secret key). Empty: ./instance."
    ),
    Setting(
        "MAX_CONTENT_LENGTH", "2097152", "Largest request body in bytes; larger gets 413.", int
    ),
    Setting("PASSWORD_MIN_LENGTH", "15", "Shortest password accepted (NIST SP 800-63B).", int),
    Setting("PASSWORD_MAX_LENGTH", "256", "Longest password accepted.", int),
    Setting("SESSION_IDLE_MINUTES", "30", "A session unused this long ends.", int),
    Setting(
        "SESSION_ABSOLUTE_HOURS", "12", "A session ends this long after sign-in, used or not.", int
    ),
    Setting("REMEMBER_DAYS", "14", "Lifetime of a remember-me sign-in (idle and absolute).", int),
    Setting(
        "REQUIRE_EMAIL_CONFIRMATION",
        "false",
        "New accounts must confirm their e-mail address before they can sign in.",
        bool,
    ),
    Setting("RESET_TOKEN_MINUTES", "60", "Lifetime of password-reset and e-mail links.", int),
    Setting("TOKEN_DEFAULT_SCOPE", "predict", "Scope of a new API token when none is given."),
    Setting(
        "LOGIN_LIMIT_ACCOUNT",
        "10 per 15 minutes",
        "Failed sign-ins allowed per account before 429 (any client address).",
    ),
    Setting("LOGIN_LIMIT_IP", "50 per 15 minutes", "Failed sign-ins allowed per client address."),
    Setting("SIGNUP_LIMIT", "10 per hour", "Sign-ups and reset requests per client address."),
    Setting("RATELIMIT_DEFAULT", "", "Default limit for every route (empty: none)."),
    Setting(
        "PROXY_HOPS", "0", "Reverse proxies in front; X-Forwarded-* trusted from this many.", int
    ),
    Setting("MAIL_SERVER", "", "SMTP host. Empty: e-mails are written to the log (development)."),
    Setting("MAIL_PORT", "25", "SMTP port.", int),
    Setting("MAIL_USERNAME", "", "SMTP user (optional)."),
    Setting("MAIL_PASSWORD", "", "SMTP password (optional)."),
    Setting("MAIL_USE_TLS", "false", "STARTTLS on the SMTP connection.", bool),
    Setting("MAIL_SENDER", "Modelport <noreply@localhost>", "From: address of e-mails."),
    Setting("BASE_URL", "", "Public URL used in e-mail links. Empty: taken from the request."),
    Setting("LOG_LEVEL", "INFO", "Logging level."),
    Setting("LOG_FORMAT", "json", "json (one object per line) or text."),
    Setting("LANGUAGES", "en,ko", "Languages offered in the switch."),
)

_BOOL_TRUE = {"1", "true", "yes", "on"}
_BOOL_FALSE = {"0", "false", "no", "off", ""}


def _cast(setting: Setting, raw: str) -> Any:
    if setting.cast is bool:
        value = raw.strip().lower()
        if value in _BOOL_TRUE:
            return True
        if value in _BOOL_FALSE:
            return False
        raise ConfigError(f"MODELPORT_{setting.name} must be true or false, not {raw!r}")
    if setting.cast is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(
                f"MODELPORT_{setting.name} must be a whole number, not {raw!r}"
            ) from None
    return raw


def read_settings(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Return every setting, typed, from the environment (defaults where unset)."""
    environ = os.environ if environ is None else environ
    values = {}
    for setting in SETTINGS:
        raw = environ.get(f"MODELPORT_{setting.name}", setting.default)
        values[setting.name] = _cast(setting, raw)
    if values["ENV"] not in ENVIRONMENTS:
        raise ConfigError(f"MODELPORT_ENV must be one of {', '.join(ENVIRONMENTS)}")
    return values


def _development_secret(instance_path: Path) -> str:
    """Create once, then reuse, a random key so dev sessions survive restarts."""
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


def check_secret_key(key: str) -> None:
    """Refuse a missing, default or short secret key (production only)."""
    if key.strip().lower() in WEAK_SECRET_KEYS or len(key) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(
            "MODELPORT_SECRET_KEY must be set to a random value of at least "
            f"{MIN_SECRET_KEY_LENGTH} characters in production "
            '(python -c "import secrets; print(secrets.token_urlsafe(48))").'
        )


def flask_config(settings: dict[str, Any], instance_path: Path) -> dict[str, Any]:
    """Translate settings into the Flask and extension configuration keys."""
    env = settings["ENV"]
    production = env == "production"
    secret = settings["SECRET_KEY"]
    if production:
        check_secret_key(secret)
    elif not secret:
        secret = (
            "testing-" + secrets.token_hex(16)
            if env == "testing"
            else _development_secret(instance_path)
        )

    db_url = settings["DATABASE_URL"] or f"sqlite:///{instance_path / 'modelport.db'}"
    engine_options: dict[str, Any] = {"pool_pre_ping": settings["DB_POOL_PRE_PING"]}
    if not db_url.startswith("sqlite"):
        engine_options |= {
            "pool_size": settings["DB_POOL_SIZE"],
            "max_overflow": settings["DB_MAX_OVERFLOW"],
            "pool_recycle": settings["DB_POOL_RECYCLE"],
            "pool_timeout": settings["DB_POOL_TIMEOUT"],
        }
    else:
        engine_options["connect_args"] = {"timeout": settings["SQLITE_BUSY_TIMEOUT_MS"] / 1000}

    # __Host- cookies must be Secure, Path=/ and without Domain: production only.
    cookie_prefix = "__Host-" if production else ""
    redis_url = settings["REDIS_URL"]
    return {
        "MODELPORT": settings,
        "ENV_NAME": env,
        "TESTING": env == "testing",
        "DEBUG": False,
        "SECRET_KEY": secret,
        "SQLALCHEMY_DATABASE_URI": db_url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options,
        "SQLALCHEMY_TRACK_MODIFICATIONS": False,
        "MAX_CONTENT_LENGTH": settings["MAX_CONTENT_LENGTH"],
        "SESSION_COOKIE_NAME": f"{cookie_prefix}modelport_session",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "SESSION_COOKIE_PATH": "/",
        "PERMANENT_SESSION_LIFETIME": timedelta(days=settings["REMEMBER_DAYS"]),
        "MODELPORT_REMEMBER_COOKIE": f"{cookie_prefix}modelport_remember",
        # Flask-Login's own remember cookie is not used: ours is checked on the server.
        "REMEMBER_COOKIE_NAME": "modelport_flask_login_unused",
        "PREFERRED_URL_SCHEME": "https" if production else "http",
        "WTF_CSRF_CHECK_DEFAULT": False,  # checked in auth.csrf for cookie-authenticated calls only
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session that holds it
        "WTF_CSRF_SSL_STRICT": production,
        "RATELIMIT_STORAGE_URI": redis_url or "memory://",
        "RATELIMIT_HEADERS_ENABLED": True,
        "RATELIMIT_DEFAULT": settings["RATELIMIT_DEFAULT"] or None,
        "RATELIMIT_KEY_PREFIX": "modelport",
        "BABEL_DEFAULT_LOCALE": "en",
        "BABEL_DEFAULT_TIMEZONE": "UTC",
        "LANGUAGES": [code.strip() for code in settings["LANGUAGES"].split(",") if code.strip()],
        "API_TITLE": "Modelport API",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api",
        "OPENAPI_JSON_PATH": "openapi.json",
        "ARTIFACTS_DIR": settings["ARTIFACTS_DIR"] or str(instance_path / "artifacts"),
        # Argon2id per the OWASP cheat sheet; the testing configuration alone uses cheap ones.
        "ARGON2_PARAMS": (
            {"time_cost": 1, "memory_cost": 8, "parallelism": 1}
            if env == "testing"
            else {"time_cost": 2, "memory_cost": 19 * 1024, "parallelism": 1}
        ),
    }
