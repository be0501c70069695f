"""Outgoing e-mail: SMTP when ``MODELPORT_MAIL_SERVER`` is set, else the log (development).

Delivery happens on a background thread, so a request that sends mail (sign-up with a taken
address, reset of a known one) takes as long as one that does not: response time must not
reveal which addresses have accounts.
"""

from __future__ import annotations

import logging
import os
import smtplib
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from email.message import EmailMessage

from modelport.config import Settings, current_settings

log = logging.getLogger("modelport.mail")

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_executor_pid = 0
_pending: set[Future] = set()


def _pool() -> ThreadPoolExecutor:
    """One small pool per process (a pool made before gunicorn forks has no threads)."""
    global _executor, _executor_pid
    with _lock:
        if _executor is None or _executor_pid != os.getpid():
            _executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="modelport-mail")
            _executor_pid = os.getpid()
        return _executor


def _deliver(settings: Settings, message: EmailMessage) -> None:
    try:
        with smtplib.SMTP(settings.mail_server, settings.mail_port, timeout=10) as smtp:
            if settings.mail_use_tls:
                smtp.starttls()
            if settings.mail_username:
                smtp.login(settings.mail_username, settings.mail_password)
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        # The requester already has the same answer either way; the operator sees this.
        log.error(
            "mail delivery failed", extra={"fields": {"to": message["To"], "error": str(exc)}}
        )


def send_mail(to: str, subject: str, body: str) -> None:
    """Queue one plain-text message for delivery. Failures are logged, never shown."""
    settings = current_settings()
    message = EmailMessage()
    message["From"] = settings.mail_sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    if not settings.mail_server:
        if settings.env == "production":
            # Bodies carry reset and confirmation links, which are credentials: a production
            # log never holds them, so an unconfigured server only says what was not sent.
            log.error(
                "mail not sent: MODELPORT_MAIL_SERVER is not set",
                extra={"fields": {"to": to, "subject": subject}},
            )
            return
        log.info(
            "mail (no MODELPORT_MAIL_SERVER set, logged instead)",
            extra={"fields": {"to": to, "subject": subject, "body": body}},
        )
        return
    future = _pool().submit(_deliver, settings, message)  # frozen: safe to share
    with _lock:
        _pending.add(future)
    future.add_done_callback(_forget)


def _forget(future: Future) -> None:
    with _lock:
        _pending.discard(future)


def wait_for_delivery(timeout: float = 10.0) -> None:
    """Block until queued messages are handed to the SMTP server (tests, shutdown)."""
    with _lock:
        pending = set(_pending)
    if pending:
        wait(pending, timeout=timeout)
