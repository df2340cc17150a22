"""CSRF checks of the dashboard's forms: origin first, then the token pair."""

from __future__ import annotations

import pytest
from fastapi import Request

from pathwatch.web.csrf import CSRF_COOKIE, csrf_problem, csrf_token

TOKEN = "t" * 43
HOST = "127.0.0.1:8080"


def request(headers: dict[str, str], cookie: str | None = TOKEN) -> Request:
    raw = {"host": HOST, **headers}
    if cookie is not None:
        raw["cookie"] = f"{CSRF_COOKIE}={cookie}"
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/rules/a",
        "scheme": "http",
        "headers": [(k.lower().encode(), v.encode()) for k, v in raw.items()],
    }
    return Request(scope)


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": f"http://{HOST}"},
        {"origin": f"https://{HOST}"},  # behind a TLS-terminating proxy
        {"referer": f"http://{HOST}/rules/a"},
    ],
)
def test_same_origin_post_with_matching_token_passes(headers: dict[str, str]) -> None:
    assert csrf_problem(request(headers), TOKEN) is None


@pytest.mark.parametrize(
    ("headers", "cookie", "field", "problem"),
    [
        ({"origin": "http://attacker.invalid"}, TOKEN, TOKEN, "another site"),
        ({"origin": "http://127.0.0.1:9999"}, TOKEN, TOKEN, "another site"),
        ({"origin": "null"}, TOKEN, TOKEN, "opaque origin"),
        ({}, TOKEN, TOKEN, "no Origin or Referer"),
        ({"referer": "http://attacker.invalid/"}, TOKEN, TOKEN, "another site"),
        ({"origin": f"http://{HOST}"}, None, TOKEN, "token"),
        ({"origin": f"http://{HOST}"}, TOKEN, "", "token"),
        ({"origin": f"http://{HOST}"}, TOKEN, "u" * 43, "token"),
        ({"origin": f"http://{HOST}"}, "short", "short", "token"),
    ],
)
def test_post_is_refused_with_a_reason(
    headers: dict[str, str], cookie: str | None, field: str, problem: str
) -> None:
    reason = csrf_problem(request(headers, cookie), field)

    assert reason is not None
    assert problem in reason


def test_csrf_token_keeps_a_good_cookie_and_replaces_a_bad_one() -> None:
    assert csrf_token(request({})) == TOKEN
    fresh = csrf_token(request({}, cookie="<bad>"))
    assert fresh != "<bad>"
    assert len(fresh) == 43
    assert csrf_token(request({}, cookie=None)) != fresh
