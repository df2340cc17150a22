"""Analysis input: one trace and its steps as plain frozen records, whatever their source.

`pathwatch check` and the pytest helper build them from decoded spans (server/offline.py);
the server builds the same records from database rows with `step_record` and
`trace_record`. Steps of a `TraceRecord` are in causal order (`causal_order`).
"""

from __future__ import annotations

import heapq
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import orjson

from pathwatch.server.steps import WRAPPER_TYPES, Step, parse_json_value

STATUS_NAMES = {0: "unset", 1: "ok", 2: "error"}  # trace.proto Status.StatusCode
TRACE_STATUSES = ("open", "complete", "stalled")
SERVICE_VERSION = "service.version"

# Tool calls a model turn requested (output) and tool results it was given (input).
_OPENINFERENCE_REQUESTED = re.compile(
    r"^llm\.output_messages\.\d+\.message\.tool_calls\.\d+\.tool_call\.id$"
)
_OPENINFERENCE_ANSWERED = re.compile(r"^llm\.input_messages\.\d+\.message\.tool_call_id$")
_OPENLLMETRY_REQUESTED = re.compile(r"^gen_ai\.completion\.\d+\.tool_calls\.\d+\.id$")
_OPENLLMETRY_ANSWERED = re.compile(r"^gen_ai\.prompt\.\d+\.tool_call_id$")
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
_ERROR_TEXT_PREFIXES = ("error:", "error -", "exception:")


@dataclass(frozen=True, slots=True)
class StepRecord(Step):
    """One span as a step: the step's fields (`name` is the step's name: tool, model,
    agent) and the span's own (`span_name`). Times are nanoseconds since the epoch;
    `end_time_ns` is None for a step that started and has not ended."""

    span_id: str
    parent_span_id: str | None
    span_name: str
    start_time_ns: int
    end_time_ns: int | None
    status: str
    attributes: Mapping[str, Any]
    requested_tool_call_ids: tuple[str, ...]
    answered_tool_call_ids: tuple[str, ...]

    @property
    def is_wrapper(self) -> bool:
        """Agent and chain steps wrap others and are left out of the path."""
        return self.type in WRAPPER_TYPES

    @property
    def is_failed(self) -> bool:
        """Error status, or a tool result that reports an error."""
        return self.status == "error" or (self.type == "tool" and has_error_result(self))

    @property
    def duration_ns(self) -> int | None:
        return None if self.end_time_ns is None else self.end_time_ns - self.start_time_ns


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One agent run. `steps` are in causal order; `has_root` says the root span arrived."""

    trace_id: str
    agent_name: str
    agent_version: str | None
    service_name: str
    status: str
    steps: tuple[StepRecord, ...]
    has_root: bool

    @property
    def path(self) -> tuple[StepRecord, ...]:
        """The steps of the trace's path: wrappers left out (DESIGN, "The step model")."""
        return tuple(step for step in self.steps if not step.is_wrapper)


def step_record(
    step: Step,
    *,
    span_id: str,
    parent_span_id: str | None,
    span_name: str,
    start_time_ns: int,
    end_time_ns: int | None,
    status_code: int,
    attributes: Mapping[str, Any],
) -> StepRecord:
    """A step record from a normalised step and its span's columns (ids as hex)."""
    step_fields = {field.name: getattr(step, field.name) for field in fields(Step)}
    return StepRecord(
        span_id=span_id,
        parent_span_id=parent_span_id,
        span_name=span_name,
        start_time_ns=start_time_ns,
        end_time_ns=end_time_ns,
        status=STATUS_NAMES.get(status_code, "unset"),
        attributes=attributes,
        requested_tool_call_ids=requested_tool_call_ids(attributes),
        answered_tool_call_ids=answered_tool_call_ids(attributes),
        **step_fields,
    )


def trace_record(
    trace_id: str,
    steps: Iterable[StepRecord],
    *,
    status: str,
    service_version: str | None = None,
) -> TraceRecord:
    """A trace record with its steps put in causal order and its agent worked out.

    The agent is the name on the highest agent step, else the service name; its version
    is that step's agent version, else `service_version` (DESIGN, "The step model").
    """
    assert status in TRACE_STATUSES, status
    ordered = causal_order(list(steps))
    agent_step = _highest_agent_step(ordered)
    service_name = ordered[0].service_name if ordered else "unknown_service"
    agent_name = agent_step.agent_name if agent_step and agent_step.agent_name else None
    agent_version = agent_step.agent_version if agent_step else None
    return TraceRecord(
        trace_id=trace_id,
        agent_name=agent_name or service_name,
        agent_version=agent_version or service_version,
        service_name=service_name,
        status=status,
        steps=ordered,
        has_root=any(step.parent_span_id is None for step in ordered),
    )


def _highest_agent_step(steps: Sequence[StepRecord]) -> StepRecord | None:
    depth = _depths(steps)
    agents = [step for step in steps if step.type == "agent"]
    return min(agents, key=lambda step: depth[step.span_id], default=None)


def _depths(steps: Sequence[StepRecord]) -> dict[str, int]:
    """Depth of each step in the span tree; a step whose parent is missing counts as 0."""
    parents = {step.span_id: step.parent_span_id for step in steps}
    depth: dict[str, int] = {}
    for span_id in parents:
        chain: list[str] = []
        current: str | None = span_id
        while current in parents and current not in depth and current not in chain:
            chain.append(current)
            current = parents[current]
        base = depth.get(current, -1) if current is not None else -1
        for offset, seen in enumerate(reversed(chain), start=1):
            depth[seen] = base + offset
    return depth


# ---- causal order ------------------------------------------------------------------


def causal_order(steps: Sequence[StepRecord]) -> tuple[StepRecord, ...]:
    """Steps in the order they happened: the span tree and tool-call causality first,
    start times only where those say nothing.

    A child never precedes its parent. A tool call comes after the model turn that
    requested it and before the next turn that received its result, even when the
    hosts' clocks disagree. Tool-call ids are reused inside runs, so the k-th execution
    of an id answers the k-th request of it, both counted in start order. Should the
    constraints contradict each other, the rest follows in start order.
    """
    index = {step.span_id: position for position, step in enumerate(steps)}
    edges = _tree_edges(steps, index) + _tool_call_edges(steps, index)
    successors: dict[int, list[int]] = defaultdict(list)
    indegree = [0] * len(steps)
    for before, after in set(edges):
        successors[before].append(after)
        indegree[after] += 1
    ready = [(_sort_key(steps[i]), i) for i, count in enumerate(indegree) if count == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        _, current = heapq.heappop(ready)
        order.append(current)
        for after in successors[current]:
            indegree[after] -= 1
            if indegree[after] == 0:
                heapq.heappush(ready, (_sort_key(steps[after]), after))
    emitted = set(order)
    rest = sorted(
        (i for i in range(len(steps)) if i not in emitted), key=lambda i: _sort_key(steps[i])
    )
    return tuple(steps[i] for i in order + rest)


def _sort_key(step: StepRecord) -> tuple[int, str]:
    return (step.start_time_ns, step.span_id)


def _tree_edges(steps: Sequence[StepRecord], index: dict[str, int]) -> list[tuple[int, int]]:
    return [
        (index[step.parent_span_id], position)
        for position, step in enumerate(steps)
        if step.parent_span_id in index and step.parent_span_id != step.span_id
    ]


def _tool_call_edges(steps: Sequence[StepRecord], index: dict[str, int]) -> list[tuple[int, int]]:
    turns = sorted(
        (s for s in steps if s.requested_tool_call_ids or s.type == "llm"), key=_sort_key
    )
    requests: dict[str, list[int]] = defaultdict(list)
    for turn_position, turn in enumerate(turns):
        for call_id in dict.fromkeys(turn.requested_tool_call_ids):
            requests[call_id].append(turn_position)
    executions: dict[str, list[StepRecord]] = defaultdict(list)
    for step in sorted(steps, key=_sort_key):
        if step.type == "tool" and step.tool_call_id:
            executions[step.tool_call_id].append(step)
    edges: list[tuple[int, int]] = []
    for call_id, calls in executions.items():
        for turn_position, call in zip(requests.get(call_id, []), calls, strict=False):
            edges.append((index[turns[turn_position].span_id], index[call.span_id]))
            receiver = _next_turn_answering(turns, turn_position, call_id)
            if receiver is not None:
                edges.append((index[call.span_id], index[receiver.span_id]))
    return edges


def _next_turn_answering(
    turns: Sequence[StepRecord], after: int, call_id: str
) -> StepRecord | None:
    for turn in turns[after + 1 :]:
        if call_id in turn.answered_tool_call_ids:
            return turn
    return None


def requested_tool_call_ids(attributes: Mapping[str, Any]) -> tuple[str, ...]:
    """Ids of the tool calls a model turn asked for, in any of the three conventions."""
    found = _message_part_ids(attributes.get(GEN_AI_OUTPUT_MESSAGES), "tool_call")
    found += _matching_values(attributes, _OPENINFERENCE_REQUESTED, _OPENLLMETRY_REQUESTED)
    return tuple(found)


def answered_tool_call_ids(attributes: Mapping[str, Any]) -> tuple[str, ...]:
    """Ids of the tool results a model turn was given, in any of the three conventions."""
    found = _message_part_ids(attributes.get(GEN_AI_INPUT_MESSAGES), "tool_call_response")
    found += _matching_values(attributes, _OPENINFERENCE_ANSWERED, _OPENLLMETRY_ANSWERED)
    return tuple(found)


def _message_part_ids(raw: Any, part_type: str) -> list[str]:
    """`id`s of parts of one type in GenAI `gen_ai.{input,output}.messages`."""
    messages = parse_json_value(raw) if raw is not None else None
    if not isinstance(messages, list):
        return []
    return [
        part["id"]
        for message in messages
        if isinstance(message, dict) and isinstance(message.get("parts"), list)
        for part in message["parts"]
        if isinstance(part, dict)
        and part.get("type") == part_type
        and isinstance(part.get("id"), str)
    ]


def _matching_values(attributes: Mapping[str, Any], *patterns: re.Pattern[str]) -> list[str]:
    return [
        value
        for key, value in attributes.items()
        if isinstance(value, str) and any(pattern.match(key) for pattern in patterns)
    ]


# ---- values ------------------------------------------------------------------------


def canonical_json(value: Any) -> str:
    """One text per JSON value: key order and whitespace ignored. A string that holds
    JSON (even JSON encoded twice, as some SDKs write) stands for the value it holds."""
    for _ in range(3):
        if not isinstance(value, str) or not value.strip():
            break
        parsed = parse_json_value(value)
        if parsed == value:
            break
        value = parsed
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return repr(value)


def has_error_result(step: StepRecord) -> bool:
    """A tool result that reports an error: `{"error": ...}`, MCP's `isError`, or text
    opening with "Error:"."""
    if step.tool_result is None or not step.tool_result.strip():
        return False
    parsed = parse_json_value(step.tool_result)
    if isinstance(parsed, dict):
        return bool(parsed.get("error") or parsed.get("isError") or parsed.get("is_error"))
    text = parsed if isinstance(parsed, str) else ""
    return text.lstrip()[:16].lower().startswith(_ERROR_TEXT_PREFIXES)
