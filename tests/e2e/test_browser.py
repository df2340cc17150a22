"""The dashboard in Debian's chromium, driven by Playwright, on real OTLP data.

One server and one browser per module. The server (short settle and stall windows, so
analysis runs within seconds) gets rules for two agents through the API, then the
captured client bodies of tests/fixtures/clients, one agent run sent through the
OpenTelemetry Python SDK and its OTLP/HTTP exporter (with an error step and a step whose
parent never arrives), the same SDK carrying a stored-XSS corpus in every place a span
can put text, and the demo agents (a loop, a stall, a skipped step). Tests wait until
every trace is analysed. Screenshots of the main pages go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import grpc
import httpx
import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    Request,
    expect,
    sync_playwright,
)

from pathwatch.server.demo import DEMO_AGENTS, run_demo
from tests.conftest import FIXTURES, PostgresForTests, RunningServer, start_server, wait_for

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
GRPC_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
UI_TIMEOUT_MS = 10_000

SDK_AGENT = "sdk-weather-agent"
# Each payload bumps window.__xss if it ever runs as script or markup.
XSS_PAYLOADS = (
    "<script>window.__xss++</script>",
    '<img src=x onerror="window.__xss++">',
    "<svg onload=window.__xss++><circle r=9></circle></svg>",
    '"><svg/onload=window.__xss++>',
    "</script><script>window.__xss++</script>",
    '<a href="javascript:window.__xss++">javascript:window.__xss++</a>',
    '<iframe srcdoc="<script>parent.__xss++</script>"></iframe>',
    "<b onmouseover=window.__xss++>&amp; &lt;hover&gt;</b>",
)
XSS_AGENT = XSS_PAYLOADS[1]
# Chromium logs an error reply to a navigation as a console error; tests that expect one
# check it is the only one.
UNPROCESSABLE = (
    "Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
)
FORBIDDEN = "Failed to load resource: the server responded with a status of 403 (Forbidden)"
NOT_FOUND = "Failed to load resource: the server responded with a status of 404 (Not Found)"
SHORT_WINDOWS = ("--settle-seconds", "1", "--stall-timeout", "2")
LOOP_AGENT = "doc-searcher"
LOOP_RULE = "search-at-most-twice"
LOOP_RULES = f"""\
version: 1
rules:
  - id: {LOOP_RULE}
    kind: max_repeats
    severity: warning
    description: search_docs at most twice a run
    match: {{type: tool, name: search_docs}}
    max: 2
"""
# Every payload in the rule text; the rule flags every tool call, whose labels carry them.
XSS_RULES = "version: 1\nrules:\n  - id: no-tools\n    kind: never\n" + (
    f"    description: {json.dumps(' '.join(XSS_PAYLOADS))}\n    match: {{type: tool}}\n"
)
SKIPPING_AGENT = "research-assistant"
RETRIEVAL_RULES = """\
version: 1
rules:
  - id: retrieve-before-answering
    kind: eventually
    severity: error
    match: {type: retrieval}
    by: {type: llm}
"""
INVALID_RULES = """\
version: 1
rules:
  - id: ok-rule
    kind: never
    match: {type: tool}
  - id: bad kind
    kind: sometimes
    match: {type: tool}
"""
# Runs before any page script: counts alerts and script runs, and collects CSP reports.
PAGE_HOOKS = """
window.__xss = 0;
window.__csp = [];
window.alert = window.confirm = window.prompt = function () { window.__xss++; };
document.addEventListener("securitypolicyviolation", function (event) {
  window.__csp.push(event.violatedDirective + " " + event.blockedURI);
});
"""


@dataclass
class Seeded:
    server: RunningServer
    client_trace_ids: dict[str, str]
    sdk_trace_id: str
    orphan_span_id: str
    xss_trace_id: str
    trace_count: int


@dataclass
class PageWatch:
    """A page and what went wrong on it: console errors and uncaught exceptions."""

    page: Page
    errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert self.errors == [], "\n".join(self.errors)
        assert self.foreign_requests == []
        assert self.page.evaluate("window.__csp") == []
        assert self.page.evaluate("window.__xss") == 0


def post_client_bodies(server: RunningServer) -> dict[str, str]:
    """Send every captured client body as its client did; returns client → trace id."""
    index = json.loads((FIXTURES / "clients" / "index.json").read_text())
    channel = grpc.insecure_channel(server.otlp_grpc_target)
    export = channel.unary_unary(GRPC_EXPORT)
    try:
        for entry in index:
            body = (FIXTURES / "clients" / entry["file"]).read_bytes()
            if entry["transport"] == "grpc":
                export(body, timeout=10)
                continue
            headers = {"Content-Type": entry["content_type"]}
            if entry["content_encoding"]:
                headers["Content-Encoding"] = entry["content_encoding"]
            reply = httpx.post(
                f"{server.otlp_http_url}/v1/traces", content=body, headers=headers, timeout=10
            )
            assert reply.status_code == 200, (entry["file"], reply.text)
    finally:
        channel.close()
    return {entry["client"]: entry["trace_id"] for entry in index}


def sdk_provider(server: RunningServer, *, service_name: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    exporter = OTLPSpanExporter(endpoint=f"{server.otlp_http_url}/v1/traces", timeout=10)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def emit_sdk_run(server: RunningServer) -> tuple[str, str]:
    """An agent run with a failing tool and a step whose parent is never exported.

    Returns the trace id and the orphan's span id.
    """
    provider = sdk_provider(server, service_name="weather-service")
    tracer = provider.get_tracer("pathwatch-browser-tests")
    with tracer.start_as_current_span(
        "invoke_agent weather",
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": SDK_AGENT},
    ) as root:
        with tracer.start_as_current_span(
            "chat gpt-4o-mini",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": 14,
            },
        ):
            pass
        with tracer.start_as_current_span(
            "execute_tool get_forecast",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "get_forecast",
                "gen_ai.tool.call.arguments": '{"city": "Lyon", "days": 3}',
                "forecast.region": "Auvergne-Rhône-Alpes",
            },
        ) as tool:
            tool.add_event("retry", {"attempt": 2})
            tool.set_status(Status(StatusCode.ERROR, "upstream timed out"))
        lost_parent = SpanContext(
            trace_id=root.get_span_context().trace_id,
            span_id=0x0BADC0FFEE0DDF00,
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        context = otel_trace.set_span_in_context(NonRecordingSpan(lost_parent))
        with tracer.start_as_current_span(
            "execute_tool summarise",
            context=context,
            attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "summarise"},
        ) as orphan:
            orphan_id = f"{orphan.get_span_context().span_id:016x}"
    provider.shutdown()
    return f"{root.get_span_context().trace_id:032x}", orphan_id


def emit_xss_run(server: RunningServer) -> str:
    """Every payload as service name, agent name, span names, tool names, attribute keys
    and values, event names and status message."""
    provider = sdk_provider(server, service_name=XSS_PAYLOADS[0])
    tracer = provider.get_tracer("pathwatch-xss")
    corpus = {f"x.{i}.{payload}": payload for i, payload in enumerate(XSS_PAYLOADS)}
    with tracer.start_as_current_span(
        XSS_PAYLOADS[2],
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": XSS_AGENT},
    ) as root:
        for payload in XSS_PAYLOADS:
            with tracer.start_as_current_span(
                payload,
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": payload,
                    "gen_ai.tool.call.arguments": json.dumps({"q": payload}),
                    "gen_ai.tool.call.result": payload,
                    **corpus,
                },
            ) as step:
                step.add_event(payload, {payload: payload})
                step.set_status(Status(StatusCode.ERROR, payload))
    provider.shutdown()
    return f"{root.get_span_context().trace_id:032x}"


def listed_traces(server: RunningServer) -> list[dict[str, Any]]:
    page = httpx.get(f"{server.base_url}/api/v1/traces", params={"limit": 500}, timeout=10)
    traces: list[dict[str, Any]] = page.json()["traces"]
    return traces


def put_rules(server: RunningServer, agent: str, body: str) -> int:
    reply = httpx.put(
        f"{server.base_url}/api/v1/rules/{quote(agent, safe='')}", json={"body": body}, timeout=10
    )
    assert reply.status_code == 200, reply.text
    version: int = reply.json()["version"]
    return version


def rule_versions(server: RunningServer, agent: str) -> list[int]:
    reply = httpx.get(
        f"{server.base_url}/api/v1/rules/{quote(agent, safe='')}/versions", timeout=10
    )
    return [stored["version"] for stored in reply.json()]


def all_analysed(server: RunningServer, expected: int) -> bool:
    """Every trace listed and finished, and the findings the seeds must give are stored."""
    traces = listed_traces(server)
    if len(traces) < expected or any(t["status"] == "open" for t in traces):
        return False
    found = httpx.get(f"{server.base_url}/api/v1/findings", params={"limit": 1000}, timeout=10)
    kinds = {(f["agent_name"], f["kind"]) for f in found.json()["findings"]}
    needed = {
        (LOOP_AGENT, "loop"),
        (LOOP_AGENT, "max_repeats"),
        ("report-writer", "stall"),
        (SKIPPING_AGENT, "skipped_step"),
        (XSS_AGENT, "never"),
        (XSS_AGENT, "error_step"),
        (SDK_AGENT, "error_step"),
    }
    return needed <= kinds


@pytest.fixture(scope="module")
def seeded(
    postgres: PostgresForTests, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Seeded]:
    name = f"pathwatch_browser_{os.getpid()}"
    postgres.execute_admin(f"CREATE DATABASE {name} TEMPLATE {template_database}")
    server = start_server(
        postgres.url_for(name), tmp_path_factory.mktemp("browser-serve"), extra_args=SHORT_WINDOWS
    )
    try:
        put_rules(server, LOOP_AGENT, LOOP_RULES)
        put_rules(server, XSS_AGENT, XSS_RULES)
        client_trace_ids = post_client_bodies(server)
        sdk_trace_id, orphan_span_id = emit_sdk_run(server)
        xss_trace_id = emit_xss_run(server)
        assert run_demo(server.otlp_http_url) == 0
        expected = len(set(client_trace_ids.values())) + 2 + sum(a.runs for a in DEMO_AGENTS)
        wait_for(
            lambda: all_analysed(server, expected),
            timeout=60,
            message=f"{expected} traces finished and analysed",
        )
        yield Seeded(server, client_trace_ids, sdk_trace_id, orphan_span_id, xss_trace_id, expected)
    finally:
        server.stop()
        postgres.execute_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail("the browser tests need Debian's chromium: apt-get install chromium")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield launched
    launched.close()


def open_watch(browser: Browser, *, bypass_csp: bool = False) -> Iterator[PageWatch]:
    context = browser.new_context(viewport={"width": 1360, "height": 900}, bypass_csp=bypass_csp)
    context.set_default_timeout(UI_TIMEOUT_MS)
    context.add_init_script(PAGE_HOOKS)
    page = context.new_page()
    watch = PageWatch(page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watch.errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: watch.errors.append(f"uncaught: {error}"))

    def on_request(request: Request) -> None:
        # Air-gapped: nothing but our own server (and inline data: URLs) is ever asked for.
        if not request.url.startswith(("http://127.0.0.1:", "data:")):
            watch.foreign_requests.append(request.url)

    page.on("request", on_request)
    yield watch
    context.close()


@pytest.fixture
def watch(browser: Browser) -> Iterator[PageWatch]:
    yield from open_watch(browser)


@pytest.fixture
def watch_without_csp(browser: Browser) -> Iterator[PageWatch]:
    """A page that ignores our Content-Security-Policy: escaping alone must hold."""
    yield from open_watch(browser, bypass_csp=True)


def screenshot(page: Page, name: str, *, full_page: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def wait_for_waterfall(page: Page) -> None:
    expect(page.locator("#waterfall[data-drawn=true]")).to_have_count(1)


def bar_center(page: Page, *, span_id: str) -> tuple[float, float]:
    """Where the waterfall bar that carries `span_id` is, found through Plotly's own data."""
    position = page.evaluate(
        """(spanId) => {
          const chart = document.getElementById("waterfall");
          const bars = chart.querySelectorAll(".barlayer .trace");
          for (let t = 0; t < chart.data.length; t++) {
            const index = (chart.data[t].customdata || []).indexOf(spanId);
            if (index < 0 || chart.data[t].type !== "bar") continue;
            const layer = Array.from(bars).find(
              (g) => g.__data__ && g.__data__[0].trace.index === t);
            const path = layer.querySelectorAll(".point path")[index];
            path.scrollIntoView({ block: "center" });
            const box = path.getBoundingClientRect();
            return { x: box.left + box.width / 2, y: box.top + box.height / 2 };
          }
          return null;
        }""",
        span_id,
    )
    assert position is not None, f"no bar for span {span_id}"
    return position["x"], position["y"]


def click_bar(page: Page, *, span_id: str) -> None:
    page.mouse.click(*bar_center(page, span_id=span_id))


def chart_trace(page: Page, name: str) -> dict[str, Any]:
    """The data of the waterfall's Plotly trace called `name`, as the chart holds it."""
    data: dict[str, Any] | None = page.evaluate(
        """(name) => {
          const trace = document.getElementById("waterfall").data.find((t) => t.name === name);
          return trace ? { customdata: trace.customdata, hovertext: trace.hovertext } : null;
        }""",
        name,
    )
    assert data is not None, f"no chart trace named {name}"
    return data


def marker_center(page: Page, *, name: str, span_id: str) -> tuple[float, float]:
    """Where the marker of the scatter trace `name` that carries `span_id` is drawn."""
    position = page.evaluate(
        """([name, spanId]) => {
          const chart = document.getElementById("waterfall");
          const t = chart.data.findIndex((trace) => trace.name === name);
          const index = t < 0 ? -1 : chart.data[t].customdata.indexOf(spanId);
          if (index < 0) return null;
          const layer = Array.from(chart.querySelectorAll(".scatterlayer .trace")).find(
            (g) => g.__data__ && g.__data__[0].trace.index === t);
          const point = layer.querySelectorAll(".point")[index];
          point.scrollIntoView({ block: "center" });
          const box = point.getBoundingClientRect();
          return { x: box.left + box.width / 2, y: box.top + box.height / 2 };
        }""",
        [name, span_id],
    )
    assert position is not None, f"no {name} marker on span {span_id}"
    return position["x"], position["y"]


def expect_only_console_errors(watch: PageWatch, expected: list[str]) -> None:
    """Wait (pumping the page's events) until the console holds `expected`, check it holds
    nothing else, and forget them."""
    for _ in range(100):
        if len(watch.errors) >= len(expected):
            break
        watch.page.wait_for_timeout(50)
    assert watch.errors == expected
    watch.errors.clear()


def rules_url(server: RunningServer, agent: str) -> str:
    return f"{server.base_url}/rules/{quote(agent, safe='')}"


class TestTracesPage:
    def test_traces_page_lists_every_trace_with_its_columns(
        self, seeded: Seeded, watch: PageWatch
    ) -> None:
        page = watch.page

        page.goto(f"{seeded.server.base_url}/")

        rows = page.locator("#traces-table tbody tr")
        expect(rows).to_have_count(seeded.trace_count)
        sdk_row = page.locator(f"tr[data-trace-id='{seeded.sdk_trace_id}']")
        expect(sdk_row).to_contain_text(SDK_AGENT)
        expect(sdk_row).to_contain_text(re.compile(r"\d+(\.\d+)? (ms|s|µs)"))
        expect(sdk_row.locator("td").nth(3)).to_have_text("4")
        expect(sdk_row.locator(".status")).to_have_text(re.compile("open|complete"))
        screenshot(page, "traces")
        watch.assert_clean()

    def test_traces_page_filters_by_agent_and_status(
        self, seeded: Seeded, watch: PageWatch
    ) -> None:
        page = watch.page
        wait_for(
            lambda: (
                httpx.get(
                    f"{seeded.server.base_url}/api/v1/traces/{seeded.sdk_trace_id}", timeout=10
                ).json()["trace"]["status"]
                == "complete"
            ),
            message="the SDK trace to complete",
        )
        page.goto(f"{seeded.server.base_url}/traces")

        page.select_option("#filter-agent", SDK_AGENT)
        page.select_option("#filter-status", "complete")
        page.click("#trace-filters button[type=submit]")

        expect(page).to_have_url(re.compile(r"agent=sdk-weather-agent.*status=complete"))
        rows = page.locator("#traces-table tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_attribute("data-trace-id", seeded.sdk_trace_id)
        page.select_option("#filter-status", "stalled")
        page.click("#trace-filters button[type=submit]")
        expect(page.locator("#traces-table")).to_have_count(0)
        expect(page.locator(".empty")).to_contain_text("No traces match")
        watch.assert_clean()

    def test_traces_page_pages_to_older_traces_by_keyset(
        self, seeded: Seeded, watch: PageWatch
    ) -> None:
        page = watch.page
        total = seeded.trace_count
        seen: list[str] = []

        page.goto(f"{seeded.server.base_url}/traces")
        for _ in range(10):
            seen += page.locator("#traces-table tbody tr").evaluate_all(
                "(rows) => rows.map((row) => row.dataset.traceId)"
            )
            older = page.locator("#older")
            if older.count() == 0:
                break
            older.click()

        assert len(seen) == total
        assert len(set(seen)) == total
        watch.assert_clean()


class TestTracePage:
    def test_trace_page_sends_a_strict_content_security_policy(
        self, seeded: Seeded, watch: PageWatch
    ) -> None:
        reply = watch.page.goto(f"{seeded.server.base_url}/traces/{seeded.sdk_trace_id}")

        assert reply is not None
        policy = dict(
            directive.strip().split(" ", 1)
            for directive in reply.headers["content-security-policy"].split(";")
        )
        assert policy["script-src"] == "'self'"
        assert "unsafe-inline" not in reply.headers["content-security-policy"]
        assert "unsafe-eval" not in reply.headers["content-security-policy"]
        assert policy["default-src"] == "'none'"
        scripts = watch.page.locator("script[src]").evaluate_all("(s) => s.map((e) => e.src)")
        assert all(src.startswith(seeded.server.base_url + "/static/") for src in scripts)
        assert any("plotly" in src for src in scripts)
        wait_for_waterfall(watch.page)
        watch.assert_clean()

    def test_trace_page_draws_the_waterfall_without_errors(
        self, seeded: Seeded, watch: PageWatch
    ) -> None:
        page = watch.page

        page.goto(f"{seeded.server.base_url}/traces/{seeded.client_trace_ids['otel-py-http']}")

        wait_for_waterfall(page)
        expect(page.locator("#waterfall .barlayer .point")).to_have_count(7)
        heights = page.locator("#waterfall .barlayer .point path").evaluate_all(
            "(paths) => paths.map((path) => path.getBoundingClientRect().height)"
        )
        assert max(heights) - min(heights) < 1, heights
        ticks = page.locator("#waterfall .ytick text").all_text_contents()
        assert any("tool:search_docs" in tick for tick in ticks)
        expect(page.locator("#path li")).to_have_count(6)
        screenshot(page, "trace-otel-py-http")
        watch.assert_clean()

    def test_trace_page_draws_every_clients_trace(self, seeded: Seeded, watch: PageWatch) -> None:
        page = watch.page
        index = json.loads((FIXTURES / "clients" / "index.json").read_text())

        for entry in index:
            page.goto(f"{seeded.server.base_url}/traces/{entry['trace_id']}")
            wait_for_waterfall(page)
            expect(page.locator("#waterfall .barlayer .point")).to_have_count(entry["spans"])
            expect(page.locator("#step-list li")).to_have_count(entry["spans"])
            if entry["client"] in ("openinference-langgraph", "traceloop"):
                screenshot(page, f"trace-{entry['client']}")

        watch.assert_clean()

    def test_trace_page_shows_a_steps_attributes_on_click(
        self, seeded: Seeded, watch: PageWatch
    ) -> None:
        page = watch.page
        page.goto(f"{seeded.server.base_url}/traces")
        page.select_option("#filter-agent", SDK_AGENT)
        page.click("#trace-filters button[type=submit]")
        page.locator(f"tr[data-trace-id='{seeded.sdk_trace_id}'] a.agent").click()
        wait_for_waterfall(page)
        detail = page.locator("#step-detail")
        expect(detail).not_to_contain_text("forecast.region")
        tool_span = page.locator("#step-list a", has_text="tool:get_forecast")
        tool_span_id = tool_span.get_attribute("data-span-id")
        assert tool_span_id is not None

        click_bar(page, span_id=tool_span_id)

        expect(detail.locator(".step-label")).to_have_text("tool:get_forecast")
        expect(detail.locator("#step-attributes")).to_contain_text("forecast.region")
        expect(detail.locator("#step-attributes")).to_contain_text("Auvergne-Rhône-Alpes")
        expect(detail).to_contain_text("upstream timed out")
        expect(detail.locator(".event")).to_contain_text("retry")
        expect(detail.locator("#step-resource")).to_contain_text("weather-service")
        expect(page).to_have_url(re.compile(f"step={tool_span_id}"))
        screenshot(page, "trace-sdk-step")
        page.reload()
        expect(detail.locator(".step-label")).to_have_text("tool:get_forecast")
        expect(page.locator("#step-list a[aria-current=true]")).to_have_text(
            re.compile("tool:get_forecast")
        )
        watch.assert_clean()

    def test_trace_page_marks_a_step_whose_parent_never_arrived(
        self, seeded: Seeded, watch: PageWatch
    ) -> None:
        page = watch.page

        page.goto(f"{seeded.server.base_url}/traces/{seeded.sdk_trace_id}")

        wait_for_waterfall(page)
        assert chart_trace(page, "missing parent")["customdata"] == [seeded.orphan_span_id]
        orphan_tick = page.locator("#waterfall .ytick text", has_text="tool:summarise")
        expect(orphan_tick).to_contain_text("⚠")
        page.locator(f"#step-list a[data-span-id='{seeded.orphan_span_id}']").click()
        expect(page.locator("#step-detail")).to_contain_text("missing: never arrived")
        watch.assert_clean()

    def test_trace_page_of_an_unknown_trace_is_a_404_page(
        self, seeded: Seeded, watch: PageWatch
    ) -> None:
        reply = watch.page.goto(f"{seeded.server.base_url}/traces/{'0' * 31}1")

        assert reply is not None
        assert reply.status == 404
        expect(watch.page.locator("h1")).to_have_text("Not found")
        assert watch.errors == [
            "Failed to load resource: the server responded with a status of 404 (Not Found)"
        ]
        watch.errors.clear()
        watch.assert_clean()


class TestFindings:
    def test_person_follows_a_loop_from_the_list_to_its_pinned_steps(
        self, seeded: Seeded, watch: PageWatch
    ) -> None:
        page = watch.page
        page.goto(f"{seeded.server.base_url}/traces")
        expect(page.locator("#kind-counts a[data-kind=loop]")).to_be_visible()

        page.select_option("#filter-finding", "loop")
        page.click("#trace-filters button[type=submit]")

        expect(page).to_have_url(re.compile(r"finding=loop"))
        rows = page.locator("#traces-table tbody tr")
        loop_traces = len(set(seeded.client_trace_ids.values())) + 2  # a loop in each
        expect(rows).to_have_count(loop_traces)
        for text in rows.locator(".finding-kinds").all_inner_texts():
            assert "loop" in text
        expect(page.locator("#kind-counts a[aria-current=true]")).to_have_attribute(
            "data-kind", "loop"
        )
        screenshot(page, "traces-finding-loop")
        page.locator("#traces-table tbody tr", has_text=LOOP_AGENT).first.locator("a.agent").click()

        wait_for_waterfall(page)
        loop_row = page.locator("#finding-list tr.finding", has_text="loop")
        expect(loop_row.locator(".severity")).to_have_text("error")
        expect(loop_row.locator(".finding-rule")).to_have_text("built-in")
        expect(loop_row.locator(".finding-message")).to_contain_text("search_docs called 4 times")
        rule_row = page.locator("#finding-list tr.finding", has_text=LOOP_RULE)
        expect(rule_row.locator(".finding-kind")).to_have_text("max_repeats")
        pinned = chart_trace(page, "findings")["customdata"]
        badges = page.locator("#step-list li.has-findings")
        expect(badges).to_have_count(len(pinned))
        assert len(pinned) >= 4
        for label in badges.locator(".step-label").all_inner_texts():
            assert label == "tool:search_docs"
        first_loop_step = loop_row.locator("a[data-span-id]").get_attribute("data-span-id")

        loop_row.locator("a[data-span-id]").click()

        detail = page.locator("#step-detail")
        expect(detail.locator(".step-label")).to_have_text("tool:search_docs")
        expect(detail.locator(".step")).to_have_attribute("data-span-id", str(first_loop_step))
        expect(detail.locator("#step-findings")).to_contain_text("loop")
        expect(page.locator("#step-list a[aria-current=true]")).to_have_attribute(
            "data-span-id", str(first_loop_step)
        )
        expect(page).to_have_url(re.compile(f"step={first_loop_step}"))
        screenshot(page, "trace-loop-finding")

        page.mouse.click(*marker_center(page, name="findings", span_id=pinned[-1]))
        expect(detail.locator(".step")).to_have_attribute("data-span-id", pinned[-1])
        expect(detail.locator("#step-findings")).to_contain_text("loop")
        watch.assert_clean()

    def test_traces_page_counts_finding_kinds_for_the_current_filter(
        self, seeded: Seeded, watch: PageWatch
    ) -> None:
        page = watch.page

        page.goto(f"{seeded.server.base_url}/traces?agent={LOOP_AGENT}")

        chips = page.locator("#kind-counts a.kind-chip")
        expect(chips).to_have_count(2)
        expect(page.locator("#kind-counts a[data-kind=loop] .kind-count")).to_have_text("2")
        expect(page.locator("#kind-counts a[data-kind=max_repeats] .kind-count")).to_have_text("2")
        page.goto(f"{seeded.server.base_url}/traces?agent=report-writer")
        expect(page.locator("#kind-counts a.kind-chip")).to_have_count(1)
        expect(page.locator("#kind-counts a[data-kind=stall]")).to_be_visible()
        expect(page.locator("#traces-table .finding-kinds")).to_have_text("stall")
        watch.assert_clean()

    def test_traces_page_filters_by_rule(self, seeded: Seeded, watch: PageWatch) -> None:
        page = watch.page
        page.goto(f"{seeded.server.base_url}/traces")

        page.select_option("#filter-rule", LOOP_RULE)
        page.click("#trace-filters button[type=submit]")

        rows = page.locator("#traces-table tbody tr")
        expect(rows).to_have_count(2)
        for text in rows.locator("a.agent").all_inner_texts():
            assert text == LOOP_AGENT
        expect(page.locator("#kind-counts a.kind-chip")).to_have_count(1)
        watch.assert_clean()

    def test_stalled_trace_shows_its_hung_step_pinned(
        self, seeded: Seeded, watch: PageWatch
    ) -> None:
        page = watch.page
        page.goto(f"{seeded.server.base_url}/traces?finding=stall")
        page.locator("#traces-table a.agent").first.click()
        wait_for_waterfall(page)

        stall = page.locator("#finding-list tr.finding", has_text="stall")
        expect(stall.locator(".finding-steps")).to_contain_text("tool:render_pdf")
        stall.locator("a[data-span-id]").click()

        expect(page.locator("#step-detail .step-label")).to_have_text("tool:render_pdf")
        screenshot(page, "trace-stall-finding")
        watch.assert_clean()


class TestRulesPages:
    def test_rules_list_shows_each_agent_and_its_current_version(
        self, seeded: Seeded, watch: PageWatch
    ) -> None:
        page = watch.page

        page.goto(f"{seeded.server.base_url}/rules")

        expect(
            page.locator(f"#rules-agents tr[data-agent='{LOOP_AGENT}'] .rules-version")
        ).to_have_text(re.compile(r"v\d+"))
        expect(page.locator("#rules-agents tr[data-agent='order-support']")).to_contain_text(
            "no rules"
        )
        screenshot(page, "rules")
        watch.assert_clean()

    def test_person_edits_dry_runs_and_saves_rules(self, seeded: Seeded, watch: PageWatch) -> None:
        page = watch.page
        server = seeded.server
        assert rule_versions(server, SKIPPING_AGENT) == []
        page.goto(f"{server.base_url}/rules")
        page.locator(f"#rules-agents tr[data-agent='{SKIPPING_AGENT}'] a.agent").click()
        expect(page.locator("#rules-agent")).to_have_text(SKIPPING_AGENT)
        expect(page.locator("#rules-versions")).to_have_count(0)

        page.fill("#rules-body", INVALID_RULES)
        with page.expect_response(lambda r: r.request.method == "POST") as posted:
            page.click("#save")
        assert posted.value.status == 422
        expect_only_console_errors(watch, [UNPROCESSABLE])
        problems = page.locator("#rules-problems li")
        expect(problems.first).to_contain_text(re.compile(r"line [67]"))
        expect(page.locator("#rules-problems")).to_contain_text("rules[1]")
        expect(page.locator("#rules-body")).to_have_value(INVALID_RULES)
        screenshot(page, "rules-invalid")
        assert rule_versions(server, SKIPPING_AGENT) == []

        page.fill("#rules-body", RETRIEVAL_RULES)
        page.click("#dry-run")

        runs = sum(a.runs for a in DEMO_AGENTS if a.name == SKIPPING_AGENT)
        expect(page.locator("#dry-run-summary")).to_have_text(
            f"1 of {runs} recent runs would be flagged."
        )
        flagged = page.locator(".dry-run-trace")
        expect(flagged).to_have_count(1)
        expect(flagged).to_contain_text("retrieve-before-answering")
        expect(flagged.locator(".finding-kind")).to_have_text("eventually")
        screenshot(page, "rules-dry-run")
        assert rule_versions(server, SKIPPING_AGENT) == []
        trace_link = flagged.locator("a.mono")
        flagged_trace = trace_link.inner_text()

        page.click("#save")

        expect(page).to_have_url(re.compile(r"\?saved=1$"))
        expect(page.locator("#saved-notice")).to_have_text("Saved as version 1.")
        expect(page.locator("#rules-versions li")).to_have_count(1)
        expect(page.locator("#rules-body")).to_have_value(RETRIEVAL_RULES)
        assert rule_versions(server, SKIPPING_AGENT) == [1]
        page.goto(f"{server.base_url}/rules")
        expect(
            page.locator(f"#rules-agents tr[data-agent='{SKIPPING_AGENT}'] .rules-version")
        ).to_have_text("v1")
        page.goto(f"{server.base_url}/traces/{flagged_trace}")
        expect(page.locator("#finding-list")).to_contain_text("skipped_step")
        watch.assert_clean()

    def test_rules_page_shows_an_older_version(self, seeded: Seeded, watch: PageWatch) -> None:
        page = watch.page
        versions = rule_versions(seeded.server, LOOP_AGENT)

        page.goto(f"{rules_url(seeded.server, LOOP_AGENT)}?version={versions[-1]}")

        expect(page.locator("#rules-versions li[aria-current=true]")).to_have_attribute(
            "data-version", str(versions[-1])
        )
        expect(page.locator("#rules-body")).to_have_value(LOOP_RULES)
        watch.assert_clean()


class TestCsrf:
    def test_cross_site_form_post_is_refused_and_saves_nothing(
        self, seeded: Seeded, watch: PageWatch
    ) -> None:
        page = watch.page
        server = seeded.server
        before = rule_versions(server, LOOP_AGENT)
        page.goto(rules_url(server, LOOP_AGENT))  # the browser holds a token cookie now
        target = rules_url(server, LOOP_AGENT)
        # A page of another site, served by Playwright itself: nothing leaves the machine.
        page.route(
            "http://attacker.invalid/",
            lambda route: route.fulfill(
                content_type="text/html",
                body=(
                    f'<form method="post" action="{target}">'
                    '<input name="body" value="version: 1\nrules: []">'
                    '<input name="action" value="save">'
                    '<input name="csrf_token" value="guessed">'
                    '<button id="go">go</button></form>'
                ),
            ),
        )
        page.goto("http://attacker.invalid/")
        watch.foreign_requests.clear()

        with page.expect_response(lambda r: r.request.method == "POST") as posted:
            page.click("#go")

        assert posted.value.status == 403
        expect(page.locator("#error-message")).to_contain_text("another site")
        assert rule_versions(server, LOOP_AGENT) == before
        expect_only_console_errors(watch, [FORBIDDEN])
        watch.assert_clean()

    @pytest.mark.parametrize(
        ("headers", "cookie", "field"),
        [
            ({"Origin": "http://attacker.invalid"}, "a" * 43, "a" * 43),
            ({}, "a" * 43, "a" * 43),
            ({"Origin": "null"}, "a" * 43, "a" * 43),
            ({"Origin": "{base}"}, None, ""),
            ({"Origin": "{base}"}, "a" * 43, "b" * 43),
            ({"Referer": "http://attacker.invalid/x"}, "a" * 43, "a" * 43),
        ],
        ids=["foreign-origin", "no-origin", "null-origin", "no-token", "wrong-token", "referer"],
    )
    def test_form_post_without_origin_and_token_is_refused(
        self, seeded: Seeded, headers: dict[str, str], cookie: str | None, field: str
    ) -> None:
        server = seeded.server
        before = rule_versions(server, LOOP_AGENT)
        headers = {k: v.format(base=server.base_url) for k, v in headers.items()}
        cookies = {"pathwatch_csrf": cookie} if cookie else {}

        reply = httpx.post(
            rules_url(server, LOOP_AGENT),
            data={"body": LOOP_RULES, "action": "save", "csrf_token": field},
            headers=headers,
            cookies=cookies,
            timeout=10,
        )

        assert reply.status_code == 403
        assert reply.headers["content-type"].startswith("text/html")
        assert rule_versions(server, LOOP_AGENT) == before

    def test_form_post_with_origin_and_token_saves(self, seeded: Seeded) -> None:
        server = seeded.server
        before = rule_versions(server, XSS_AGENT)
        token = "c" * 43

        reply = httpx.post(
            rules_url(server, XSS_AGENT),
            data={"body": XSS_RULES, "action": "save", "csrf_token": token},
            headers={"Origin": server.base_url},
            cookies={"pathwatch_csrf": token},
            timeout=10,
        )

        assert reply.status_code == 303
        assert rule_versions(server, XSS_AGENT) == [before[0] + 1, *before]

    def test_rules_page_sets_a_strict_http_only_token_cookie(
        self, seeded: Seeded, watch: PageWatch
    ) -> None:
        watch.page.goto(rules_url(seeded.server, LOOP_AGENT))

        cookies = {c["name"]: c for c in watch.page.context.cookies()}
        assert cookies["pathwatch_csrf"]["sameSite"] == "Strict"
        assert cookies["pathwatch_csrf"]["httpOnly"]
        field = watch.page.locator("#rules-form input[name=csrf_token]")
        expect(field).to_have_value(cookies["pathwatch_csrf"]["value"])
        watch.assert_clean()


class TestErrorPages:
    @pytest.mark.parametrize(
        ("path", "status"),
        [
            ("/no-such-page", 404),
            ("/traces/not-hex", 422),
            ("/traces/{trace}/steps/zz", 422),
            ("/traces/{trace}/steps/00000000000000ff", 404),
            ("/traces/{trace}/extra/segments", 404),
            ("/rules/doc-searcher?version=abc", 422),
            ("/rules/doc-searcher?version=999", 404),
        ],
    )
    def test_dashboard_errors_are_html_pages(self, seeded: Seeded, path: str, status: int) -> None:
        url = seeded.server.base_url + path.format(trace=seeded.sdk_trace_id)

        reply = httpx.get(url, timeout=10)

        assert reply.status_code == status
        assert reply.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in reply.headers["content-security-policy"]
        assert "<h1>" in reply.text

    def test_api_errors_stay_json(self, seeded: Seeded) -> None:
        for path in ("/api/v1/no-such", "/api/v1/traces/not-hex", "/api/v1/traces?limit=x"):
            reply = httpx.get(seeded.server.base_url + path, timeout=10)

            assert reply.status_code in (404, 422)
            assert reply.headers["content-type"] == "application/json"

    def test_unknown_page_shows_the_404_page(self, seeded: Seeded, watch: PageWatch) -> None:
        reply = watch.page.goto(f"{seeded.server.base_url}/no-such-page")

        assert reply is not None
        assert reply.status == 404
        expect(watch.page.locator("h1")).to_have_text("Not found")
        screenshot(watch.page, "error-404")
        expect_only_console_errors(watch, [NOT_FOUND])
        watch.assert_clean()


class TestStoredXss:
    def test_traces_page_shows_payloads_as_text(
        self, seeded: Seeded, watch_without_csp: PageWatch
    ) -> None:
        page = watch_without_csp.page

        page.goto(f"{seeded.server.base_url}/traces")

        row = page.locator(f"tr[data-trace-id='{seeded.xss_trace_id}']")
        expect(row.locator("a.agent")).to_have_text(XSS_AGENT)
        expect(page.locator("#filter-agent option", has_text=XSS_AGENT)).to_have_count(1)
        assert_no_injected_markup(page)
        watch_without_csp.assert_clean()

    def test_trace_page_and_chart_show_payloads_as_text(
        self, seeded: Seeded, watch_without_csp: PageWatch
    ) -> None:
        page = watch_without_csp.page

        page.goto(f"{seeded.server.base_url}/traces/{seeded.xss_trace_id}")
        wait_for_waterfall(page)
        first_tool = page.locator("#step-list a").nth(1).get_attribute("data-span-id")
        assert first_tool is not None
        page.mouse.move(*bar_center(page, span_id=first_tool))

        ticks = " ".join(page.locator("#waterfall .ytick text").all_text_contents())
        for payload in XSS_PAYLOADS[1:]:
            assert f"tool:{payload}"[:40] in ticks
        expect(page.locator("#path li").first).to_have_text(f"tool:{XSS_PAYLOADS[0]}")
        expect(page.locator("#waterfall .hovertext")).to_have_count(1)
        assert_no_injected_markup(page)
        screenshot(page, "trace-xss")
        watch_without_csp.assert_clean()

    def test_step_panel_shows_payloads_as_text(
        self, seeded: Seeded, watch_without_csp: PageWatch
    ) -> None:
        page = watch_without_csp.page
        page.goto(f"{seeded.server.base_url}/traces/{seeded.xss_trace_id}")
        wait_for_waterfall(page)

        for index, payload in enumerate(XSS_PAYLOADS):
            page.locator("#step-list a").nth(index + 1).click()
            detail = page.locator("#step-detail")
            expect(detail.locator(".step-label")).to_have_text(f"tool:{payload}")
            attributes = detail.locator("#step-attributes").inner_text()
            assert all(f"x.{i}.{p}" in attributes for i, p in enumerate(XSS_PAYLOADS))
            expect(detail.locator("#step-resource")).to_contain_text(XSS_PAYLOADS[0])
            expect(detail.locator(".event")).to_contain_text(payload)
            assert_no_injected_markup(page)
        watch_without_csp.assert_clean()

    def test_pages_run_no_payload_with_csp_enforced(self, seeded: Seeded, watch: PageWatch) -> None:
        page = watch.page

        page.goto(f"{seeded.server.base_url}/traces/{seeded.xss_trace_id}")
        wait_for_waterfall(page)
        page.locator("#step-list a").nth(2).click()
        expect(page.locator("#step-detail .step-label")).to_have_text(f"tool:{XSS_PAYLOADS[1]}")

        assert_no_injected_markup(page)
        watch.assert_clean()

    def test_trace_findings_show_payloads_as_text(
        self, seeded: Seeded, watch_without_csp: PageWatch
    ) -> None:
        page = watch_without_csp.page
        page.goto(f"{seeded.server.base_url}/traces/{seeded.xss_trace_id}")
        wait_for_waterfall(page)

        messages = " ".join(page.locator("#finding-list .finding-message").all_inner_texts())
        for payload in XSS_PAYLOADS:
            assert f"tool:{payload} must never happen" in messages
            assert f"tool call {payload} failed" in messages
        hover = " ".join(chart_trace(page, "findings")["hovertext"])
        assert "&lt;script&gt;" in hover
        first = page.locator("#finding-list a[data-span-id]").first
        first.click()
        expect(page.locator("#step-findings")).to_contain_text(XSS_PAYLOADS[0])
        pinned = chart_trace(page, "findings")["customdata"]
        page.mouse.move(*marker_center(page, name="findings", span_id=pinned[0]))
        expect(page.locator("#waterfall .hovertext")).to_contain_text("must never happen")
        assert_no_injected_markup(page)
        screenshot(page, "trace-xss-findings")
        watch_without_csp.assert_clean()

    def test_rules_pages_show_payloads_as_text(
        self, seeded: Seeded, watch_without_csp: PageWatch
    ) -> None:
        page = watch_without_csp.page
        page.goto(f"{seeded.server.base_url}/rules")
        row = page.locator("#rules-agents a.agent", has_text=XSS_AGENT)
        expect(row).to_have_text(XSS_AGENT)
        row.click()

        expect(page.locator("#rules-agent")).to_have_text(XSS_AGENT)
        expect(page.locator("#rules-body")).to_have_value(XSS_RULES)
        page.click("#dry-run")

        expect(page.locator("#dry-run-summary")).to_have_text(
            "1 of 1 recent runs would be flagged."
        )
        messages = " ".join(page.locator(".dry-run-trace .finding-message").all_inner_texts())
        for payload in XSS_PAYLOADS:
            assert f"tool:{payload} must never happen" in messages
        page.fill("#rules-body", XSS_RULES + "  - " + XSS_PAYLOADS[4] + "\n")
        page.click("#save")
        expect(page.locator("#rules-problems")).to_be_visible()
        expect(page.locator("#rules-body")).to_have_value(
            XSS_RULES + "  - " + XSS_PAYLOADS[4] + "\n"
        )
        assert_no_injected_markup(page)
        screenshot(page, "rules-xss")
        expect_only_console_errors(watch_without_csp, [UNPROCESSABLE])
        watch_without_csp.assert_clean()


def assert_no_injected_markup(page: Page) -> None:
    """No element a payload would create exists anywhere outside our own page chrome."""
    injected = page.evaluate(
        """() => {
          const found = [];
          document.querySelectorAll("img, iframe, svg[onload], a[href^='javascript']").forEach(
            (element) => found.push(element.outerHTML.slice(0, 80)));
          document.querySelectorAll("*").forEach((element) => {
            for (const attribute of element.attributes) {
              if (/^on/i.test(attribute.name)) found.push(element.outerHTML.slice(0, 80));
            }
          });
          document.querySelectorAll("script").forEach((element) => {
            if (!element.src && element.type !== "application/json") {
              found.push(element.outerHTML.slice(0, 80));
            }
          });
          return found;
        }"""
    )
    assert injected == []
