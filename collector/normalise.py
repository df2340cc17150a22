"""Turn a span record into a step: type, label and the fields analysis needs. Pure.

One table maps each convention to a step type (DESIGN, "The step model"). When a span
carries several conventions, the most specific wins: OpenInference's guardrail, evaluator
and reranker kinds (roles GenAI has no operation for), then OTel GenAI's operation name,
then OpenInference's span kind, then OpenLLMetry's span kind, then deprecated GenAI keys.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from pathwatch.collector import conventions as cv
from pathwatch.collector.decode import SpanRecord
from pathwatch.server.steps import Step, parse_json_value

STATUS_CODE_ERROR = 2  # trace.proto Status.StatusCode; unknown codes count as unset.
UNKNOWN_SERVICE = "unknown_service"

GEN_AI_OPERATION_TYPES = {
    "invoke_agent": "agent",
    "create_agent": "agent",
    "invoke_workflow": "agent",
    "plan": "agent",
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "execute_tool": "tool",
    "retrieval": "retrieval",
    "search_memory": "retrieval",
    "embeddings": "embedding",
}
OPENINFERENCE_KIND_TYPES = {
    "AGENT": "agent",
    "LLM": "llm",
    "TOOL": "tool",
    "RETRIEVER": "retrieval",
    "EMBEDDING": "embedding",
    "RERANKER": "rerank",
    "GUARDRAIL": "guardrail",
    "EVALUATOR": "evaluator",
    "CHAIN": "chain",
}
TRACELOOP_KIND_TYPES = {
    "agent": "agent",
    "workflow": "agent",
    "tool": "tool",
    "task": "chain",
}
LLM_REQUEST_TYPES = {"chat": "llm", "completion": "llm", "embedding": "embedding"}
# OpenInference kinds for roles no GenAI operation names: on a span that also says
# execute_tool or chat they are the more specific description (DESIGN: most specific wins).
OPENINFERENCE_SPECIFIC_KINDS = frozenset({"GUARDRAIL", "EVALUATOR", "RERANKER"})
_FIRST_OPENINFERENCE_TOOL = "llm.tools.0.tool.json_schema"
_OPENINFERENCE_TOOL_SCHEMA = re.compile(r"^llm\.tools\.(\d+)\.tool\.json_schema$")


def normalise_span(span: SpanRecord) -> Step:
    attributes = span.attributes
    step_type = step_type_of(span)
    tool_name = _tool_name(attributes, span) if step_type == "tool" else None
    model = _text(attributes, cv.GEN_AI_RESPONSE_MODEL, cv.GEN_AI_REQUEST_MODEL, cv.LLM_MODEL_NAME)
    name = _step_name(step_type, span, tool_name=tool_name, model=model)
    service_name = _text(span.resource, cv.SERVICE_NAME) or UNKNOWN_SERVICE
    return Step(
        type=step_type,
        label=f"{step_type}:{name}" if name else step_type,
        name=name,
        tool_name=tool_name,
        tool_call_id=_text(attributes, cv.GEN_AI_TOOL_CALL_ID, cv.TOOL_CALL_ID),
        tool_arguments=tool_arguments(attributes) if step_type == "tool" else None,
        tool_result=tool_result(attributes) if step_type == "tool" else None,
        tool_definitions=(
            _tool_definitions(attributes) if step_type in ("llm", "tool", "agent") else None
        ),
        model=model if step_type in ("llm", "embedding") else None,
        input_tokens=_integer(
            attributes,
            cv.GEN_AI_USAGE_INPUT_TOKENS,
            cv.GEN_AI_USAGE_PROMPT_TOKENS,
            cv.LLM_TOKEN_COUNT_PROMPT,
        ),
        output_tokens=_integer(
            attributes,
            cv.GEN_AI_USAGE_OUTPUT_TOKENS,
            cv.GEN_AI_USAGE_COMPLETION_TOKENS,
            cv.LLM_TOKEN_COUNT_COMPLETION,
        ),
        is_error=span.status_code == STATUS_CODE_ERROR,
        token_logprobs=token_logprobs(attributes),
        agent_name=_text(attributes, cv.GEN_AI_AGENT_NAME, cv.AGENT_NAME)
        or (_text(attributes, cv.TRACELOOP_ENTITY_NAME) if step_type == "agent" else None),
        agent_version=_text(attributes, cv.GEN_AI_AGENT_VERSION)
        or _text(span.resource, cv.SERVICE_VERSION),
        service_name=service_name,
    )


def step_type_of(span: SpanRecord) -> str:
    attributes = span.attributes
    openinference_kind = (_text(attributes, cv.OPENINFERENCE_SPAN_KIND) or "").upper()
    if openinference_kind in OPENINFERENCE_SPECIFIC_KINDS:
        return OPENINFERENCE_KIND_TYPES[openinference_kind]
    operation = _text(attributes, cv.GEN_AI_OPERATION_NAME)
    if operation in GEN_AI_OPERATION_TYPES:
        return GEN_AI_OPERATION_TYPES[operation]
    if openinference_kind in OPENINFERENCE_KIND_TYPES:
        return OPENINFERENCE_KIND_TYPES[openinference_kind]
    traceloop_kind = _text(attributes, cv.TRACELOOP_SPAN_KIND)
    if traceloop_kind in TRACELOOP_KIND_TYPES:
        if traceloop_kind == "task" and "retriev" in span.name.lower():
            return "retrieval"
        return TRACELOOP_KIND_TYPES[traceloop_kind]
    request_type = _text(attributes, cv.LLM_REQUEST_TYPE)
    if request_type in LLM_REQUEST_TYPES:
        return LLM_REQUEST_TYPES[request_type]
    if _text(attributes, cv.GEN_AI_TOOL_NAME):
        return "tool"
    if _text(attributes, cv.GEN_AI_SYSTEM, cv.GEN_AI_REQUEST_MODEL):
        return "llm"
    return "span"


def _step_name(
    step_type: str, span: SpanRecord, *, tool_name: str | None, model: str | None
) -> str:
    attributes = span.attributes
    if step_type == "tool":
        return tool_name or span.name
    if step_type in ("llm", "embedding"):
        return model or span.name
    if step_type == "agent":
        return (
            _text(attributes, cv.GEN_AI_AGENT_NAME, cv.AGENT_NAME, cv.TRACELOOP_ENTITY_NAME)
            or span.name
        )
    if step_type == "retrieval":
        return (
            _text(attributes, cv.GEN_AI_DATA_SOURCE_ID, cv.RETRIEVER_NAME, cv.TRACELOOP_ENTITY_NAME)
            or span.name
        )
    if step_type in ("guardrail", "evaluator", "rerank"):
        return _text(attributes, cv.GEN_AI_TOOL_NAME, cv.TOOL_NAME) or span.name
    return _text(attributes, cv.TRACELOOP_ENTITY_NAME) or span.name


def _tool_name(attributes: dict[str, Any], span: SpanRecord) -> str:
    named = _text(attributes, cv.GEN_AI_TOOL_NAME, cv.TOOL_NAME, cv.TRACELOOP_ENTITY_NAME)
    if named:
        return named
    prefix = "execute_tool "
    return span.name[len(prefix) :] if span.name.startswith(prefix) else span.name


def tool_arguments(attributes: dict[str, Any]) -> Any:
    """The tool's arguments as a JSON value, whichever convention carried them.

    OpenLLMetry wraps Python call arguments as {"args": [...], "kwargs": {...}}: keyword
    arguments alone are the arguments; a single positional argument stands for itself.
    """
    for key in (cv.GEN_AI_TOOL_CALL_ARGUMENTS, cv.INPUT_VALUE):
        if key in attributes:
            return parse_json_value(attributes[key])
    if cv.TRACELOOP_ENTITY_INPUT in attributes:
        value = parse_json_value(attributes[cv.TRACELOOP_ENTITY_INPUT])
        if isinstance(value, dict) and set(value) <= {"args", "kwargs"}:
            args, kwargs = value.get("args") or [], value.get("kwargs") or {}
            if not args:
                return kwargs
            if len(args) == 1 and not kwargs:
                return args[0]
        return value
    return None


def tool_result(attributes: dict[str, Any]) -> str | None:
    """The tool's result as text; a LangChain ToolMessage is unwrapped to its content."""
    for key in (cv.GEN_AI_TOOL_CALL_RESULT, cv.OUTPUT_VALUE, cv.TRACELOOP_ENTITY_OUTPUT):
        if key in attributes:
            value = attributes[key]
            parsed = parse_json_value(value)
            if isinstance(parsed, dict) and parsed.get("type") == "tool":
                data = parsed.get("data")
                if isinstance(data, dict) and "content" in data:
                    parsed = data["content"]
                    text = parsed if isinstance(parsed, str) else orjson.dumps(parsed).decode()
                    return text.replace("\x00", "\ufffd")
            return value if isinstance(value, str) else orjson.dumps(value).decode()
    return None


def _tool_definitions(attributes: dict[str, Any]) -> Any:
    """Tool definitions offered to a model, or a tool span's own definition.

    OpenInference flattens the offered tools (`llm.tools.0.tool.json_schema`, …) and
    gives a tool span's argument schema as `tool.parameters` (not the call's arguments).
    """
    for key in (cv.GEN_AI_TOOL_DEFINITIONS, cv.LLM_TOOLS, cv.TOOL_JSON_SCHEMA):
        if key in attributes:
            return parse_json_value(attributes[key])
    if _FIRST_OPENINFERENCE_TOOL in attributes:
        flattened = sorted(
            (int(match.group(1)), value)
            for key, value in attributes.items()
            if (match := _OPENINFERENCE_TOOL_SCHEMA.match(key))
        )
        if flattened:
            return [parse_json_value(value) for _index, value in flattened]
    if cv.TOOL_PARAMETERS in attributes and _text(attributes, cv.TOOL_NAME):
        parameters = parse_json_value(attributes[cv.TOOL_PARAMETERS])
        return [{"name": attributes[cv.TOOL_NAME], "parameters": parameters}]
    return None


def token_logprobs(attributes: dict[str, Any]) -> list[float] | None:
    """Token logprobs: Pathwatch's attribute, an array seen in the wild, or OpenAI-style
    `logprobs.content[].logprob` inside output messages."""
    for key in (cv.PATHWATCH_TOKEN_LOGPROBS, cv.LLM_TOKEN_LOGPROBS):
        value = parse_json_value(attributes.get(key))
        if isinstance(value, list) and value and all(isinstance(v, int | float) for v in value):
            return [float(v) for v in value]
    messages = parse_json_value(attributes.get(cv.GEN_AI_OUTPUT_MESSAGES))
    found: list[float] = []
    if isinstance(messages, list):
        for message in messages:
            logprobs = message.get("logprobs") if isinstance(message, dict) else None
            content = logprobs.get("content") if isinstance(logprobs, dict) else None
            for token in content if isinstance(content, list) else []:
                if isinstance(token, dict) and isinstance(token.get("logprob"), int | float):
                    found.append(float(token["logprob"]))
    return found or None


def _text(attributes: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _integer(attributes: dict[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return None
