"""Chart builders: pure functions from span records to Plotly figure dicts.

Plotly renders a small HTML subset in every text it draws (tick labels, hover text,
legend names), so every string that comes from a span passes through `plotly_text`
before it goes into a figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pathwatch.server.queries.traces import SpanDetail
from pathwatch.web.views import FindingView, format_duration, worst_severity

STEP_COLORS = {
    "agent": "#6b7280",
    "chain": "#9ca3af",
    "llm": "#2563eb",
    "tool": "#d97706",
    "retrieval": "#059669",
    "embedding": "#7c3aed",
    "rerank": "#0891b2",
    "guardrail": "#be185d",
    "evaluator": "#4d7c0f",
}
OTHER_COLOR = "#a8a29e"
ERROR_COLOR = "#dc2626"
ORPHAN_COLOR = "#b91c1c"
SEVERITY_COLORS = {"error": "#dc2626", "warning": "#d97706", "info": "#2563eb"}
FINDINGS_TRACE_NAME = "findings"
MAX_HOVER_FINDINGS = 5
# Past this many rows the waterfall draws no tick labels: plotly.js lays out array tick
# labels in time quadratic in their number (5,000 labelled rows took minutes in Chromium,
# unlabelled 0.3 s). The step list beside the chart and each bar's hover name the steps.
MAX_LABELLED_ROWS = 300
ROW_HEIGHT_PX = 26
MARGIN_HEIGHT_PX = 110
MAX_TICK_CHARS = 48
INDENT = "\u00a0" * 3
BAR_WIDTH_ROWS = 0.7
# A step with no end, or an instant one, still gets a visible sliver of the axis.
MIN_BAR_FRACTION = 0.004


@dataclass(frozen=True)
class StepBar:
    """One bar of the waterfall: where it sits, how long it is, what it says on hover."""

    row: int
    span_id: str
    step_type: str
    offset_ms: float
    width_ms: float
    tick: str
    hover: str
    is_error: bool
    is_orphan: bool


def plotly_text(text: str) -> str:
    """Escape `text` for a Plotly label: Plotly reads `<` as a tag and `&` as an entity."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def step_color(step_type: str) -> str:
    return STEP_COLORS.get(step_type, OTHER_COLOR)


def step_bars(spans: Sequence[SpanDetail]) -> list[StepBar]:
    """One bar per span, in the given (start) order; offsets from the earliest start."""
    if not spans:
        return []
    origin_ns = min(s.start_time_ns for s in spans)
    end_ns = max(max(s.end_time_ns or s.start_time_ns, s.start_time_ns) for s in spans)
    min_width_ms = max((end_ns - origin_ns) / 1e6 * MIN_BAR_FRACTION, 0.001)
    max_depth = max(s.depth for s in spans)
    return [
        _step_bar(
            span, row=row, origin_ns=origin_ns, min_width_ms=min_width_ms, max_depth=max_depth
        )
        for row, span in enumerate(spans)
    ]


def _step_bar(
    span: SpanDetail, *, row: int, origin_ns: int, min_width_ms: float, max_depth: int
) -> StepBar:
    duration_ms = span.duration_ms
    return StepBar(
        row=row,
        span_id=span.span_id,
        step_type=span.step_type,
        offset_ms=(span.start_time_ns - origin_ns) / 1e6,
        width_ms=max(duration_ms or 0.0, min_width_ms),
        tick=_tick_text(span, max_depth=max_depth),
        hover=_hover_text(span),
        is_error=span.is_error,
        is_orphan=span.has_missing_parent,
    )


def _tick_text(span: SpanDetail, *, max_depth: int) -> str:
    label = span.step_label
    if len(label) > MAX_TICK_CHARS:
        label = label[: MAX_TICK_CHARS - 1] + "…"
    marker = "⚠ " if span.has_missing_parent else ("↳ " if span.depth else "")
    # Tick labels are right-aligned to the axis, so nesting shows as padding on the right:
    # the deeper the step, the less padding. Non-breaking, as Plotly trims plain spaces.
    padding = INDENT * (max_depth - span.depth)
    return marker + plotly_text(label) + padding


def _hover_text(span: SpanDetail) -> str:
    duration = "not ended" if span.duration_ms is None else format_duration(span.duration_ms)
    lines = [
        # No <b> or other styling tags: Plotly turns them into style attributes, which
        # the dashboard's Content-Security-Policy refuses.
        plotly_text(span.step_label),
        f"span: {plotly_text(span.name)}",
        f"duration: {duration}",
    ]
    if span.is_error:
        message = f": {plotly_text(span.status_message)}" if span.status_message else ""
        lines.append(f"status: error{message}")
    if span.has_missing_parent:
        lines.append(f"missing parent {span.parent_span_id}")
    return "<br>".join(lines)


def waterfall_figure(
    spans: Sequence[SpanDetail],
    *,
    findings_by_span: Mapping[str, Sequence[FindingView]] | None = None,
) -> dict[str, Any]:
    """The step timeline of one trace: a horizontal bar per span, nested by depth,
    colored by step type, errors outlined, orphans (parent never arrived) marked, and a
    diamond at the end of each bar a finding is pinned on, colored by its worst severity.

    Each bar and marker carries its span id in `customdata`, for the page to show the
    step on click.
    """
    bars = step_bars(spans)
    data = [_bar_trace(step_type, group) for step_type, group in _by_type(bars).items()]
    orphans = [bar for bar in bars if bar.is_orphan]
    if orphans:
        data.append(_orphan_trace(orphans))
    pinned = [bar for bar in bars if (findings_by_span or {}).get(bar.span_id)]
    if pinned:
        data.append(_findings_trace(pinned, findings_by_span or {}))
    return {"data": data, "layout": _waterfall_layout(bars)}


def _by_type(bars: list[StepBar]) -> dict[str, list[StepBar]]:
    groups: dict[str, list[StepBar]] = {}
    for bar in bars:
        groups.setdefault(bar.step_type, []).append(bar)
    return groups


def _bar_trace(step_type: str, bars: list[StepBar]) -> dict[str, Any]:
    return {
        "type": "bar",
        "orientation": "h",
        "name": plotly_text(step_type),
        "y": [bar.row for bar in bars],
        "x": [bar.width_ms for bar in bars],
        "base": [bar.offset_ms for bar in bars],
        # Rows are numbers; without a fixed width Plotly sizes a trace's bars from the gaps
        # between its own rows, and a type with two far-apart steps gets giant bars.
        "width": BAR_WIDTH_ROWS,
        "customdata": [bar.span_id for bar in bars],
        "hovertext": [bar.hover for bar in bars],
        "hoverinfo": "text",
        "marker": {
            "color": step_color(step_type),
            "line": {
                "color": [ERROR_COLOR if bar.is_error else "rgba(0,0,0,0)" for bar in bars],
                "width": [2 if bar.is_error else 0 for bar in bars],
            },
        },
    }


def _orphan_trace(orphans: list[StepBar]) -> dict[str, Any]:
    return {
        "type": "scatter",
        "mode": "markers",
        "name": "missing parent",
        "y": [bar.row for bar in orphans],
        "x": [bar.offset_ms for bar in orphans],
        "customdata": [bar.span_id for bar in orphans],
        "hovertext": [bar.hover for bar in orphans],
        "hoverinfo": "text",
        "marker": {"symbol": "triangle-right", "size": 12, "color": ORPHAN_COLOR},
    }


def _findings_trace(
    pinned: list[StepBar], findings_by_span: Mapping[str, Sequence[FindingView]]
) -> dict[str, Any]:
    severities = [worst_severity(findings_by_span[bar.span_id]) or "info" for bar in pinned]
    return {
        "type": "scatter",
        "mode": "markers",
        "name": FINDINGS_TRACE_NAME,
        "y": [bar.row for bar in pinned],
        "x": [bar.offset_ms + bar.width_ms for bar in pinned],
        "customdata": [bar.span_id for bar in pinned],
        "hovertext": [_findings_hover(findings_by_span[bar.span_id]) for bar in pinned],
        "hoverinfo": "text",
        "marker": {
            "symbol": "diamond",
            "size": 13,
            "color": [SEVERITY_COLORS.get(s, OTHER_COLOR) for s in severities],
            "line": {"color": "#111827", "width": 1},
        },
    }


def _findings_hover(findings: Sequence[FindingView]) -> str:
    lines = [
        plotly_text(f"{f.severity} {f.kind}{f' ({f.rule})' if f.rule else ''}: {f.message}")
        for f in findings[:MAX_HOVER_FINDINGS]
    ]
    if len(findings) > MAX_HOVER_FINDINGS:
        lines.append(f"… and {len(findings) - MAX_HOVER_FINDINGS} more")
    return "<br>".join(lines)


def _row_axis(bars: list[StepBar]) -> dict[str, Any]:
    if len(bars) > MAX_LABELLED_ROWS:
        return {"autorange": "reversed", "showticklabels": False, "fixedrange": True}
    return {
        "autorange": "reversed",
        "tickmode": "array",
        "tickvals": [bar.row for bar in bars],
        "ticktext": [bar.tick for bar in bars],
        "automargin": True,
        "fixedrange": True,
    }


def _waterfall_layout(bars: list[StepBar]) -> dict[str, Any]:
    return {
        "barmode": "overlay",
        "height": MARGIN_HEIGHT_PX + ROW_HEIGHT_PX * max(len(bars), 1),
        "margin": {"l": 10, "r": 20, "t": 30, "b": 40},
        "xaxis": {"title": {"text": "ms since trace start"}, "zeroline": False},
        "yaxis": _row_axis(bars),
        "legend": {"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0},
        "hovermode": "closest",
        "showlegend": True,
        "plot_bgcolor": "#ffffff",
        "paper_bgcolor": "#ffffff",
        "font": {"family": "system-ui, sans-serif", "size": 12},
    }
