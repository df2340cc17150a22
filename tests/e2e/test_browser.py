"""The dashboard in Debian's chromium, driven by Playwright, on real OTLP data.

One server and one browser per module. The server gets the captured client bodies of
tests/fixtures/clients, one agent run sent through the OpenTelemetry Python SDK and
its OTLP/HTTP exporter (with an error step and a step whose parent never arrives), and
the same SDK carrying a stored-XSS corpus in every place a span can put text.
Screenshots of the main pages go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

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

from tests.conftest import FIXTURES, PostgresForTests, RunningServer, wait_for
from tests.e2e.ingest_support import module_server

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


def listed_trace_count(server: RunningServer) -> int:
    page = httpx.get(f"{server.base_url}/api/v1/traces", params={"limit": 500}, timeout=10)
    return len(page.json()["traces"])


@pytest.fixture(scope="module")
def seeded(
    postgres: PostgresForTests, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Seeded]:
    log_dir = tmp_path_factory.mktemp("browser-serve")
    for server in module_server(postgres, template_database, log_dir):
        client_trace_ids = post_client_bodies(server)
        sdk_trace_id, orphan_span_id = emit_sdk_run(server)
        xss_trace_id = emit_xss_run(server)
        expected = len(set(client_trace_ids.values())) + 2
        wait_for(
            lambda server=server, expected=expected: listed_trace_count(server) >= expected,
            message=f"{expected} traces listed",
        )
        yield Seeded(server, client_trace_ids, sdk_trace_id, orphan_span_id, xss_trace_id)


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


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


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


class TestTracesPage:
    def test_traces_page_lists_every_trace_with_its_columns(
        self, seeded: Seeded, watch: PageWatch
    ) -> None:
        page = watch.page

        page.goto(f"{seeded.server.base_url}/")

        rows = page.locator("#traces-table tbody tr")
        expect(rows).to_have_count(len(set(seeded.client_trace_ids.values())) + 2)
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
        total = len(set(seeded.client_trace_ids.values())) + 2
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
        markers = page.locator("#waterfall .scatterlayer .point")
        expect(markers).to_have_count(1)
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
