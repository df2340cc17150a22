"""GET /api/v1/traces and /api/v1/traces/{trace_id}."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from pathwatch.server.errors import NotFoundError
from pathwatch.server.queries import findings as finding_queries
from pathwatch.server.queries import traces as trace_queries
from pathwatch.server.queries.findings import FindingRead

router = APIRouter(prefix="/api/v1", tags=["traces"])


class TraceRead(BaseModel):
    trace_id: str
    agent_name: str
    agent_version: str | None
    service_name: str
    root_name: str | None
    has_root: bool
    start_time: datetime
    end_time: datetime | None
    duration_ms: float | None
    span_count: int
    error_count: int
    finding_count: int
    status: str


class TracePageRead(BaseModel):
    traces: list[TraceRead]
    next_cursor: str | None


class SpanRead(BaseModel):
    span_id: str
    parent_span_id: str | None
    has_missing_parent: bool
    name: str
    kind: int
    start_time_unix_nano: int
    end_time_unix_nano: int | None
    duration_ms: float | None
    status_code: int
    status_message: str
    attributes: dict[str, Any]
    events: list[Any]
    links: list[Any]
    resource: dict[str, Any]
    scope: dict[str, Any]
    depth: int


class StepRead(BaseModel):
    span_id: str
    type: str
    label: str
    name: str | None
    tool_name: str | None
    tool_arguments: Any
    tool_result: str | None
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    is_error: bool
    token_logprobs: list[float] | None


class StepNode(BaseModel):
    span_id: str
    label: str
    children: list[StepNode]


class TraceDetailRead(BaseModel):
    trace: TraceRead
    spans: list[SpanRead]
    steps: list[StepRead]
    tree: list[StepNode]
    path: list[str]
    findings: list[FindingRead]


@router.get("/traces", response_model=TracePageRead)
def get_traces(
    request: Request,
    agent: str | None = None,
    status: Literal["open", "complete", "stalled"] | None = None,
    start_from: datetime | None = Query(None, alias="from"),
    start_to: datetime | None = Query(None, alias="to"),
    finding: str | None = Query(None, description="only traces with a finding of this kind"),
    rule: str | None = Query(None, description="only traces with a finding of this rule"),
    limit: int = Query(50, ge=1, le=trace_queries.MAX_PAGE_SIZE),
    cursor: str | None = None,
) -> TracePageRead:
    with request.app.state.engine.connect() as connection:
        page = trace_queries.list_traces(
            connection,
            project_id=request.app.state.project_id,
            agent=agent,
            status=status,
            start_from=start_from,
            start_to=start_to,
            finding_kind=finding,
            rule_id=rule,
            limit=limit,
            cursor=cursor,
        )
    return TracePageRead(
        traces=[TraceRead(**vars(t)) for t in page.traces], next_cursor=page.next_cursor
    )


@router.get("/traces/{trace_id}", response_model=TraceDetailRead)
def get_trace(request: Request, trace_id: str) -> TraceDetailRead:
    key = trace_queries.parse_trace_id(trace_id)
    with request.app.state.engine.connect() as connection:
        project_id = request.app.state.project_id
        detail = trace_queries.get_trace(connection, project_id=project_id, trace_id=key)
        found = finding_queries.findings_for_trace(connection, project_id=project_id, trace_id=key)
    if detail is None:
        raise NotFoundError("trace_not_found", f"no trace {trace_id.lower()}")
    return TraceDetailRead(
        trace=TraceRead(**vars(detail.summary)),
        spans=[_span_read(s) for s in detail.spans],
        steps=[_step_read(s) for s in detail.spans],
        tree=step_tree(detail.spans),
        path=detail.path,
        findings=found,
    )


def _span_read(span: trace_queries.SpanDetail) -> SpanRead:
    return SpanRead(
        span_id=span.span_id,
        parent_span_id=span.parent_span_id,
        has_missing_parent=span.has_missing_parent,
        name=span.name,
        kind=span.kind,
        start_time_unix_nano=span.start_time_ns,
        end_time_unix_nano=span.end_time_ns,
        duration_ms=span.duration_ms,
        status_code=span.status_code,
        status_message=span.status_message,
        attributes=span.attributes,
        events=span.events,
        links=span.links,
        resource=span.resource,
        scope=span.scope,
        depth=span.depth,
    )


def _step_read(span: trace_queries.SpanDetail) -> StepRead:
    return StepRead(
        span_id=span.span_id,
        type=span.step_type,
        label=span.step_label,
        name=span.step_name,
        tool_name=span.tool_name,
        tool_arguments=span.tool_arguments,
        tool_result=span.tool_result,
        model=span.model,
        input_tokens=span.input_tokens,
        output_tokens=span.output_tokens,
        is_error=span.is_error,
        token_logprobs=span.token_logprobs,
    )


def step_tree(spans: list[trace_queries.SpanDetail]) -> list[StepNode]:
    """Steps nested under their parents; a span whose parent never arrived is a top node."""
    nodes = {s.span_id: StepNode(span_id=s.span_id, label=s.step_label, children=[]) for s in spans}
    top: list[StepNode] = []
    for span in spans:
        parent = nodes.get(span.parent_span_id) if span.parent_span_id else None
        (parent.children if parent is not None else top).append(nodes[span.span_id])
    return top
