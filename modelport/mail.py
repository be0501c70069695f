"""Outgoing e-mail: SMTP when ``MODELPORT_MAIL_SERVER`` is set, else the log (development)."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage

from flask import current_app

log = logging.getLogger("modelport.mail")


def send_mail(to: str, subject: str, body: str) -> None:
    """Send one plain-text message. Failures are logged, never shown to the requester."""
    settings = current_app.config["MODELPORT"]
    message = EmailMessage()
    message["From"] = settings["MAIL_SENDER"]
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    if not settings["MAIL_SERVER"]:
        log.info(
            "mail (no MODELPORT_MAIL_SERVER set, logged instead)",
            extra={"fields": {"to": to, "subject": subject, "body": body}},
        )
        return
    try:
        with smtplib.SMTP(settings["MAIL_SERVER"], settings["MAIL_PORT"], timeout=10) as smtp:
            if settings["MAIL_USE_TLS"]:
                smtp.starttls()
            if settings["MAIL_USERNAME"]:
                smtp.login(settings["MAIL_USERNAME"], settings["MAIL_PASSWORD"])
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        # Same answer to the requester either way: a mail failure must not reveal accounts.
        log.error("mail delivery failed", extra={"fields": {"to": to, "error": str(exc)}})
