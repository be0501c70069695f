"""Settings from ``MODELPORT_*`` environment variables (a ``.env`` file is honoured).

Every setting is listed with its default in ``docs/configuration.md``; a test keeps the two
in step. Development defaults are safe; production refuses to start with a missing or
default secret key.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy.engine import make_url

ENVIRONMENTS = ("development", "testing", "production")

# Keys that must never be accepted as a production secret.
WEAK_SECRET_KEYS = {"", "dev", "development", "secret", "changeme", "change-me", "default"}
MIN_SECRET_KEY_LENGTH = 32
# Anyone who knows the webhook secret can move the served version: no guessable ones.
MIN_WEBHOOK_SECRET_LENGTH = 16
# The Flask-SQLAlchemy bind whose engine writes prediction records (same database).
RECORDS_BIND = "records"
# Redis answers rate-limit calls in well under a millisecond: past this a call has failed.
REDIS_TIMEOUT_SECONDS = 1.0


class ConfigError(RuntimeError):
    """Raised when the settings would make the app unsafe or unable to start."""


@dataclass(frozen=True)
class Setting:
    """One ``MODELPORT_<name>`` environment variable, its default and meaning."""

    name: str
    default: str
    help: str
    cast: type = str


def _setting(default: str, help: str, *, secret: bool = False) -> Any:  # noqa: A002 - the help text
    """A field of ``Settings``: its environment default (as text) and what it means. A
    ``secret`` one is left out of the settings' repr, so it cannot reach a log that way."""
    return field(repr=not secret, metadata={"default": default, "help": help})


@dataclass(frozen=True)
class Settings:
    """Every setting, typed: the single list of them. ``MODELPORT_<NAME>`` sets ``<name>``;
    config loading (``read_settings``), ``settings()`` and docs/configuration.md all come
    from these fields (tests/test_docs.py keeps the doc in step)."""

    env: str = _setting("development", "development | testing | production.")
    secret_key: str = _setting(
        "",
        "Signs sessions and e-mail links. Required in production (32+ characters); in development a random key is created once in the instance folder.",
        secret=True,
    )
    secret_key_fallbacks: str = _setting(
        "",
        'Old secret keys, comma-separated, still accepted (never used to sign) while a new `MODELPORT_SECRET_KEY` rolls out: session cookies, device cookies and e-mail links signed with them keep working until they are removed (docs/operations.md, "Rotating the secret key"). In production each must be a valid key too.',
        secret=True,
    )
    database_url: str = _setting(
        "",
        "SQLAlchemy URL. Empty means a SQLite file `modelport.db` in the instance folder. PostgreSQL: `postgresql+psycopg://user:pass@host/db`; MariaDB/MySQL: `mysql+pymysql://user:pass@host/db?charset=utf8mb4`.",
        secret=True,  # it may hold the database password
    )
    db_pool_size: int = _setting("5", "Connections kept open per worker process.")
    db_max_overflow: int = _setting("10", "Extra connections opened under load, then closed.")
    db_pool_recycle: int = _setting("1800", "Seconds after which a pooled connection is replaced.")
    db_pool_timeout: int = _setting("10", "Seconds to wait for a free pooled connection.")
    db_connect_timeout: int = _setting(
        "5",
        "Seconds to wait for a new server connection before answering 503 (a database host that does not answer must not hold workers). Not used for SQLite.",
    )
    db_pool_pre_ping: bool = _setting(
        "true",
        "Test each server connection at checkout (survives DB restarts; not used for SQLite).",
    )
    sqlite_busy_timeout_ms: int = _setting("5000", "How long SQLite waits on a locked database.")
    redis_url: str = _setting(
        "",
        "Redis for shared rate limits (all workers see one count). Empty: in-process memory.",
        secret=True,  # it may hold a password
    )
    artifacts_dir: str = _setting(
        "", "Where model artifacts are stored. Empty: instance/artifacts."
    )
    mlflow_tracking_uri: str = _setting(
        "",
        "MLflow tracking server and model registry that `modelport train` logs to and `models:/` URIs come from. Empty: a SQLite file `mlflow.db` in the instance folder, run artifacts in `instance/mlflow-artifacts`. In production an `https://` server.",
        secret=True,  # it may hold a user name and password
    )
    mlflow_trusted: bool = _setting(
        "false",
        "Load models from the MLflow tracking server (`models:/` URIs). MLflow's scikit-learn and pyfunc flavors run code when loaded: only for a server whose models you trust. `MODELPORT_ALLOW_PICKLE=true` implies it.",
    )
    mlflow_poll_seconds: int = _setting(
        "60",
        "How often each server process reads the MLflow aliases of the models that follow an MLflow model, and moves theirs (docs/mlops.md); 0: only webhooks and `modelport sync` do.",
    )
    mlflow_webhook_secret: str = _setting(
        "",
        "Shared secret of MLflow's registry webhooks to `/api/v1/mlflow/webhook` (the `secret` given to MLflow's `create_webhook`), checked on each delivery's `X-MLflow-Signature`. Empty: the endpoint answers 404.",
        secret=True,
    )
    allow_pickle: bool = _setting(
        "false",
        "Accept pickle/joblib model files. They run code when loaded: only for files you made.",
    )
    max_batch_rows: int = _setting("10000", "Most rows in one JSON prediction request.")
    csv_max_rows: int = _setting("2000000", "Most rows in one CSV prediction upload.")
    csv_max_columns: int = _setting(
        "100",
        "Most columns a CSV prediction upload may have besides the model's own features (passed through to the answer); more gets 413 before any row is read.",
    )
    csv_max_bytes: int = _setting(
        "268435456", "Largest CSV prediction upload in bytes; larger gets 413."
    )
    upload_max_bytes: int = _setting("536870912", "Largest model artifact upload in bytes.")
    dataset_max_bytes: int = _setting(
        "268435456",
        "Largest dataset file (CSV or Parquet) in bytes; a larger upload gets 413 and nothing is kept.",
    )
    record_predictions: bool = _setting("true", "Record every prediction request in the database.")
    record_max_bytes: int = _setting(
        "65536",
        "Inputs and outputs stored per record, in bytes of JSON; longer ones are cut (flagged).",
    )
    retention_days: int = _setting(
        "90",
        "`modelport purge` erases stored inputs and outputs older than this (0: keep forever).",
    )
    predict_limit_anonymous: str = _setting(
        "60 per minute", "Predictions per client address without signing in (public models only)."
    )
    predict_limit_user: str = _setting(
        "6000 per minute", "Prediction requests per signed-in user or token."
    )
    registry_poll_seconds: float = _setting(
        "2", "How often each worker checks the registry for moved aliases and new versions."
    )
    instance_path: str = _setting(
        "", "Instance folder (SQLite file, dev secret key). Empty: ./instance."
    )
    max_content_length: int = _setting("2097152", "Largest request body in bytes; larger gets 413.")
    password_min_length: int = _setting("15", "Shortest password accepted (NIST SP 800-63B).")
    password_max_length: int = _setting("256", "Longest password accepted.")
    session_idle_minutes: int = _setting("30", "A session unused this long ends.")
    session_absolute_hours: int = _setting(
        "12", "A session ends this long after sign-in, used or not."
    )
    remember_days: int = _setting("14", "Lifetime of a remember-me sign-in (idle and absolute).")
    require_email_confirmation: bool = _setting(
        "false", "New accounts must confirm their e-mail address before they can sign in."
    )
    reset_token_minutes: int = _setting("60", "Lifetime of password-reset and e-mail links.")
    token_default_scope: str = _setting("predict", "Scope of a new API token when none is given.")
    token_cache_seconds: int = _setting(
        "2",
        "Prediction calls may reuse a token this worker checked this many seconds ago (0: check the database every time). Other endpoints always check.",
    )
    login_limit_account: str = _setting(
        "10 per 15 minutes", "Failed sign-ins allowed per account before 429 (any client address)."
    )
    login_limit_device: str = _setting(
        "10 per 15 minutes",
        "Failed sign-ins allowed per device cookie: a browser that signed in to the account before is counted by this instead of the account's limit.",
    )
    login_limit_ip: str = _setting(
        "50 per 15 minutes", "Failed sign-ins allowed per client address."
    )
    signup_limit: str = _setting("10 per hour", "Sign-ups and reset requests per client address.")
    ratelimit_default: str = _setting("", "Default limit for every route (empty: none).")
    proxy_hops: int = _setting(
        "0",
        "Reverse proxies in front; X-Forwarded-* trusted from this many. The shipped nginx config (`deploy/nginx`) is one. Never set it without that many proxies in front: a client could then choose its own address and escape rate limits.",
    )
    request_head_timeout: float = _setting(
        "5",
        "Seconds a connection has, from when a gunicorn worker takes it, to send its whole request head (a deadline, not per read); then it is closed. Keeps silent or slow clients from holding `modelport serve`'s workers; behind nginx they never reach them.",
    )
    drain_file: str = _setting(
        "",
        "A file whose presence makes `/readyz` answer 503 (draining) while `/healthz` stays 200; `modelport drain` creates it. Kubernetes' preStop step runs that command so the pod leaves the Service before gunicorn gets SIGTERM (docs/deploy.md). Empty: no drain file.",
    )
    mail_server: str = _setting(
        "", "SMTP host. Empty: e-mails are written to the log (development)."
    )
    mail_port: int = _setting("25", "SMTP port.")
    mail_username: str = _setting("", "SMTP user (optional).")
    mail_password: str = _setting("", "SMTP password (optional).", secret=True)
    mail_use_tls: bool = _setting("false", "STARTTLS on the SMTP connection.")
    mail_sender: str = _setting("Modelport <noreply@localhost>", "From: address of e-mails.")
    base_url: str = _setting(
        "",
        "Public https:// URL used in e-mail links; required in production. Empty (development): taken from the request.",
    )
    metrics: bool = _setting(
        "true",
        'Count requests and predictions for Prometheus and serve them at `/metrics` (docs/operations.md, "Metrics and alerts").',
    )
    metrics_token: str = _setting(
        "",
        "A scrape token: `/metrics` answers a request carrying `Authorization: Bearer <token>` from any address. Empty: only `MODELPORT_METRICS_NETWORKS`.",
        secret=True,
    )
    metrics_networks: str = _setting(
        "127.0.0.0/8,::1/128",
        "Client networks (comma-separated CIDR) whose scrapes of `/metrics` need no token, judged on the address the app trusts (the forwarded one behind `MODELPORT_PROXY_HOPS` proxies). Empty: the token only.",
    )
    request_log: bool = _setting(
        "true",
        "Write one line per request (JSON or text, as `MODELPORT_LOG_FORMAT`): time, request id, user id, method, route, status, latency, bytes.",
    )
    drift_p_value: float = _setting(
        "0.05",
        "Drift, reference of at most 1,000 rows: a feature drifts when its test's p-value is below this (KS, chi-square, z-test; docs/monitoring.md).",
    )
    drift_distance: float = _setting(
        "0.1",
        "Drift, larger references: a feature drifts when its distance reaches this (Wasserstein over the reference's standard deviation, Jensen–Shannon).",
    )
    drift_psi: float = _setting(
        "0.1",
        "Drift with method=psi: a feature drifts when its population stability index reaches this.",
    )
    drift_share: float = _setting(
        "0.5", "A model drifts when at least this share of its features drift."
    )
    rollup_seconds: int = _setting(
        "60",
        'Each server process rolls up new prediction records this often (docs/monitoring.md, "Where the figures come from"); 0: only `modelport rollup` does.',
    )
    log_level: str = _setting("INFO", "Logging level.")
    log_format: str = _setting("json", "json (one object per line) or text.")
    languages: str = _setting("en,ko", "Languages offered in the switch.")


_CASTS = {"str": str, "int": int, "bool": bool, "float": float}
SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name.upper(), f.metadata["default"], f.metadata["help"], _CASTS[str(f.type)])
    for f in fields(Settings)
)

_BOOL_TRUE = {"1", "true", "yes", "on"}
_BOOL_FALSE = {"0", "false", "no", "off", ""}

# Settings whose value must be one of a few words.
CHOICES: dict[str, tuple[str, ...]] = {
    "ENV": ENVIRONMENTS,
    "LOG_FORMAT": ("json", "text"),
    "LOG_LEVEL": ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    "TOKEN_DEFAULT_SCOPE": ("predict", "full"),
}

# Smallest sensible value of whole-number settings (-1 disables pool recycling).
MINIMUMS: dict[str, int] = {
    "DB_POOL_SIZE": 1,
    "DB_MAX_OVERFLOW": 0,
    "DB_POOL_RECYCLE": -1,
    "DB_POOL_TIMEOUT": 1,
    "DB_CONNECT_TIMEOUT": 1,
    "SQLITE_BUSY_TIMEOUT_MS": 0,
    "MAX_CONTENT_LENGTH": 1024,
    "PASSWORD_MIN_LENGTH": 8,  # the ASVS floor; 15 (the default) without MFA per NIST
    "PASSWORD_MAX_LENGTH": 64,  # ASVS 6.2.9: passphrases of 64 characters must fit
    "SESSION_IDLE_MINUTES": 1,
    "SESSION_ABSOLUTE_HOURS": 1,
    "REMEMBER_DAYS": 1,
    "RESET_TOKEN_MINUTES": 1,
    "PROXY_HOPS": 0,
    "MAIL_PORT": 1,
    "MAX_BATCH_ROWS": 1,
    "CSV_MAX_ROWS": 1,
    "CSV_MAX_COLUMNS": 0,
    "CSV_MAX_BYTES": 1024,
    "UPLOAD_MAX_BYTES": 1024,
    "RECORD_MAX_BYTES": 0,
    "RETENTION_DAYS": 0,
    "TOKEN_CACHE_SECONDS": 0,
    "ROLLUP_SECONDS": 0,
    "MLFLOW_POLL_SECONDS": 0,
}

# Float settings that are shares or probabilities (the others are seconds).
FRACTIONS = ("DRIFT_P_VALUE", "DRIFT_DISTANCE", "DRIFT_SHARE")

# Rate-limit settings, in Flask-Limiter's notation ("10 per 15 minutes").
RATE_LIMITS = (
    "LOGIN_LIMIT_ACCOUNT",
    "LOGIN_LIMIT_DEVICE",
    "LOGIN_LIMIT_IP",
    "SIGNUP_LIMIT",
    "RATELIMIT_DEFAULT",
    "PREDICT_LIMIT_ANONYMOUS",
    "PREDICT_LIMIT_USER",
)


def _cast(setting: Setting, raw: str) -> Any:
    if setting.cast is bool:
        value = raw.strip().lower()
        if value in _BOOL_TRUE:
            return True
        if value in _BOOL_FALSE:
            return False
        raise ConfigError(f"MODELPORT_{setting.name} must be true or false, not {raw!r}.")
    if setting.cast is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(
                f"MODELPORT_{setting.name} must be a whole number, not {raw!r}."
            ) from None
    if setting.cast is float:
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if setting.name in FRACTIONS:
            if not 0 < value <= 1:
                raise ConfigError(
                    f"MODELPORT_{setting.name} must be a number above 0 and at most 1, not {raw!r}."
                ) from None
            return value
        if not 0 < value < 3600:
            raise ConfigError(
                f"MODELPORT_{setting.name} must be a number of seconds above 0, not {raw!r}."
            ) from None
        return value
    return raw


def networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Comma-separated networks (``10.0.0.0/8``, an address alone is one host); ValueError
    for anything else."""
    return tuple(ipaddress.ip_network(part.strip()) for part in text.split(",") if part.strip())


def _check(values: dict[str, Any]) -> None:
    """Refuse values that parse but make no sense, naming the variable and what is allowed."""
    for name, allowed in CHOICES.items():
        value = values[name]
        if name == "LOG_LEVEL":
            value = values[name] = value.strip().upper()
        if value not in allowed:
            raise ConfigError(
                f"MODELPORT_{name} must be one of {', '.join(allowed)}, not {values[name]!r}."
            )
    for name, minimum in MINIMUMS.items():
        if values[name] < minimum:
            raise ConfigError(f"MODELPORT_{name} must be at least {minimum}, not {values[name]}.")
    if values["MAIL_PORT"] > 65535:
        raise ConfigError(f"MODELPORT_MAIL_PORT must be a TCP port, not {values['MAIL_PORT']}.")
    secret = values["MLFLOW_WEBHOOK_SECRET"]
    if secret and len(secret) < MIN_WEBHOOK_SECRET_LENGTH:
        raise ConfigError(
            f"MODELPORT_MLFLOW_WEBHOOK_SECRET must be at least {MIN_WEBHOOK_SECRET_LENGTH} "
            "characters (or empty: no webhooks)."
        )
    if values["PASSWORD_MAX_LENGTH"] < values["PASSWORD_MIN_LENGTH"]:
        raise ConfigError(
            "MODELPORT_PASSWORD_MAX_LENGTH must not be below MODELPORT_PASSWORD_MIN_LENGTH."
        )
    try:
        networks(values["METRICS_NETWORKS"])
    except ValueError as exc:
        raise ConfigError(
            f"MODELPORT_METRICS_NETWORKS must be networks such as 10.0.0.0/8, "
            f"comma-separated, not {values['METRICS_NETWORKS']!r} ({exc})."
        ) from None
    from limits import parse_many

    for name in RATE_LIMITS:
        if not values[name].strip():
            continue
        try:
            parse_many(values[name])
        except ValueError:
            raise ConfigError(
                f'MODELPORT_{name} must be a rate such as "10 per 15 minutes", '
                f"not {values[name]!r}."
            ) from None


# Settings that may also come from a file named by MODELPORT_<NAME>_FILE: a Secret mounted
# read-only (Kubernetes, docker secrets) rather than an environment variable.
SECRET_FILES = (
    "SECRET_KEY",
    "SECRET_KEY_FALLBACKS",
    "DATABASE_URL",
    "REDIS_URL",
    "MAIL_PASSWORD",
    "METRICS_TOKEN",
    "MLFLOW_WEBHOOK_SECRET",
)


def _from_file(environ: Mapping[str, str], name: str) -> str | None:
    """The content of the file MODELPORT_<name>_FILE names (one trailing newline dropped)."""
    variable = f"MODELPORT_{name}_FILE"
    path = environ.get(variable, "")
    if not path:
        return None
    if f"MODELPORT_{name}" in environ:
        raise ConfigError(f"Set MODELPORT_{name} or {variable}, not both.")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        # The path and the reason only: never the content.
        raise ConfigError(f"{variable}: cannot read {path} ({type(exc).__name__}).") from None
    return text.removesuffix("\n").removesuffix("\r")


def read_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return every setting, typed and checked, from the environment (defaults where unset)."""
    environ = os.environ if environ is None else environ
    values = {}
    for setting in SETTINGS:
        raw = environ.get(f"MODELPORT_{setting.name}", setting.default)
        if setting.name in SECRET_FILES:
            from_file = _from_file(environ, setting.name)
            raw = raw if from_file is None else from_file
        values[setting.name] = _cast(setting, raw)
    _check(values)
    return values


def typed_settings(values: Mapping[str, Any]) -> Settings:
    """``read_settings``' values as the typed ``Settings``."""
    return Settings(**{name.lower(): value for name, value in values.items()})


def signing_keys(config: Mapping[str, Any]) -> list[str | bytes]:
    """The keys an itsdangerous serializer of the app takes: the old ones
    (``SECRET_KEY_FALLBACKS``) then the current one. itsdangerous signs with the last and
    verifies with any, newest first, as Flask's session does."""
    return [*reversed(config.get("SECRET_KEY_FALLBACKS") or []), config["SECRET_KEY"]]


def current_settings() -> Settings:
    """The current app's settings (``create_app`` keeps them on the app)."""
    return current_app.settings  # type: ignore[attr-defined]


def _development_secret(instance_path: Path) -> str:
    """Create once, then reuse, a random key so dev sessions survive restarts.

    The file is readable by its owner only, and is made complete before it appears under
    its name, so two processes starting at once end up with the same key.
    """
    path = instance_path / "secret_key"
    if not path.exists():
        instance_path.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=instance_path, prefix=".secret_key.")  # mode 0600
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
            with contextlib.suppress(FileExistsError):  # another process was first: use theirs
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)  # a copied or hand-made file: tighten it
    key = path.read_text().strip()
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(
            f"{path} holds a key shorter than {MIN_SECRET_KEY_LENGTH} characters; delete the "
            "file and a new random key is created at the next start."
        )
    return key


def check_secret_key(key: str) -> None:
    """Refuse a missing, default or short secret key (production only)."""
    if not key.strip():
        raise ConfigError(
            "MODELPORT_SECRET_KEY is not set; production needs a random value of at least "
            f"{MIN_SECRET_KEY_LENGTH} characters "
            '(python -c "import secrets; print(secrets.token_urlsafe(48))").'
        )
    if key.strip().lower() in WEAK_SECRET_KEYS or len(key) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(
            "MODELPORT_SECRET_KEY must be set to a random value of at least "
            f"{MIN_SECRET_KEY_LENGTH} characters in production, not a default or short one "
            '(python -c "import secrets; print(secrets.token_urlsafe(48))").'
        )


def secret_key_fallbacks(raw: str) -> list[str]:
    """``MODELPORT_SECRET_KEY_FALLBACKS`` as a list of keys, in the order given (newest
    first): comma- or newline-separated, blanks around each key dropped."""
    return [key.strip() for key in raw.replace("\n", ",").split(",") if key.strip()]


def check_secret_key_fallbacks(keys: list[str]) -> None:
    """Refuse a default or short old key in production: it would let anyone sign cookies.
    The message counts the keys; it never shows one."""
    for position, key in enumerate(keys, start=1):
        if key.lower() in WEAK_SECRET_KEYS or len(key) < MIN_SECRET_KEY_LENGTH:
            raise ConfigError(
                f"MODELPORT_SECRET_KEY_FALLBACKS: key {position} of {len(keys)} is a default or "
                f"shorter than {MIN_SECRET_KEY_LENGTH} characters; list only real old keys."
            )


def check_base_url(url: str) -> None:
    """Production e-mail links come from ``MODELPORT_BASE_URL``, never from the Host header,
    which a client chooses (reset-link poisoning)."""
    if not url.startswith("https://") or len(url) <= len("https://"):
        raise ConfigError(
            "MODELPORT_BASE_URL must be set to the site's public https:// address in production "
            "(e-mail links are built from it, never from the request's Host header)."
        )


def flask_config(settings: dict[str, Any], instance_path: Path) -> dict[str, Any]:
    """Translate settings into the Flask and extension configuration keys."""
    env = settings["ENV"]
    production = env == "production"
    secret = settings["SECRET_KEY"]
    fallbacks = secret_key_fallbacks(settings["SECRET_KEY_FALLBACKS"])
    if production:
        check_secret_key(secret)
        check_secret_key_fallbacks(fallbacks)
        check_base_url(settings["BASE_URL"])
    elif not secret:
        secret = (
            "testing-" + secrets.token_hex(16)
            if env == "testing"
            else _development_secret(instance_path)
        )

    db_url = settings["DATABASE_URL"] or f"sqlite:///{instance_path / 'modelport.db'}"
    # SQLite has no server to lose a connection to: pinging it costs a query and proves nothing.
    engine_options: dict[str, Any] = {
        "pool_pre_ping": settings["DB_POOL_PRE_PING"] and not db_url.startswith("sqlite")
    }
    if not db_url.startswith("sqlite"):
        engine_options |= {
            "pool_size": settings["DB_POOL_SIZE"],
            "max_overflow": settings["DB_MAX_OVERFLOW"],
            "pool_recycle": settings["DB_POOL_RECYCLE"],
            "pool_timeout": settings["DB_POOL_TIMEOUT"],
        }
        # Both drivers take connect_timeout (psycopg: the whole handshake; PyMySQL: the TCP
        # connection). One given in the URL's query wins.
        if "connect_timeout" not in make_url(db_url).query:
            engine_options["connect_args"] = {"connect_timeout": settings["DB_CONNECT_TIMEOUT"]}
    else:
        engine_options["connect_args"] = {"timeout": settings["SQLITE_BUSY_TIMEOUT_MS"] / 1000}

    # Prediction records go through an engine of their own on the same database: its
    # connections are in autocommit mode from the start, so a record is one INSERT in one
    # round trip, with no isolation switches, reset or ping around it. A dead connection
    # fails that INSERT before anything is written; the records service then retries once
    # on a fresh connection (modelport.serving.records).
    records_options = engine_options | {
        "pool_pre_ping": False,
        "isolation_level": "AUTOCOMMIT",
        "pool_reset_on_return": None,
    }

    # __Host- cookies must be Secure, Path=/ and without Domain: production only.
    cookie_prefix = "__Host-" if production else ""
    redis_url = settings["REDIS_URL"]
    return {
        "ENV_NAME": env,
        "TESTING": env == "testing",
        "DEBUG": False,
        "SECRET_KEY": secret,
        # Old keys, newest first: Flask's session accepts them (never signs with them), and so
        # do the app's own signers (``signing_keys``).
        "SECRET_KEY_FALLBACKS": fallbacks,
        "SQLALCHEMY_DATABASE_URI": db_url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options,
        "SQLALCHEMY_BINDS": {RECORDS_BIND: {"url": db_url, **records_options}},
        "SQLALCHEMY_TRACK_MODIFICATIONS": False,
        "MAX_CONTENT_LENGTH": settings["MAX_CONTENT_LENGTH"],
        "SESSION_COOKIE_NAME": f"{cookie_prefix}modelport_session",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "SESSION_COOKIE_PATH": "/",
        "PERMANENT_SESSION_LIFETIME": timedelta(days=settings["REMEMBER_DAYS"]),
        "MODELPORT_REMEMBER_COOKIE": f"{cookie_prefix}modelport_remember",
        "DEVICE_COOKIE_NAME": f"{cookie_prefix}modelport_device",
        # Flask-Login's own remember cookie is not used: ours is checked on the server.
        "REMEMBER_COOKIE_NAME": "modelport_flask_login_unused",
        "PREFERRED_URL_SCHEME": "https" if production else "http",
        "WTF_CSRF_CHECK_DEFAULT": False,  # checked in auth.csrf for cookie-authenticated calls only
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session that holds it
        "WTF_CSRF_SSL_STRICT": production,
        "RATELIMIT_STORAGE_URI": redis_url or "memory://",
        # Redis down (docs/operations.md, "When Redis is down"): storage errors arrive as
        # limits' StorageError, a dead or silent server fails within a second rather than
        # hanging a worker, and Flask-Limiter's own limits (sign-up, reset requests) count in
        # each worker's memory until Redis answers again.
        **(
            {
                "RATELIMIT_STORAGE_OPTIONS": {
                    "wrap_exceptions": True,
                    "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
                    "socket_timeout": REDIS_TIMEOUT_SECONDS,
                },
                "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
            }
            if redis_url
            else {}
        ),
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
        "MLFLOW_TRACKING_URI": settings["MLFLOW_TRACKING_URI"]
        or f"sqlite:///{instance_path / 'mlflow.db'}",
        # Where runs logged to the default SQLite store keep their files (a server keeps its own).
        "MLFLOW_ARTIFACTS_DIR": str(instance_path / "mlflow-artifacts"),
        # Argon2id per the OWASP cheat sheet; the testing configuration alone uses cheap ones.
        "ARGON2_PARAMS": (
            {"time_cost": 1, "memory_cost": 8, "parallelism": 1}
            if env == "testing"
            else {"time_cost": 2, "memory_cost": 19 * 1024, "parallelism": 1}
        ),
    }
