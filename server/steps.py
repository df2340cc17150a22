"""The step model: what a span means on an agent's execution path.

The collector builds steps from spans (collector/normalise.py); analysis and the API read
them. Both import this module, so analysis never depends on the collector.
"""

from __future__ import annotations

import ast
import contextlib
from dataclasses import dataclass
from typing import Any

import orjson

# Left out of a trace's path: wrapping steps (agent, chain) and spans of no convention
# (HTTP or database calls made inside a tool, for example).
WRAPPER_TYPES = frozenset({"agent", "chain", "span"})


@dataclass(frozen=True, slots=True)
class Step:
    """What one span means on the agent's execution path."""

    type: str
    label: str
    name: str | None
    tool_name: str | None
    tool_call_id: str | None
    tool_arguments: Any
    tool_result: str | None
    tool_definitions: Any
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    is_error: bool
    token_logprobs: list[float] | None
    agent_name: str | None
    agent_version: str | None
    service_name: str


def parse_json_value(value: Any) -> Any:
    """A string holding JSON (or a Python literal, as some SDKs write) becomes its value."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return value
    if text[0] not in '[{"' and text not in ("true", "false", "null"):
        with contextlib.suppress(ValueError):
            return orjson.loads(text) if text[0].isdigit() or text[0] == "-" else value
        return value
    with contextlib.suppress(orjson.JSONDecodeError):
        return orjson.loads(text)
    with contextlib.suppress(ValueError, SyntaxError, MemoryError, RecursionError):
        if len(text) < 100_000:
            return ast.literal_eval(text)
    return value
