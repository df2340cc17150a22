"""CSRF protection of the dashboard's forms: a per-browser token in a SameSite=Strict
cookie, echoed in a hidden field, and a same-origin Origin (or Referer) on every POST.

The token is random and not derived from anything; a form posted from another site has
neither the cookie (SameSite=Strict) nor the token, and carries a foreign Origin.
"""

from __future__ import annotations

import hmac
import re
import secrets
from urllib.parse import urlsplit

from fastapi import Request, Response

CSRF_COOKIE = "pathwatch_csrf"
CSRF_FIELD = "csrf_token"
_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32)


def csrf_token(request: Request) -> str:
    """The browser's token from its cookie, or a new one (set it with `set_csrf_cookie`)."""
    current = request.cookies.get(CSRF_COOKIE, "")
    if _TOKEN_PATTERN.fullmatch(current):
        return current
    return secrets.token_urlsafe(32)


def set_csrf_cookie(request: Request, response: Response, token: str) -> None:
    if request.cookies.get(CSRF_COOKIE) == token:
        return
    response.set_cookie(
        CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def csrf_problem(request: Request, submitted: str) -> str | None:
    """Why a form POST must be refused, or None when it came from our own page.

    The Origin (else the Referer) must name this host; the hidden field must equal the
    cookie. The scheme is not compared, so a TLS-terminating proxy in front still works.
    """
    host = request.headers.get("host", "")
    origin = request.headers.get("origin")
    if origin == "null":
        return "the form was sent from an opaque origin"
    source = origin or request.headers.get("referer")
    if not source:
        return "the request names no Origin or Referer"
    if not host or urlsplit(source).netloc != host:
        return "the form was sent from another site"

    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not _TOKEN_PATTERN.fullmatch(cookie) or not hmac.compare_digest(cookie, submitted):
        return "the form's token is missing or stale; reload the page and try again"
    return None
