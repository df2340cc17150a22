"""Requests a hostile page or client can send: each gets a clear 4xx, never a 500, and
changes nothing it should not."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import RunningServer


@pytest.mark.parametrize(
    "path",
    [
        "/traces?agent=%00",
        "/traces?finding=%00",
        "/api/v1/traces?agent=%00",
        "/api/v1/findings?kind=%00",
        "/api/v1/rules/%00",
        "/rules/%00",
    ],
)
def test_url_with_nul_gets_400(shared_server: RunningServer, path: str) -> None:
    reply = httpx.get(f"{shared_server.base_url}{path}")

    assert reply.status_code == 400
    assert "U+0000" in reply.text


def test_foreign_host_header_is_refused(shared_server: RunningServer) -> None:
    rules = "version: 1\nrules:\n  - {id: r, kind: max_steps, max: 5}\n"

    reply = httpx.put(
        f"{shared_server.base_url}/api/v1/rules/rebound",
        json={"body": rules},
        headers={"Host": "evil.example", "Origin": "http://evil.example"},
    )
    stored = httpx.get(f"{shared_server.base_url}/api/v1/rules/rebound")

    assert reply.status_code == 400
    assert stored.status_code == 404


def test_rules_api_takes_agent_names_with_slashes(shared_server: RunningServer) -> None:
    rules = "version: 1\nrules:\n  - {id: r, kind: max_steps, max: 5}\n"
    url = f"{shared_server.base_url}/api/v1/rules/team%2Fagent"

    saved = httpx.put(url, json={"body": rules})
    versions = httpx.get(f"{url}/versions")
    dry = httpx.post(f"{url}/dry-run", json={"body": rules})

    assert saved.status_code == 200
    assert saved.json()["agent_name"] == "team/agent"
    assert [v["version"] for v in versions.json()] == [1]
    assert dry.status_code == 200


def test_rules_with_nested_yaml_aliases_are_refused_quickly(shared_server: RunningServer) -> None:
    levels = ['  a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"  a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 9)]
    body = (
        "version: 1\ndefs:\n"
        + "\n".join(levels)
        + ("\nrules:\n  - {id: s, kind: max_steps, max: 4, description: *a8}\n")
    )

    reply = httpx.post(
        f"{shared_server.base_url}/api/v1/rules/laughs/dry-run", json={"body": body}, timeout=10
    )

    assert reply.status_code == 422
    assert len(reply.content) < 2_000
    assert "aliases" in reply.text


def test_span_time_past_int64_is_rejected_alone(shared_server: RunningServer) -> None:
    spans = [
        {"traceId": "5b8efff798038103d269b633813fc60d", "spanId": "eee19b7ec3c1b174",
         "name": "ok", "startTimeUnixNano": "1", "endTimeUnixNano": "2"},
        {"traceId": "5b8efff798038103d269b633813fc60d", "spanId": "eee19b7ec3c1b175",
         "name": "far", "startTimeUnixNano": "9223372036854775808"},
    ]  # fmt: skip
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})

    reply = httpx.post(
        f"{shared_server.otlp_http_url}/v1/traces",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    stored = httpx.get(
        f"{shared_server.base_url}/api/v1/traces/5b8efff798038103d269b633813fc60d"
    ).json()

    assert reply.status_code == 200
    assert reply.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert [s["name"] for s in stored["spans"]] == ["ok"]
