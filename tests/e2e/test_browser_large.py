"""A trace of 5,000 spans in Debian's chromium: the page is served and the waterfall draws.

No wall-clock assertion: benchmarks/dashboard.py measures the server time; this checks
that every bar is drawn, the step list is whole and a step still opens, with no console
error. The trace is built by the benchmark's own builder and sent in one OTLP request.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.conftest import PostgresForTests, RunningServer, start_server, wait_for
from tests.e2e.test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PageWatch,
    open_watch,
    screenshot,
)

pytestmark = pytest.mark.browser

SPAN_COUNT = 5_000
LARGE_AGENT = "large-agent"
DRAW_TIMEOUT_MS = 60_000
BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "dashboard.py"


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dashboard_benchmark", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def large_trace(
    postgres: PostgresForTests, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, str]]:
    name = f"pathwatch_browser_large_{os.getpid()}"
    postgres.execute_admin(f"CREATE DATABASE {name} TEMPLATE {template_database}")
    server = start_server(postgres.url_for(name), tmp_path_factory.mktemp("browser-large"))
    try:
        trace_id = bytes.fromhex("5000" * 8)
        body = load_benchmark().large_trace_request(
            SPAN_COUNT, trace_id=trace_id, agent=LARGE_AGENT
        )
        reply = httpx.post(
            f"{server.otlp_http_url}/v1/traces",
            content=body,
            headers={"Content-Type": "application/x-protobuf"},
            timeout=60,
        )
        assert reply.status_code == 200, reply.text
        wait_for(
            lambda: httpx.get(f"{server.base_url}/api/v1/traces", timeout=10).json()["traces"],
            message="the large trace listed",
        )
        yield server, trace_id.hex()
    finally:
        server.stop()
        postgres.execute_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("the browser tests need Debian's chromium: apt-get install chromium")
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def watch(browser: Browser) -> Iterator[PageWatch]:
    yield from open_watch(browser)


def test_trace_of_5000_spans_draws_every_bar(
    large_trace: tuple[RunningServer, str], watch: PageWatch
) -> None:
    server, trace_id = large_trace
    page = watch.page

    reply = page.goto(f"{server.base_url}/traces/{trace_id}", timeout=DRAW_TIMEOUT_MS)

    assert reply is not None
    assert reply.status == 200
    expect(page.locator("#waterfall[data-drawn=true]")).to_have_count(1, timeout=DRAW_TIMEOUT_MS)
    expect(page.locator("#waterfall .barlayer .point")).to_have_count(SPAN_COUNT)
    expect(page.locator("#step-list li")).to_have_count(SPAN_COUNT)
    middle = page.locator("#step-list a").nth(SPAN_COUNT // 2)
    middle.scroll_into_view_if_needed()
    middle.click()
    expect(page.locator("#step-detail .step")).to_have_attribute(
        "data-span-id", str(middle.get_attribute("data-span-id"))
    )
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "trace-5000-spans", full_page=False)  # the whole page is 130,000 px
    watch.assert_clean()
