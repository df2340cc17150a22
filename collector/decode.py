"""Decode OTLP trace export requests (protobuf or JSON) into span records. Pure: no I/O.

Both encodings go through the protobuf message, so the two give identical records.
OTLP/JSON differs from the proto3 JSON mapping: trace and span ids are hex strings,
not base64 (OTLP specification, "JSON Protobuf Encoding"); they are converted before
the generic parser sees them. The JSON reader is as lenient as the OpenTelemetry
Collector's: lowerCamelCase or snake_case keys, enum numbers or names, 64-bit integers
as numbers or strings, unknown fields ignored.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from pathwatch.collector.errors import TooManySpansError, UndecodableBodyError
from pathwatch.collector.limits import IngestLimits

TRACE_ID_BYTES = 16
MAX_TIME_NS = 2**63 - 1  # times are stored as PostgreSQL bigint
SPAN_ID_BYTES = 8
# PostgreSQL text and jsonb cannot hold U+0000; it becomes U+FFFD (REPLACEMENT CHARACTER).
NUL = "\x00"
NUL_REPLACEMENT = "\ufffd"

JsonValue = Any


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One decoded span with its resource and scope. Times are nanoseconds since the epoch."""

    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes | None
    name: str
    kind: int
    start_time_ns: int
    end_time_ns: int | None
    status_code: int
    status_message: str
    trace_state: str
    flags: int
    attributes: dict[str, JsonValue]
    events: list[dict[str, JsonValue]]
    links: list[dict[str, JsonValue]]
    resource: dict[str, JsonValue]
    scope: dict[str, JsonValue]
    dropped_counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class SpanRejection:
    """A span refused alone; `index` counts spans across the whole request from 0."""

    index: int
    reason: str


@dataclass(frozen=True, slots=True)
class DecodedRequest:
    spans: list[SpanRecord]
    rejections: list[SpanRejection]


class _SpanOverBound(Exception):
    """A span breaks a per-span bound; it is rejected alone."""


def parse_protobuf(body: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as error:
        raise UndecodableBodyError(
            "invalid_protobuf",
            f"body is not a valid ExportTraceServiceRequest: {error}",
        ) from None
    return request


def parse_json(body: bytes) -> tuple[ExportTraceServiceRequest, list[SpanRejection]]:
    """Parse OTLP/JSON; spans with unusable ids are dropped here and reported."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise UndecodableBodyError("invalid_json", f"body is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise UndecodableBodyError("invalid_json", "body must be a JSON object")
    rejections = _convert_json_ids(document)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, ValueError, TypeError) as error:
        raise UndecodableBodyError(
            "invalid_otlp_json",
            f"body is not a valid OTLP/JSON ExportTraceServiceRequest: {_short(error)}",
        ) from None
    return request, rejections


def records_from_request(
    request: ExportTraceServiceRequest,
    *,
    limits: IngestLimits,
    rejections: list[SpanRejection] | None = None,
) -> DecodedRequest:
    """Turn a parsed request into span records, rejecting invalid spans one by one."""
    total = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    if total + len(rejections or []) > limits.max_spans_per_request:
        raise TooManySpansError(
            "too_many_spans",
            f"request holds {total} spans; the limit is {limits.max_spans_per_request}",
        )
    records: list[SpanRecord] = []
    refused = list(rejections or [])
    index = 0
    for resource_spans in request.resource_spans:
        resource, resource_problem = _resource(resource_spans.resource.attributes, limits)
        for scope_spans in resource_spans.scope_spans:
            scope = {
                "name": _clean(scope_spans.scope.name),
                "version": _clean(scope_spans.scope.version),
            }
            for span in scope_spans.spans:
                problem = resource_problem or _id_problem(span)
                if problem is None:
                    try:
                        records.append(_record(span, resource, scope, limits))
                    except _SpanOverBound as bound:
                        problem = str(bound)
                if problem is not None:
                    refused.append(SpanRejection(index=index, reason=problem))
                index += 1
    return DecodedRequest(spans=records, rejections=refused)


def _resource(attributes: Any, limits: IngestLimits) -> tuple[dict[str, JsonValue], str | None]:
    """The resource's attributes, or why its spans are rejected (a resource over a bound)."""
    try:
        return _attributes(attributes, limits), None
    except _SpanOverBound as bound:
        return {}, f"resource {bound}"


def _record(
    span: Span,
    resource: dict[str, JsonValue],
    scope: dict[str, JsonValue],
    limits: IngestLimits,
) -> SpanRecord:
    if len(span.events) > limits.max_events_per_span:
        raise _SpanOverBound(
            f"{len(span.events)} events; the limit is {limits.max_events_per_span}"
        )
    if len(span.links) > limits.max_links_per_span:
        raise _SpanOverBound(f"{len(span.links)} links; the limit is {limits.max_links_per_span}")
    end_time_ns = span.end_time_unix_nano or None
    return SpanRecord(
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_span_id=span.parent_span_id or None,
        name=_clean(span.name),
        kind=span.kind,
        start_time_ns=span.start_time_unix_nano,
        end_time_ns=end_time_ns,
        status_code=span.status.code,
        status_message=_clean(span.status.message),
        trace_state=_clean(span.trace_state),
        flags=span.flags,
        attributes=_attributes(span.attributes, limits),
        events=[
            {
                "name": _clean(event.name),
                "time_ns": event.time_unix_nano,
                "attributes": _attributes(event.attributes, limits),
            }
            for event in span.events
        ],
        links=[
            {
                "trace_id": link.trace_id.hex(),
                "span_id": link.span_id.hex(),
                "attributes": _attributes(link.attributes, limits),
            }
            for link in span.links
        ],
        resource=resource,
        scope=scope,
        dropped_counts={
            "attributes": span.dropped_attributes_count,
            "events": span.dropped_events_count,
            "links": span.dropped_links_count,
        },
    )


def _id_problem(span: Span) -> str | None:
    """Why the span's ids are unusable, or None (trace.proto: all-zero ids are invalid)."""
    if len(span.trace_id) != TRACE_ID_BYTES or not any(span.trace_id):
        return "invalid trace_id (must be 16 bytes, not all zero)"
    if len(span.span_id) != SPAN_ID_BYTES or not any(span.span_id):
        return "invalid span_id (must be 8 bytes, not all zero)"
    parent = span.parent_span_id
    if parent and len(parent) != SPAN_ID_BYTES:
        return "invalid parent_span_id (must be empty or 8 bytes)"
    if span.start_time_unix_nano > MAX_TIME_NS or span.end_time_unix_nano > MAX_TIME_NS:
        return "start or end time beyond the year 2262 (stored as signed 64-bit nanoseconds)"
    return None


def _attributes(attributes: Any, limits: IngestLimits) -> dict[str, JsonValue]:
    """Key-values as a dict; for a key given twice the last value wins.

    The attribute-count bound holds for every list: span, event, link and resource.
    """
    if len(attributes) > limits.max_attributes_per_span:
        raise _SpanOverBound(
            f"{len(attributes)} attributes; the limit is {limits.max_attributes_per_span}"
        )
    result: dict[str, JsonValue] = {}
    longest = limits.max_attribute_value_bytes
    for kv in attributes:
        key, value = kv.key, kv.value
        if NUL in key:
            key = key.replace(NUL, NUL_REPLACEMENT)
        # Most values are short strings: read them here rather than through _value.
        if (
            value.WhichOneof("value") == "string_value"
            and len(text := value.string_value) <= longest
        ):
            result[key] = text.replace(NUL, NUL_REPLACEMENT) if NUL in text else text
        else:
            result[key] = _value(value, limits, 1)
    return result


def _value(value: AnyValue, limits: IngestLimits, depth: int) -> JsonValue:  # noqa: C901
    kind = value.WhichOneof("value")
    if kind == "string_value":
        text = value.string_value
        if len(text) > limits.max_attribute_value_bytes:
            raise _SpanOverBound(
                f"attribute value of {len(text)} characters; the limit is "
                f"{limits.max_attribute_value_bytes}"
            )
        return text.replace(NUL, NUL_REPLACEMENT) if NUL in text else text
    if kind == "int_value" or kind == "bool_value":
        return getattr(value, kind)
    if kind == "double_value":
        number = value.double_value
        return number if math.isfinite(number) else str(number)
    if kind is None:
        return None
    if depth > limits.max_attribute_depth:
        raise _SpanOverBound(f"attribute nesting deeper than {limits.max_attribute_depth} levels")
    if kind == "array_value":
        return [_value(item, limits, depth + 1) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {
            _clean(kv.key): _value(kv.value, limits, depth + 1) for kv in value.kvlist_value.values
        }
    if kind == "bytes_value":
        if len(value.bytes_value) > limits.max_attribute_value_bytes:
            raise _SpanOverBound("bytes attribute over the attribute value limit")
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None  # string_value_strindex and other profile-only fields: ignored (common.proto)


def _clean(text: str) -> str:
    return text.replace(NUL, NUL_REPLACEMENT) if NUL in text else text


# ---- OTLP/JSON ids ---------------------------------------------------------------

_SPAN_ID_FIELDS = (("traceId", "trace_id", TRACE_ID_BYTES), ("spanId", "span_id", SPAN_ID_BYTES))
_PARENT_FIELDS = ("parentSpanId", "parent_span_id")


def _convert_json_ids(document: dict[str, Any]) -> list[SpanRejection]:
    """Rewrite hex ids as base64 in place; drop spans whose ids cannot be read."""
    rejections: list[SpanRejection] = []
    index = 0
    for resource_spans in _items(document, "resourceSpans", "resource_spans"):
        for scope_spans in _items(resource_spans, "scopeSpans", "scope_spans"):
            spans = _items(scope_spans, "spans", "spans")
            kept = []
            for span in spans:
                problem = _convert_span_ids(span) if isinstance(span, dict) else "not an object"
                if problem is None:
                    kept.append(span)
                else:
                    rejections.append(SpanRejection(index=index, reason=problem))
                index += 1
            if isinstance(scope_spans, dict):
                scope_spans.pop("spans", None)
                scope_spans["spans"] = kept
    return rejections


def _items(container: Any, camel: str, snake: str) -> list[Any]:
    if not isinstance(container, dict):
        return []
    items = container.get(camel, container.get(snake))
    return items if isinstance(items, list) else []


def _convert_span_ids(span: dict[str, Any]) -> str | None:
    for camel, snake, size in _SPAN_ID_FIELDS:
        key = camel if camel in span else snake
        raw = span.get(key)
        converted = _id_as_base64(raw, size)
        if converted is None:
            return f"invalid {snake} {_describe(raw)}: {2 * size} hex characters, not all zero"
        span[key] = converted
    for key in _PARENT_FIELDS:
        if key in span:
            raw = span[key]
            if raw in ("", None):
                del span[key]
                continue
            converted = _id_as_base64(raw, SPAN_ID_BYTES)
            if converted is None:
                return f"invalid parent_span_id {_describe(raw)}: 16 hex characters or empty"
            span[key] = converted
    for link in _items(span, "links", "links"):
        if isinstance(link, dict):
            _convert_link_ids(link)
    return None


def _convert_link_ids(link: dict[str, Any]) -> None:
    for camel, snake, size in _SPAN_ID_FIELDS:
        key = camel if camel in link else snake
        converted = _id_as_base64(link.get(key), size)
        link[key] = converted or ""


def _id_as_base64(raw: Any, size: int) -> str | None:
    """A hex id (any case) as base64 for the proto3 parser; base64 ids of the right size
    are accepted too, since generic proto3 JSON encoders write them."""
    if not isinstance(raw, str) or not raw:
        return None
    decoded: bytes | None = None
    if len(raw) == 2 * size:
        try:
            decoded = bytes.fromhex(raw)
        except ValueError:
            decoded = None
    if decoded is None:
        try:
            decoded = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return None
    if len(decoded) != size or not any(decoded):
        return None
    return base64.b64encode(decoded).decode("ascii")


def _describe(raw: Any) -> str:
    if isinstance(raw, str):
        return f"({len(raw)} characters)"
    return "(missing)" if raw is None else f"({type(raw).__name__})"


def _short(error: Exception) -> str:
    text = str(error)
    return text if len(text) <= 300 else text[:300] + "…"
