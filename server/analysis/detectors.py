"""Built-in detectors: findings every trace gets without configuration (DESIGN section 5).

Each detector takes the trace's steps in causal order and returns findings:
loop, stall, error_step, invalid_args, unknown_tool and runaway.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema
import orjson
from jsonschema.exceptions import SchemaError, ValidationError

from pathwatch.server.analysis.findings import Finding
from pathwatch.server.analysis.records import StepRecord, TraceRecord, canonical_json
from pathwatch.server.steps import parse_json_value


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    """Thresholds of the built-in detectors.

    A loop is `loop_min_repeats` identical calls with the same result; a cycle is at most
    `loop_max_cycle_length` calls long. A path is a runaway once the agent has
    `runaway_min_history` past runs and the path is longer than `runaway_factor` times
    their median and longer than their 95th percentile.
    """

    loop_min_repeats: int = 3
    loop_max_cycle_length: int = 8
    runaway_min_history: int = 20
    runaway_factor: float = 2.0


CallKey = tuple[str | None, str, str | None]


def run_detectors(
    trace: TraceRecord,
    *,
    settings: DetectorSettings,
    history: Sequence[int] | None = None,
) -> list[Finding]:
    """All built-in detectors over a trace whose steps are in causal order."""
    steps = trace.steps
    return [
        *detect_loops(steps, settings=settings),
        *detect_stall(trace),
        *detect_error_steps(steps),
        *detect_tool_misuse(steps),
        *detect_runaway(trace.path, history=history or (), settings=settings),
    ]


# ---- loop --------------------------------------------------------------------------


def detect_loops(steps: Sequence[StepRecord], *, settings: DetectorSettings) -> list[Finding]:
    """Identical tool calls (same tool, same canonical arguments) that got the same result
    `loop_min_repeats` times anywhere in the run, and cycles of such calls repeated
    back to back (A→B→A→B→A→B), each reported once. Calls whose results differ made
    progress. Tool-call ids play no part: runs reuse them for different calls."""
    calls = [step for step in steps if step.type == "tool"]
    keys = [call_key(call) for call in calls]
    findings: list[Finding] = []
    in_cycle: set[int] = set()
    for start, period, repeats in find_cycles(keys, settings=settings):
        positions = range(start, start + period * repeats)
        in_cycle.update(positions)
        findings.append(_cycle_finding([calls[i] for i in positions], period, repeats))
    groups: dict[CallKey, list[StepRecord]] = defaultdict(list)
    for position, (key, call) in enumerate(zip(keys, calls, strict=True)):
        if position not in in_cycle:
            groups[key].append(call)
    for group in groups.values():
        if len(group) >= settings.loop_min_repeats:
            findings.append(_repeat_finding(group))
    return findings


def call_key(step: StepRecord) -> CallKey:
    """What makes two tool calls identical with the same result (missing results match)."""
    result = None if step.tool_result is None else canonical_json(step.tool_result)
    return (step.name, canonical_json(step.tool_arguments), result)


def find_cycles(
    keys: Sequence[CallKey], *, settings: DetectorSettings
) -> Iterator[tuple[int, int, int]]:
    """(start, period, repeats) of blocks of two or more distinct calls repeated back to
    back at least `loop_min_repeats` times; the shortest period wins, blocks never overlap."""
    position = 0
    while position < len(keys):
        found = _cycle_at(keys, position, settings=settings)
        if found is None:
            position += 1
            continue
        period, repeats = found
        yield position, period, repeats
        position += period * repeats


def _cycle_at(
    keys: Sequence[CallKey], start: int, *, settings: DetectorSettings
) -> tuple[int, int] | None:
    longest = min(settings.loop_max_cycle_length, (len(keys) - start) // settings.loop_min_repeats)
    for period in range(2, longest + 1):
        block = keys[start : start + period]
        if len(set(block)) < 2 or _is_repetition(block):
            continue
        repeats = 1
        while keys[start + repeats * period : start + (repeats + 1) * period] == block:
            repeats += 1
        if repeats >= settings.loop_min_repeats:
            return period, repeats
    return None


def _is_repetition(block: Sequence[CallKey]) -> bool:
    """True when the block is a shorter block repeated (ABAB is AB twice)."""
    size = len(block)
    return any(
        size % part == 0 and list(block) == list(block[:part]) * (size // part)
        for part in range(2, size // 2 + 1)
    )


def _repeat_finding(group: Sequence[StepRecord]) -> Finding:
    return Finding(
        kind="loop",
        severity="error",
        message=(
            f"{group[0].name} called {len(group)} times with the same arguments and the same result"
        ),
        span_ids=tuple(step.span_id for step in group),
    )


def _cycle_finding(steps: Sequence[StepRecord], period: int, repeats: int) -> Finding:
    cycle = " → ".join(str(step.name) for step in steps[:period])
    return Finding(
        kind="loop",
        severity="error",
        message=f"cycle {cycle} repeated {repeats} times with the same arguments and results",
        span_ids=tuple(step.span_id for step in steps),
    )


# ---- stall -------------------------------------------------------------------------


def detect_stall(trace: TraceRecord) -> list[Finding]:
    """A stalled trace (its root never ended), pinned on the steps that started and never
    ended, then on the last step that arrived."""
    if trace.status != "stalled":
        return []
    hung = _innermost_first([step for step in trace.steps if step.end_time_ns is None])
    ended = [step for step in trace.steps if step.end_time_ns is not None]
    last = max(ended, key=lambda step: (step.end_time_ns or 0, step.span_id), default=None)
    pinned = [step.span_id for step in hung] + ([last.span_id] if last else [])
    if hung:
        message = f"run stalled: {hung[0].label} started and never ended"
    elif last is not None:
        message = f"run stalled: the root step never ended; last step {last.label}"
    else:
        message = "run stalled: no step ever ended"
    return [Finding(kind="stall", severity="error", message=message, span_ids=tuple(pinned))]


def _innermost_first(hung: Sequence[StepRecord]) -> list[StepRecord]:
    """Hung steps with no hung step inside them first: a hung tool call inside a hung
    agent step is where progress stopped."""
    enclosing = {step.parent_span_id for step in hung}
    return sorted(hung, key=lambda step: step.span_id in enclosing)


# ---- error steps -------------------------------------------------------------------


def detect_error_steps(steps: Sequence[StepRecord]) -> list[Finding]:
    """Steps with error status and tool results that report an error. A wrapper (agent,
    chain) whose error came up from a failed step inside it is not reported again."""
    failed = [step for step in steps if step.is_failed]
    parents = {step.span_id: step.parent_span_id for step in steps}
    blamed: set[str] = set()
    for step in failed:
        blamed.update(_ancestors(step.span_id, parents))
    return [
        Finding(
            kind="error_step",
            severity="warning",
            message=_error_message(step),
            span_ids=(step.span_id,),
        )
        for step in failed
        if not (step.is_wrapper and step.span_id in blamed)
    ]


def _ancestors(span_id: str, parents: dict[str, str | None]) -> Iterator[str]:
    seen: set[str] = set()
    current = parents.get(span_id)
    while current is not None and current in parents and current not in seen:
        seen.add(current)
        yield current
        current = parents[current]


def _error_message(step: StepRecord) -> str:
    what = f"tool call {step.name}" if step.type == "tool" else step.label
    how = "error status" if step.status == "error" else "its result reports an error"
    return f"{what} failed ({how})"


# ---- tool definitions: invalid_args and unknown_tool ----------------------------------


def detect_tool_misuse(steps: Sequence[StepRecord]) -> list[Finding]:
    """Tool calls checked against the tool definitions the model was offered: the latest
    model turn before the call that carried definitions (the step's own definition, as
    OpenInference's `tool.json_schema`, for the arguments). Without definitions, nothing."""
    findings: list[Finding] = []
    offered: dict[str, Any] | None = None
    for step in steps:
        if step.type != "tool" and step.tool_definitions is not None:
            offered = tool_schemas(step.tool_definitions) or offered
        if step.type != "tool" or step.name is None:
            continue
        if offered is not None and step.name not in offered:
            findings.append(_unknown_tool_finding(step, offered))
            continue
        own = tool_schemas(step.tool_definitions).get(step.name)
        schema = own if own is not None else (offered or {}).get(step.name)
        problem = args_problem(step.tool_arguments, schema) if schema is not None else None
        if problem is not None:
            findings.append(_invalid_args_finding(step, problem))
    return findings


def tool_schemas(definitions: Any) -> dict[str, Any]:
    """Tool name → JSON Schema of its arguments (None when not given), read from GenAI,
    OpenAI (`{"type": "function", "function": {...}}`), Anthropic (`input_schema`), MCP
    (`inputSchema`) or OpenInference (`{"tool": {"json_schema": ...}}`) definitions."""
    definitions = parse_json_value(definitions)
    items = definitions if isinstance(definitions, list) else [definitions]
    schemas: dict[str, Any] = {}
    for item in items:
        definition = _unwrap_definition(item)
        name = definition.get("name") if isinstance(definition, dict) else None
        if isinstance(name, str):
            schema = next(
                (
                    definition[key]
                    for key in ("parameters", "input_schema", "inputSchema")
                    if isinstance(definition.get(key), dict)
                ),
                None,
            )
            schemas[name] = schema
    return schemas


def _unwrap_definition(item: Any) -> Any:
    item = parse_json_value(item)
    for wrapper in ("tool", "json_schema", "function"):
        if isinstance(item, dict) and wrapper in item and "name" not in item:
            item = parse_json_value(item[wrapper])
    return item


def args_problem(arguments: Any, schema: Any) -> str | None:
    """Why the arguments fail the JSON Schema (where and which keyword, never the values),
    or None when they pass or the schema itself is unusable."""
    validator = _validator(canonical_json(schema))
    if validator is None:
        return None
    error: ValidationError | None = jsonschema.exceptions.best_match(
        validator.iter_errors(arguments)
    )
    if error is None:
        return None
    return f"{error.json_path} fails '{error.validator}'"


@functools.lru_cache(maxsize=1024)
def _validator(schema_text: str) -> Any:
    """A checked validator per distinct schema; checking a schema costs far more than
    validating arguments with it, and runs offer the same few tools again and again."""
    schema = orjson.loads(schema_text)
    try:
        validator_class = jsonschema.validators.validator_for(schema)
        validator_class.check_schema(schema)
    except SchemaError:
        return None
    return validator_class(schema)


def _unknown_tool_finding(step: StepRecord, offered: dict[str, Any]) -> Finding:
    return Finding(
        kind="unknown_tool",
        severity="error",
        message=f"{step.name} is not among the {len(offered)} tools the model was offered",
        span_ids=(step.span_id,),
    )


def _invalid_args_finding(step: StepRecord, problem: str) -> Finding:
    return Finding(
        kind="invalid_args",
        severity="error",
        message=f"arguments of {step.name} do not match the tool's schema: {problem}",
        span_ids=(step.span_id,),
    )


# ---- runaway -----------------------------------------------------------------------


def detect_runaway(
    path: Sequence[StepRecord],
    *,
    history: Sequence[int],
    settings: DetectorSettings,
) -> list[Finding]:
    """A path much longer than this agent's usual, pinned on the first step past the
    threshold. `history` holds the path lengths of the agent's earlier runs."""
    if len(history) < settings.runaway_min_history:
        return []
    median = statistics.median(history)
    p95 = statistics.quantiles(history, n=20, method="inclusive")[-1]
    threshold = max(math.floor(settings.runaway_factor * median), math.floor(p95))
    if len(path) <= threshold:
        return []
    return [
        Finding(
            kind="runaway",
            severity="warning",
            message=(
                f"path of {len(path)} steps; this agent's usual is {median:g} "
                f"(runaway above {threshold})"
            ),
            span_ids=(path[threshold].span_id,),
        )
    ]
