"""Security headers on every response, errors included (ASVS 3.4)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

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

FIXED_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
)
HSTS = ("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
NO_STORE = ("Cache-Control", "no-store")


class SecurityHeaders:
    """WSGI middleware that sets the security headers on every response the app sends.

    Around the app rather than in ``after_request``: it also covers answers that never reach
    an after-request hook, and adding a fixed list in ``start_response`` costs a fraction of
    setting a dozen headers one by one on a werkzeug ``Headers`` object per request. A view's
    own Content-Security-Policy is kept; the other headers here always win.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], *, hsts: bool) -> None:
        self.app = app
        self.fixed = [*FIXED_HEADERS, HSTS] if hsts else list(FIXED_HEADERS)
        # Replaced whatever the view said; Access-Control-Allow-Origin is never sent (no CORS:
        # other origins cannot read responses).
        self.replaced = {name.lower() for name, _ in self.fixed} | {"access-control-allow-origin"}
        self.replaced_private = self.replaced | {"cache-control"}

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        cacheable = environ.get("PATH_INFO", "").startswith(PUBLIC_CACHEABLE_PREFIXES)
        replaced = self.replaced if cacheable else self.replaced_private
        fixed = self.fixed

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            kept = [header for header in headers if header[0].lower() not in replaced]
            if not any(name.lower() == "content-security-policy" for name, _ in kept):
                kept.append(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
            kept.extend(fixed)
            if not cacheable:
                kept.append(NO_STORE)
            return start_response(status, kept, exc_info)

        return self.app(environ, start)
