"""Helpers for the ingestion end-to-end tests: a server per module and reads through the API."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PostgresForTests, RunningServer, start_server, wait_for

_database_numbers = itertools.count(1)
MAX_LIST_PAGES = 50


def module_server(
    postgres: PostgresForTests,
    template_database: str,
    log_dir: Path,
    *,
    env: dict[str, str] | None = None,
) -> Iterator[RunningServer]:
    """A server on its own fresh database, for one test module; stops and drops both."""
    name = f"pathwatch_ingest_{os.getpid()}_{next(_database_numbers)}"
    postgres.execute_admin(f"CREATE DATABASE {name} TEMPLATE {template_database}")
    running = start_server(postgres.url_for(name), log_dir, env=env)
    try:
        yield running
    finally:
        running.stop()
        postgres.execute_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def fetch_trace(server: RunningServer, trace_id: str) -> dict[str, Any] | None:
    """The API's view of one trace, or None when it is not stored."""
    reply = httpx.get(f"{server.base_url}/api/v1/traces/{trace_id}", timeout=10)
    if reply.status_code == 404:
        return None
    assert reply.status_code == 200, reply.text
    detail: dict[str, Any] = reply.json()
    return detail


def list_trace_ids(server: RunningServer) -> list[str]:
    """Every listed trace id, all pages, in list order (a trace listed twice appears twice)."""
    ids: list[str] = []
    cursor: str | None = None
    for _ in range(MAX_LIST_PAGES):
        params: dict[str, str | int] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = httpx.get(f"{server.base_url}/api/v1/traces", params=params, timeout=10).json()
        ids += [t["trace_id"] for t in page["traces"]]
        cursor = page["next_cursor"]
        if not cursor:
            return ids
    pytest.fail(f"trace list longer than {MAX_LIST_PAGES} pages")


def wait_for_spans(server: RunningServer, trace_id: str, count: int) -> dict[str, Any]:
    """Poll until the trace holds at least `count` spans; return its detail."""

    def enough() -> dict[str, Any] | None:
        detail = fetch_trace(server, trace_id)
        return detail if detail and len(detail["spans"]) >= count else None

    detail: dict[str, Any] = wait_for(enough, message=f"{count} spans of trace {trace_id}")
    return detail


def assert_whole_trace(server: RunningServer, trace_id: str, span_count: int) -> dict[str, Any]:
    """Each span once, one listed trace, one root, no missing parent; returns the detail."""
    detail = fetch_trace(server, trace_id)

    assert detail is not None, f"trace {trace_id} is not stored"
    span_ids = [s["span_id"] for s in detail["spans"]]
    assert len(span_ids) == span_count
    assert len(set(span_ids)) == span_count
    assert detail["trace"]["span_count"] == span_count
    assert detail["trace"]["has_root"]
    assert [s["parent_span_id"] for s in detail["spans"]].count(None) == 1
    assert not [s["span_id"] for s in detail["spans"] if s["has_missing_parent"]]
    assert len(detail["tree"]) == 1
    assert list_trace_ids(server).count(trace_id) == 1
    return detail


def steps_by_name(detail: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Steps grouped by the name of their span, in start order."""
    names = {s["span_id"]: s["name"] for s in detail["spans"]}
    grouped: dict[str, list[dict[str, Any]]] = {}
    for step in detail["steps"]:
        grouped.setdefault(names[step["span_id"]], []).append(step)
    return grouped


def post_otlp(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{url}/v1/traces", content=body, headers=headers, timeout=30)
