"""What the templates show: durations, times, attribute values, the step panel, filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qsl

import pytest

from pathwatch.web import views
from pathwatch.web.filters import FilterError, TraceFilters, parse_filters
from tests.web.builders import make_span

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("duration_ms", "text"),
    [
        (None, "—"),
        (0.047, "47 µs"),
        (12.34, "12.3 ms"),
        (999.9, "999.9 ms"),
        (1500.0, "1.50 s"),
        (125_000.0, "2 min 5 s"),
    ],
)
def test_format_duration_picks_a_readable_unit(duration_ms: float | None, text: str) -> None:
    assert views.format_duration(duration_ms) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain <b>text</b>", "plain <b>text</b>"),
        (3, "3"),
        (True, "true"),
        ([1, "a"], '[\n  1,\n  "a"\n]'),
        ({"b": 1, "a": None}, '{\n  "a": null,\n  "b": 1\n}'),
    ],
)
def test_format_value_keeps_strings_and_indents_json(value: object, text: str) -> None:
    assert views.format_value(value) == text


def test_format_time_is_utc_whatever_the_zone() -> None:
    paris = datetime(2025, 3, 1, 14, 30, 5, tzinfo=timezone(timedelta(hours=1)))

    assert views.format_time(paris) == "2025-03-01 13:30:05 UTC"
    assert views.format_time(None) == "—"


class TestStepView:
    def test_step_view_sorts_attributes_and_marks_blocks(self) -> None:
        span = make_span(
            1,
            attributes={"z": "short", "a": {"nested": [1, 2]}, "m": "x" * 200},
        )

        view = views.step_view(span)

        assert [(f.key, f.is_block) for f in view.attributes] == [
            ("a", True),
            ("m", True),
            ("z", False),
        ]

    def test_step_view_says_when_the_parent_never_arrived(self) -> None:
        span = make_span(2, parent_span_id="ffffffffffffffff", has_missing_parent=True)

        summary = {f.key: f.text for f in views.step_view(span).summary}

        assert summary["parent span id"] == "ffffffffffffffff (missing: never arrived)"

    @pytest.mark.parametrize(
        ("changes", "key", "text"),
        [
            ({"status_code": 2, "status_message": "boom"}, "status", "error: boom"),
            ({"status_code": 1}, "status", "ok"),
            ({"kind": 3}, "kind", "client"),
            ({"model": "gpt-4o", "step_type": "llm"}, "model", "gpt-4o"),
            ({"input_tokens": 12}, "input tokens", "12"),
            ({"parent_span_id": None, "depth": 0}, "parent span id", "— (root)"),
        ],
    )
    def test_step_view_summary_names_each_field(
        self, changes: dict[str, object], key: str, text: str
    ) -> None:
        summary = {f.key: f.text for f in views.step_view(make_span(1, **changes)).summary}

        assert summary[key] == text

    def test_step_view_leaves_out_empty_fields(self) -> None:
        keys = [f.key for f in views.step_view(make_span(1)).summary]

        assert "model" not in keys
        assert "tool" not in keys

    def test_step_view_reads_events_and_tool_call(self) -> None:
        span = make_span(
            1,
            events=[
                {"name": "retry", "time_ns": 1_700_000_000_000_000_000, "attributes": {"n": 2}}
            ],
            tool_arguments={"city": "Lyon"},
            tool_result="sunny",
        )

        view = views.step_view(span)

        assert view.events[0].name == "retry"
        assert view.events[0].at == "2023-11-14 22:13:20.000 UTC"
        assert view.events[0].attributes == [views.Field("n", "2", is_block=False)]
        assert view.tool_arguments == '{\n  "city": "Lyon"\n}'
        assert view.tool_result == "sunny"


class TestFilters:
    @pytest.mark.parametrize(
        ("filters", "start_from", "start_to"),
        [
            (TraceFilters(), None, None),
            (TraceFilters(last="1h"), NOW - timedelta(hours=1), None),
            (TraceFilters(last="7d"), NOW - timedelta(days=7), None),
            (
                TraceFilters(start_from="2025-02-01T10:30", start_to="2025-02-02T00:00"),
                datetime(2025, 2, 1, 10, 30, tzinfo=UTC),
                datetime(2025, 2, 2, tzinfo=UTC),
            ),
            (
                TraceFilters(last="15m", start_from="2025-02-01T10:30"),
                datetime(2025, 2, 1, 10, 30, tzinfo=UTC),
                None,
            ),
        ],
    )
    def test_parse_filters_turns_windows_and_times_into_utc_bounds(
        self, filters: TraceFilters, start_from: datetime | None, start_to: datetime | None
    ) -> None:
        query = parse_filters(filters, now=NOW)

        assert (query.start_from, query.start_to) == (start_from, start_to)

    def test_parse_filters_treats_empty_values_as_no_filter(self) -> None:
        query = parse_filters(TraceFilters(agent="", status="", cursor=""), now=NOW)

        assert (query.agent, query.status, query.cursor) == (None, None, None)

    @pytest.mark.parametrize(
        ("filters", "message"),
        [
            (TraceFilters(status="done"), "status must be one of"),
            (TraceFilters(last="1y"), "last must be one of"),
            (TraceFilters(start_from="yesterday"), "from must be a date and time"),
            (TraceFilters(start_to="2025-13-01T00:00"), "to must be a date and time"),
        ],
    )
    def test_parse_filters_refuses_what_it_cannot_use(
        self, filters: TraceFilters, message: str
    ) -> None:
        with pytest.raises(FilterError, match=message):
            parse_filters(filters, now=NOW)

    def test_filters_query_keeps_filters_and_swaps_the_cursor(self) -> None:
        filters = TraceFilters(agent="a&b=c", status="open", start_from="2025-02-01T10:30")

        query = filters.query(cursor="abc==")

        assert parse_qsl(query) == [
            ("agent", "a&b=c"),
            ("status", "open"),
            ("from", "2025-02-01T10:30"),
            ("cursor", "abc=="),
        ]
        assert TraceFilters(cursor="x").query(cursor="") == ""
