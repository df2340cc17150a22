"""Chart builders: span records in, Plotly figure dicts out."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from pathwatch.server.queries.traces import SpanDetail
from pathwatch.web import charts
from tests.web.builders import MS, T0, make_span


def bars_of(figure: dict[str, Any]) -> list[dict[str, Any]]:
    return [trace for trace in figure["data"] if trace["type"] == "bar"]


def bar_field(figure: dict[str, Any], span_id: str, field: str) -> Any:
    for trace in figure["data"]:
        if trace["type"] == "bar" and span_id in trace["customdata"]:
            value = trace[field]
            return value[trace["customdata"].index(span_id)] if isinstance(value, list) else value
    raise AssertionError(f"no bar for {span_id}")


class TestPlotlyText:
    @pytest.mark.parametrize(
        ("text", "escaped"),
        [
            ("tool:search", "tool:search"),
            ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
            ('<img src=x onerror="x()">', '&lt;img src=x onerror="x()"&gt;'),
            ("&lt;b&gt; already escaped", "&amp;lt;b&amp;gt; already escaped"),
            ('<a href="javascript:x()">a</a>', '&lt;a href="javascript:x()"&gt;a&lt;/a&gt;'),
            ("a < b & c > d", "a &lt; b &amp; c &gt; d"),
            ("", ""),
        ],
    )
    def test_plotly_text_escapes_tags_and_entities(self, text: str, escaped: str) -> None:
        assert charts.plotly_text(text) == escaped


class TestWaterfallFigure:
    def test_waterfall_of_no_spans_is_an_empty_chart(self) -> None:
        figure = charts.waterfall_figure([])

        assert figure["data"] == []
        assert figure["layout"]["yaxis"]["tickvals"] == []

    @pytest.mark.parametrize(
        ("spans", "expected_types"),
        [
            ([make_span(0)], ["agent"]),
            (
                [
                    make_span(0),
                    make_span(1, step_type="llm", step_label="llm:gpt"),
                    make_span(2, step_type="tool", step_label="tool:search"),
                    make_span(3, step_type="llm", step_label="llm:gpt"),
                ],
                ["agent", "llm", "tool"],
            ),
            ([make_span(0, step_type="span", step_label="span")], ["span"]),
        ],
    )
    def test_waterfall_has_one_bar_trace_per_step_type(
        self, spans: list[SpanDetail], expected_types: list[str]
    ) -> None:
        figure = charts.waterfall_figure(spans)

        assert [trace["name"] for trace in bars_of(figure)] == expected_types
        drawn = sorted(span_id for trace in bars_of(figure) for span_id in trace["customdata"])
        assert drawn == sorted(span.span_id for span in spans)
        for trace in bars_of(figure):
            assert trace["marker"]["color"] == charts.step_color(trace["name"])
            assert trace["orientation"] == "h"

    @pytest.mark.parametrize(
        ("span", "offset_ms", "width_ms"),
        [
            (make_span(5), 5.0, 10.0),
            (make_span(40, end_time_ns=None, duration_ms=None), 40.0, 0.2),
            (make_span(20, duration_ms=0.0, end_time_ns=T0 + 20 * MS), 20.0, 0.2),
        ],
        ids=["ended", "not-ended", "instant"],
    )
    def test_waterfall_bar_starts_at_offset_with_a_visible_width(
        self, span: SpanDetail, offset_ms: float, width_ms: float
    ) -> None:
        root = make_span(0, duration_ms=50.0, end_time_ns=T0 + 50 * MS)

        figure = charts.waterfall_figure([root, span])

        assert bar_field(figure, span.span_id, "base") == pytest.approx(offset_ms)
        assert bar_field(figure, span.span_id, "x") == pytest.approx(width_ms)

    def test_waterfall_rows_follow_start_order_top_down(self) -> None:
        spans = [make_span(i, step_label=f"tool:t{i}", step_type="tool") for i in range(4)]

        figure = charts.waterfall_figure(spans)

        layout = figure["layout"]
        assert layout["yaxis"]["autorange"] == "reversed"
        assert layout["yaxis"]["tickvals"] == [0, 1, 2, 3]
        assert [bar_field(figure, s.span_id, "y") for s in spans] == [0, 1, 2, 3]
        assert layout["height"] == charts.MARGIN_HEIGHT_PX + 4 * charts.ROW_HEIGHT_PX

    def test_waterfall_bars_have_the_same_width_whatever_the_row_gaps(self) -> None:
        spans = [make_span(0, step_type="llm"), *[make_span(i) for i in range(1, 5)]]
        spans.append(make_span(9, step_type="llm"))

        figure = charts.waterfall_figure(spans)

        assert {trace["width"] for trace in bars_of(figure)} == {charts.BAR_WIDTH_ROWS}

    @pytest.mark.parametrize(
        ("depths", "ticks"),
        [
            ([0], ["agent:helper"]),
            ([0, 1], ["agent:helper" + charts.INDENT, "↳ agent:helper"]),
            (
                [0, 1, 2, 1],
                [
                    "agent:helper" + charts.INDENT * 2,
                    "↳ agent:helper" + charts.INDENT,
                    "↳ agent:helper",
                    "↳ agent:helper" + charts.INDENT,
                ],
            ),
        ],
    )
    def test_waterfall_ticks_are_nested_by_depth(self, depths: list[int], ticks: list[str]) -> None:
        spans = [make_span(i, depth=depth) for i, depth in enumerate(depths)]

        figure = charts.waterfall_figure(spans)

        assert figure["layout"]["yaxis"]["ticktext"] == ticks

    def test_waterfall_marks_orphans_with_a_marker_and_a_tick_sign(self) -> None:
        orphan = make_span(3, parent_span_id="ffffffffffffffff", has_missing_parent=True, depth=0)
        spans = [make_span(0), make_span(1), orphan]

        figure = charts.waterfall_figure(spans)

        markers = [trace for trace in figure["data"] if trace["type"] == "scatter"]
        assert len(markers) == 1
        assert markers[0]["customdata"] == [orphan.span_id]
        assert markers[0]["x"] == [pytest.approx(3.0)]
        assert markers[0]["y"] == [2]
        assert figure["layout"]["yaxis"]["ticktext"][2].startswith("⚠ ")
        assert "missing parent ffffffffffffffff" in markers[0]["hovertext"][0]

    def test_waterfall_without_orphans_has_no_marker_trace(self) -> None:
        figure = charts.waterfall_figure([make_span(0), make_span(1)])

        assert [trace["type"] for trace in figure["data"]] == ["bar"]

    @pytest.mark.parametrize(
        ("is_error", "line_width", "line_color"),
        [(True, 2, charts.ERROR_COLOR), (False, 0, "rgba(0,0,0,0)")],
    )
    def test_waterfall_outlines_error_steps(
        self, is_error: bool, line_width: int, line_color: str
    ) -> None:
        span = make_span(0, is_error=is_error, status_code=2 if is_error else 0)

        line = bars_of(charts.waterfall_figure([span]))[0]["marker"]["line"]

        assert line == {"color": [line_color], "width": [line_width]}

    def test_waterfall_hover_says_duration_status_and_span_name(self) -> None:
        span = make_span(
            0,
            name="execute_tool search",
            duration_ms=1500.0,
            is_error=True,
            status_message="timed out",
        )

        hover = bar_field(charts.waterfall_figure([span]), span.span_id, "hovertext")

        assert hover.split("<br>") == [
            "agent:helper",
            "span: execute_tool search",
            "duration: 1.50 s",
            "status: error: timed out",
        ]

    def test_waterfall_truncates_long_labels_in_ticks_only(self) -> None:
        label = "tool:" + "x" * 200
        span = make_span(0, step_label=label)

        figure = charts.waterfall_figure([span])

        tick = figure["layout"]["yaxis"]["ticktext"][0]
        assert len(tick) == charts.MAX_TICK_CHARS
        assert tick.endswith("…")
        assert label in bar_field(figure, span.span_id, "hovertext")


XSS = '<img src=x onerror="alert(1)">&<script>'


class TestWaterfallEscaping:
    @pytest.mark.parametrize(
        "field",
        ["step_label", "name", "status_message", "step_type"],
    )
    def test_waterfall_escapes_span_text_everywhere_plotly_draws_it(self, field: str) -> None:
        span = make_span(0, is_error=True, **{field: XSS})
        orphan = make_span(1, has_missing_parent=True, **{field: XSS})

        figure = charts.waterfall_figure([span, orphan])

        texts = "\n".join(_drawn_texts(figure))
        assert "<img" not in texts
        assert "<script" not in texts
        assert re.search(r"&(?!amp;|lt;|gt;)", texts) is None
        if field != "step_type":
            assert charts.plotly_text(XSS) in texts

    def test_waterfall_figure_is_json_serialisable(self) -> None:
        spans = [make_span(0), make_span(1, attributes={"k": [1, 2]}, depth=1)]

        assert json.loads(json.dumps(charts.waterfall_figure(spans)))["data"]


def _drawn_texts(figure: dict[str, Any]) -> list[str]:
    """Every string Plotly renders as (pseudo-)HTML: names, hover texts, tick labels."""
    texts: list[str] = list(figure["layout"]["yaxis"]["ticktext"])
    for trace in figure["data"]:
        texts.append(trace["name"])
        texts += trace["hovertext"]
    return texts


def test_step_colors_match_the_stylesheet() -> None:
    css = (Path(charts.__file__).parent / "static" / "pathwatch.css").read_text()

    for step_type, color in charts.STEP_COLORS.items():
        assert f".type-{step_type} {{ background: {color}; }}" in css
