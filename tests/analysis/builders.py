"""Builders of analysis records for tests, and readers of the shared fixtures."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from pathwatch.server.analysis.records import StepRecord, TraceRecord, trace_record
from pathwatch.server.check import read_spans
from pathwatch.server.offline import traces_from_spans

FIXTURES = Path(__file__).parent.parent / "fixtures"
ROOT_ID = "0000000000000001"
_ids = itertools.count(2)
MS = 1_000_000


def step(
    name: str | None = None,
    *,
    type: str = "tool",
    args: Any = None,
    result: str | None = None,
    span_id: str | None = None,
    parent: str | None = ROOT_ID,
    start_ms: int = 0,
    end_ms: int | None = -1,
    status: str = "unset",
    call_id: str | None = None,
    requested: Sequence[str] = (),
    answered: Sequence[str] = (),
    definitions: Any = None,
    attributes: dict[str, Any] | None = None,
) -> StepRecord:
    """A step; `end_ms=-1` ends it 10 ms after its start, None leaves it running."""
    end = start_ms + 10 if end_ms == -1 else end_ms
    return StepRecord(
        span_id=span_id or f"{next(_ids):016x}",
        parent_span_id=parent,
        span_name=name or type,
        start_time_ns=start_ms * MS,
        end_time_ns=None if end is None else end * MS,
        status=status,
        attributes=attributes or {},
        requested_tool_call_ids=tuple(requested),
        answered_tool_call_ids=tuple(answered),
        type=type,
        label=f"{type}:{name}" if name else type,
        name=name,
        tool_name=name if type == "tool" else None,
        tool_call_id=call_id,
        tool_arguments=args,
        tool_result=result,
        tool_definitions=definitions,
        model=name if type == "llm" else None,
        input_tokens=None,
        output_tokens=None,
        is_error=status == "error",
        token_logprobs=None,
        agent_name="test-agent" if type == "agent" else None,
        agent_version=None,
        service_name="test-service",
    )


def root(*, end_ms: int | None = 100_000) -> StepRecord:
    return step("test-agent", type="agent", span_id=ROOT_ID, parent=None, end_ms=end_ms)


def trace_of(*steps: StepRecord, status: str = "complete", with_root: bool = True) -> TraceRecord:
    """A trace of the steps, each started 100 ms after the last unless given a start."""
    timed = [
        s if s.start_time_ns else _at(s, 100 * (position + 1)) for position, s in enumerate(steps)
    ]
    everything = [root(), *timed] if with_root else timed
    return trace_record("0af7651916cd43dd8448eb211c80319c", everything, status=status)


def _at(record: StepRecord, start_ms: int) -> StepRecord:
    duration = record.duration_ns
    end = None if duration is None else start_ms * MS + duration
    return replace(record, start_time_ns=start_ms * MS, end_time_ns=end)


def traces_in(*paths: Path) -> list[TraceRecord]:
    return traces_from_spans([span for path in paths for span in read_spans(path)])
