"""Security headers on every response, errors included (ASVS 3.4)."""

from __future__ import annotations

from flask import Flask, Response, current_app, request

# Scripts and styles come only from this site; nothing may embed, frame or re-base a page.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
)

# Only static assets may be cached: every page and API answer can carry personal data.
PUBLIC_CACHEABLE_PREFIXES = ("/static/", "/api/docs/assets/")


def set_security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "same-origin"
    headers["X-Frame-Options"] = "DENY"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    if current_app.config["ENV_NAME"] == "production":
        headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    if not request.path.startswith(PUBLIC_CACHEABLE_PREFIXES):
        headers["Cache-Control"] = "no-store"
    # No CORS: Access-Control-Allow-Origin is never set, so other origins cannot read responses.
    headers.pop("Access-Control-Allow-Origin", None)
    return response


def register_headers(app: Flask) -> None:
    app.after_request(set_security_headers)
