"""Reads and writes of the analysis worker: claim due traces, load their steps, history."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Connection, select, text

from pathwatch.server.analysis.records import TraceRecord, step_record, trace_record
from pathwatch.server.models import spans, traces
from pathwatch.server.steps import WRAPPER_TYPES, Step

_STEP_COLUMNS = {
    "type": "step_type",
    "label": "step_label",
    "name": "step_name",
}


# What analysis reads of a span: its step fields and attributes, not its events, links,
# resource or scope.
_ANALYSIS_COLUMNS = [
    spans.c[name]
    for name in (
        "project_id", "trace_id", "span_id", "parent_span_id", "name", "start_time_ns",
        "end_time_ns", "status_code", "attributes", "step_type", "step_label", "step_name",
        "tool_name", "tool_call_id", "tool_arguments", "tool_result", "tool_definitions",
        "model", "input_tokens", "output_tokens", "is_error", "token_logprobs", "agent_name",
        "agent_version", "service_name",
    )
]  # fmt: skip


@dataclass(frozen=True)
class ClaimedTrace:
    """A trace chosen for analysis: its row id, key, agent and status."""

    rowid: int
    project_id: int
    trace_id: bytes
    agent_name: str
    status: str


_TRACE_KEY_COLUMNS = (
    traces.c.id,
    traces.c.project_id,
    traces.c.trace_id,
    traces.c.agent_name,
    traces.c.status,
)


def claim_due_traces(connection: Connection, *, limit: int) -> list[ClaimedTrace]:
    """Lock finished traces whose analysis is missing or older than their last span.

    Rows stay locked until the caller's transaction ends, so other workers skip them; a
    crash rolls back and the traces are claimed again.
    """
    rows = connection.execute(
        select(*_TRACE_KEY_COLUMNS)
        .where(
            traces.c.status != "open",
            (traces.c.analysed_at.is_(None)) | (traces.c.analysed_at < traces.c.last_received_at),
        )
        .order_by(traces.c.last_received_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    return [ClaimedTrace(r.id, r.project_id, r.trace_id, r.agent_name, r.status) for r in rows]


def load_trace_records(connection: Connection, claimed: list[ClaimedTrace]) -> list[TraceRecord]:
    """The claimed traces as analysis records, built from their stored span rows."""
    if not claimed:
        return []
    keys = {(c.project_id, c.trace_id): c for c in claimed}
    rows = connection.execute(
        select(*_ANALYSIS_COLUMNS).where(
            spans.c.project_id.in_({c.project_id for c in claimed}),
            spans.c.trace_id.in_([c.trace_id for c in claimed]),
        )
    ).all()
    by_trace: dict[tuple[int, bytes], list[Any]] = defaultdict(list)
    for row in rows:
        if (row.project_id, row.trace_id) in keys:
            by_trace[(row.project_id, row.trace_id)].append(row)
    return [
        trace_record(
            trace_id.hex(),
            [_step_record(row) for row in by_trace.get((project_id, trace_id), [])],
            status=claim.status,
            service_version=None,
        )
        for (project_id, trace_id), claim in keys.items()
    ]


_STEP_FIELD_COLUMNS = [
    (field.name, _STEP_COLUMNS.get(field.name, field.name)) for field in fields(Step)
]


def _step_record(row: Any) -> Any:
    mapping = row._mapping
    step = Step(**{name: mapping[column] for name, column in _STEP_FIELD_COLUMNS})
    return step_record(
        step,
        span_id=row.span_id.hex(),
        parent_span_id=row.parent_span_id.hex() if row.parent_span_id else None,
        span_name=row.name,
        start_time_ns=row.start_time_ns,
        end_time_ns=row.end_time_ns,
        status_code=row.status_code,
        attributes=row.attributes,
    )


_RECENT_PATHS = text("""
SELECT t.id, s.step_label
FROM (
    SELECT id, project_id, trace_id FROM traces
    WHERE project_id = :project_id AND agent_name = :agent AND status = 'complete'
    ORDER BY start_time DESC LIMIT :runs
) AS t
JOIN spans AS s ON s.project_id = t.project_id AND s.trace_id = t.trace_id
WHERE s.step_type <> ALL(:wrappers)
ORDER BY t.id, s.start_time_ns, s.id
""")


def recent_paths(
    connection: Connection, *, project_id: int, agent: str, runs: int = 200
) -> dict[int, list[str]]:
    """The paths (step labels in start order) of the agent's most recent complete runs,
    by trace row id."""
    paths: dict[int, list[str]] = defaultdict(list)
    result = connection.execute(
        _RECENT_PATHS,
        {
            "project_id": project_id,
            "agent": agent,
            "runs": runs,
            "wrappers": sorted(WRAPPER_TYPES),
        },
    )
    for trace_rowid, label in result:
        paths[trace_rowid].append(label)
    return dict(paths)


_MARK_ANALYSED = text("""
UPDATE traces SET analysed_at = now(), finding_count = counted.finding_count
FROM unnest(CAST(:rowids AS bigint[]), CAST(:counts AS integer[]))
    AS counted(rowid, finding_count)
WHERE traces.id = counted.rowid
""")


def mark_analysed(connection: Connection, *, finding_count_by_trace: dict[int, int]) -> None:
    """Record that the traces were analysed. now() is the transaction's start: a span
    written while this analysis held the claim has a later last_received_at, so its
    trace is analysed again."""
    if finding_count_by_trace:
        connection.execute(
            _MARK_ANALYSED,
            {
                "rowids": list(finding_count_by_trace),
                "counts": list(finding_count_by_trace.values()),
            },
        )


def recent_traces(
    connection: Connection, *, project_id: int, agent: str, limit: int
) -> list[ClaimedTrace]:
    """The agent's newest finished traces (without locking them), for a rules dry run."""
    rows = connection.execute(
        select(*_TRACE_KEY_COLUMNS)
        .where(
            traces.c.project_id == project_id,
            traces.c.agent_name == agent,
            traces.c.status != "open",
        )
        .order_by(traces.c.start_time.desc())
        .limit(limit)
    ).all()
    return [ClaimedTrace(r.id, r.project_id, r.trace_id, r.agent_name, r.status) for r in rows]


def trace_rowid(connection: Connection, *, project_id: int, trace_id: bytes) -> int | None:
    return connection.execute(
        select(traces.c.id).where(traces.c.project_id == project_id, traces.c.trace_id == trace_id)
    ).scalar()
