"""Attribute keys of the OTel GenAI, OpenInference and OpenLLMetry conventions."""

from __future__ import annotations

# OpenTelemetry resource and GenAI semantic conventions.
SERVICE_NAME = "service.name"
SERVICE_VERSION = "service.version"
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_AGENT_VERSION = "gen_ai.agent.version"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT = "gen_ai.tool.call.result"
GEN_AI_TOOL_DEFINITIONS = "gen_ai.tool.definitions"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_DATA_SOURCE_ID = "gen_ai.data_source.id"
# Deprecated GenAI names, still sent by many instrumentations.
GEN_AI_SYSTEM = "gen_ai.system"
GEN_AI_USAGE_PROMPT_TOKENS = "gen_ai.usage.prompt_tokens"
GEN_AI_USAGE_COMPLETION_TOKENS = "gen_ai.usage.completion_tokens"

# OpenInference.
OPENINFERENCE_SPAN_KIND = "openinference.span.kind"
AGENT_NAME = "agent.name"
TOOL_NAME = "tool.name"
TOOL_PARAMETERS = "tool.parameters"
TOOL_JSON_SCHEMA = "tool.json_schema"
TOOL_CALL_ID = "tool_call.id"
INPUT_VALUE = "input.value"
OUTPUT_VALUE = "output.value"
LLM_MODEL_NAME = "llm.model_name"
LLM_TOOLS = "llm.tools"
LLM_TOKEN_COUNT_PROMPT = "llm.token_count.prompt"
LLM_TOKEN_COUNT_COMPLETION = "llm.token_count.completion"
RETRIEVER_NAME = "retriever.name"

# OpenLLMetry (traceloop).
TRACELOOP_SPAN_KIND = "traceloop.span.kind"
TRACELOOP_ENTITY_NAME = "traceloop.entity.name"
TRACELOOP_ENTITY_INPUT = "traceloop.entity.input"
TRACELOOP_ENTITY_OUTPUT = "traceloop.entity.output"
TRACELOOP_WORKFLOW_NAME = "traceloop.workflow.name"
LLM_REQUEST_TYPE = "llm.request.type"

# Pathwatch's own attributes, written by its Python helper.
PATHWATCH_TOKEN_LOGPROBS = "pathwatch.token_logprobs"
PATHWATCH_SPAN_START_MARKER = "pathwatch.span_start"
# Seen in the wild for the same purpose (no convention defines token logprobs).
LLM_TOKEN_LOGPROBS = "llm.token_logprobs"
