"""Findings on the pages: views of findings, their markers on the waterfall, the filters."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import pytest

from pathwatch.server.analysis.findings import Finding
from pathwatch.web import charts, views
from pathwatch.web.filters import TraceFilters, parse_filters
from tests.web.builders import make_span

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LABELS = {f"{i + 1:016x}": f"tool:t{i}" for i in range(6)}


def finding(*span_ids: str, **changes: Any) -> Finding:
    fields: dict[str, Any] = {"kind": "loop", "severity": "error", "message": "m"}
    fields.update(changes)
    return Finding(span_ids=span_ids, **fields)


def view(*span_ids: str, **changes: Any) -> views.FindingView:
    return views.finding_view(finding(*span_ids, **changes), labels=LABELS)


class TestFindingView:
    def test_finding_view_names_its_rule_and_steps(self) -> None:
        shown = view(
            f"{2:016x}", f"{3:016x}", kind="before", rule_id="lookup-first", rule_version=2
        )

        assert shown.rule == "lookup-first v2"
        assert shown.first_span_id == f"{2:016x}"
        assert shown.steps == ("tool:t1", "tool:t2")
        assert shown.steps_text == "tool:t1 → tool:t2"

    def test_built_in_finding_has_no_rule(self) -> None:
        assert view(f"{1:016x}").rule is None

    def test_finding_view_leaves_out_steps_not_in_the_trace(self) -> None:
        shown = view("00000000deadbeef", f"{4:016x}")

        assert shown.span_ids == (f"{4:016x}",)
        assert shown.first_span_id == f"{4:016x}"

    def test_finding_pinned_on_no_known_step_selects_none(self) -> None:
        shown = view("00000000deadbeef")

        assert (shown.first_span_id, shown.steps, shown.steps_text) == (None, (), "")

    def test_steps_text_shortens_long_lists(self) -> None:
        shown = view(*LABELS)

        assert shown.steps_text == "tool:t0 … (6 steps)"


class TestFindingsByStep:
    def test_findings_by_step_lists_each_finding_once_per_step(self) -> None:
        loop = view(f"{1:016x}", f"{1:016x}", f"{2:016x}")
        rule = view(f"{2:016x}", kind="never", rule_id="r")

        by_step = views.findings_by_step([loop, rule])

        assert by_step == {f"{1:016x}": [loop], f"{2:016x}": [loop, rule]}

    @pytest.mark.parametrize(
        ("severities", "worst"),
        [
            ((), None),
            (("info",), "info"),
            (("info", "warning"), "warning"),
            (("warning", "error", "info"), "error"),
        ],
    )
    def test_worst_severity(self, severities: tuple[str, ...], worst: str | None) -> None:
        found = [view(f"{1:016x}", severity=s) for s in severities]

        assert views.worst_severity(found) == worst

    def test_kinds_text_counts_repeated_kinds(self) -> None:
        assert views.kinds_text({"loop": 2, "stall": 1}) == "loop (2), stall"
        assert views.kinds_text({}) == ""


class TestFindingMarkers:
    def spans(self) -> list[Any]:
        return [make_span(index) for index in range(4)]  # start 0-3 ms, 10 ms long

    def markers(self, figure: dict[str, Any]) -> dict[str, Any]:
        named = [t for t in figure["data"] if t["name"] == charts.FINDINGS_TRACE_NAME]
        assert len(named) == 1
        return named[0]

    def test_waterfall_without_findings_has_no_marker_trace(self) -> None:
        figure = charts.waterfall_figure(self.spans(), findings_by_span={})

        assert [t["name"] for t in figure["data"] if t["type"] == "scatter"] == []

    def test_marker_sits_at_the_end_of_each_pinned_bar(self) -> None:
        spans = self.spans()
        pinned = views.findings_by_step([view(spans[1].span_id, spans[3].span_id)])

        markers = self.markers(charts.waterfall_figure(spans, findings_by_span=pinned))

        assert markers["customdata"] == [spans[1].span_id, spans[3].span_id]
        assert markers["y"] == [1, 3]
        assert markers["x"] == [pytest.approx(11.0), pytest.approx(13.0)]

    def test_marker_color_is_the_worst_severity_on_the_step(self) -> None:
        spans = self.spans()
        pinned = views.findings_by_step(
            [
                view(spans[1].span_id, severity="info"),
                view(spans[1].span_id, severity="warning"),
                view(spans[2].span_id, severity="info"),
            ]
        )

        markers = self.markers(charts.waterfall_figure(spans, findings_by_span=pinned))

        assert markers["marker"]["color"] == [
            charts.SEVERITY_COLORS["warning"],
            charts.SEVERITY_COLORS["info"],
        ]

    def test_marker_hover_escapes_messages_and_caps_the_list(self) -> None:
        spans = self.spans()
        payload = '<img src=x onerror="alert(1)">'
        found = [view(spans[0].span_id, message=f"{payload} {i}") for i in range(7)]

        markers = self.markers(
            charts.waterfall_figure(spans, findings_by_span=views.findings_by_step(found))
        )

        hover = markers["hovertext"][0]
        assert "<img" not in hover
        assert "&lt;img" in hover
        assert hover.count("<br>") == charts.MAX_HOVER_FINDINGS
        assert hover.endswith("… and 2 more")
        assert json.loads(json.dumps(markers))["customdata"] == [spans[0].span_id]


class TestFindingFilters:
    def test_parse_filters_passes_finding_kind_and_rule(self) -> None:
        query = parse_filters(TraceFilters(finding="loop", rule="r-1"), now=NOW)

        assert (query.finding_kind, query.rule_id) == ("loop", "r-1")

    def test_parse_filters_treats_empty_finding_filters_as_none(self) -> None:
        query = parse_filters(TraceFilters(), now=NOW)

        assert (query.finding_kind, query.rule_id) == (None, None)

    def test_finding_filters_count_as_filtered_and_stay_in_links(self) -> None:
        filters = TraceFilters(agent="a", finding="loop", rule="r")

        assert filters.is_filtered
        assert parse_qsl(filters.query(finding="stall", cursor="c")) == [
            ("agent", "a"),
            ("finding", "stall"),
            ("rule", "r"),
            ("cursor", "c"),
        ]


def test_waterfall_of_a_large_trace_draws_no_tick_labels() -> None:
    spans = [make_span(index) for index in range(charts.MAX_LABELLED_ROWS + 1)]

    axis = charts.waterfall_figure(spans)["layout"]["yaxis"]

    assert axis["showticklabels"] is False
    assert "ticktext" not in axis
    assert "ticktext" in charts.waterfall_figure(spans[:-1])["layout"]["yaxis"]
