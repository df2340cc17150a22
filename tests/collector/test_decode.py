"""decode: OTLP protobuf and JSON bodies → span records and rejections (table-driven, no I/O)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from pathwatch.collector.decode import (
    DecodedRequest,
    parse_json,
    parse_protobuf,
    records_from_request,
)
from pathwatch.collector.errors import TooManySpansError, UndecodableBodyError
from pathwatch.collector.limits import IngestLimits

TRACE_HEX = "5b8efff798038103d269b633813fc60c"
SPAN_HEX = "eee19b7ec3c1b174"
LIMITS = IngestLimits(
    max_spans_per_request=10,
    max_attributes_per_span=4,
    max_attribute_value_bytes=16,
    max_attribute_depth=3,
    max_events_per_span=2,
    max_links_per_span=2,
)


def json_span(**fields: Any) -> dict[str, Any]:
    return {"traceId": TRACE_HEX, "spanId": SPAN_HEX, "name": "s", **fields}


def decode_json(*spans: dict[str, Any], resource: dict[str, Any] | None = None) -> DecodedRequest:
    resource_spans: dict[str, Any] = {"scopeSpans": [{"spans": list(spans)}]}
    if resource is not None:
        resource_spans["resource"] = resource
    body = json.dumps({"resourceSpans": [resource_spans]}).encode()
    request, rejections = parse_json(body)
    return records_from_request(request, limits=LIMITS, rejections=rejections)


def text(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(levels):
        value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    return value


@pytest.mark.parametrize(
    ("fields", "trace_id", "span_id"),
    [
        ({}, TRACE_HEX, SPAN_HEX),
        ({"traceId": TRACE_HEX.upper(), "spanId": SPAN_HEX.upper()}, TRACE_HEX, SPAN_HEX),
        ({"traceId": "W47/95gDgQPSabYzgT/GDA==", "spanId": "7uGbfsPBsXQ="}, TRACE_HEX, SPAN_HEX),
        ({"trace_id": TRACE_HEX, "span_id": SPAN_HEX, "traceId": None, "spanId": None},
         TRACE_HEX, SPAN_HEX),
    ],
    ids=["hex", "upper-hex", "base64", "snake-case"],
)  # fmt: skip
def test_parse_json_reads_ids_as_their_bytes(
    fields: dict[str, Any], trace_id: str, span_id: str
) -> None:
    span = {k: v for k, v in json_span(**fields).items() if v is not None}

    decoded = decode_json(span)

    assert decoded.rejections == []
    assert (decoded.spans[0].trace_id.hex(), decoded.spans[0].span_id.hex()) == (trace_id, span_id)


@pytest.mark.parametrize(
    "fields",
    [
        {"traceId": "0" * 32},
        {"traceId": TRACE_HEX[:-1]},
        {"traceId": TRACE_HEX + "a"},
        {"traceId": ""},
        {"traceId": 5},
        {"spanId": "0" * 16},
        {"spanId": "zz" * 8},
        {"parentSpanId": "abc"},
    ],
    ids=["zero", "31", "33", "empty", "number", "zero-span", "not-hex", "short-parent"],
)
def test_parse_json_rejects_spans_with_invalid_ids_alone(fields: dict[str, Any]) -> None:
    decoded = decode_json(json_span(spanId="00000000000000aa"), json_span(**fields))

    assert [s.span_id.hex() for s in decoded.spans] == ["00000000000000aa"]
    assert [r.index for r in decoded.rejections] == [1]


@pytest.mark.parametrize(
    ("fields", "attribute"),
    [
        ({"startTimeUnixNano": "1544712660123456789"}, None),
        ({"startTimeUnixNano": 1544712660123456789}, None),
        ({"kind": "SPAN_KIND_SERVER"}, None),
        ({"kind": 2}, None),
        ({"futureField": {"x": [1]}, "status": {"code": 1, "futureField": 1}}, None),
        ({"attributes": [text("k", "a"), text("k", "b")]}, ("k", "b")),
        ({"attributes": [{"key": "b", "value": {"bytesValue": "AAECAwQF/w=="}}]},
         ("b", "AAECAwQF/w==")),
        ({"attributes": [{"key": "n", "value": {}}]}, ("n", None)),
        ({"attributes": [text("nul\x00key", "a\x00b")]}, ("nul\ufffdkey", "a\ufffdb")),
    ],
    ids=["int64-string", "int64-number", "enum-name", "enum-number", "unknown-fields",
         "duplicate-key-last-wins", "bytes-base64", "empty-value", "nul"],
)  # fmt: skip
def test_parse_json_is_as_lenient_as_the_collector(
    fields: dict[str, Any], attribute: tuple[str, Any] | None
) -> None:
    decoded = decode_json(json_span(**fields))

    assert decoded.rejections == []
    span = decoded.spans[0]
    if "startTimeUnixNano" in fields:
        assert span.start_time_ns == 1544712660123456789
    if "kind" in fields:
        assert span.kind == 2
    if attribute is not None:
        assert span.attributes == dict([attribute])


@pytest.mark.parametrize(
    "body",
    [b"", b"[]", b"{", b"null", b'"x"', b'{"resourceSpans": 5}', b"\xff",
     b'{"a": ' * 100_000 + b"1" + b"}" * 100_000],
    ids=["empty", "array", "truncated", "null", "string", "wrong-shape", "not-utf8", "deep"],
)  # fmt: skip
def test_parse_json_refuses_undecodable_bodies(body: bytes) -> None:
    with pytest.raises(UndecodableBodyError):
        parse_json(body)


@pytest.mark.parametrize(
    "body",
    [b"\xff\xff\xff", b"\x0a\x05ab", b"\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01"],
    ids=["garbage", "length-past-end", "bad-varint"],
)
def test_parse_protobuf_refuses_undecodable_bodies(body: bytes) -> None:
    with pytest.raises(UndecodableBodyError):
        parse_protobuf(body)


def test_parse_protobuf_refuses_invalid_utf8_strings() -> None:
    span = Span(trace_id=bytes.fromhex(TRACE_HEX), span_id=bytes.fromhex(SPAN_HEX), name="NAME")
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.append(span)
    body = request.SerializeToString().replace(b"NAME", b"N\xffME")

    with pytest.raises(UndecodableBodyError):
        parse_protobuf(body)


@pytest.mark.parametrize(
    "fields",
    [
        {"attributes": [text(f"k{n}", "v") for n in range(5)]},
        {"attributes": [text("k", "x" * 17)]},
        {"attributes": [{"key": "b", "value": {"bytesValue": "eHh4eHh4eHh4eHh4eHh4eHg="}}]},
        {"attributes": [{"key": "d", "value": nested(4)}]},
        {"events": [{"name": "e"}] * 3},
        {"links": [{"traceId": TRACE_HEX, "spanId": SPAN_HEX}] * 3},
        {"events": [{"name": "e", "attributes": [text(f"k{n}", "v") for n in range(5)]}]},
        {"events": [{"name": "e", "attributes": [text("k", "x" * 17)]}]},
        {"links": [{"traceId": TRACE_HEX, "spanId": SPAN_HEX,
                    "attributes": [text(f"k{n}", "v") for n in range(5)]}]},
    ],
    ids=["attribute-count", "value-size", "bytes-size", "depth", "events", "links",
         "event-attribute-count", "event-value-size", "link-attribute-count"],
)  # fmt: skip
def test_records_from_request_rejects_a_span_over_a_bound_alone(fields: dict[str, Any]) -> None:
    decoded = decode_json(json_span(spanId="00000000000000aa"), json_span(**fields))

    assert [s.span_id.hex() for s in decoded.spans] == ["00000000000000aa"]
    assert [r.index for r in decoded.rejections] == [1]
    assert "limit" in decoded.rejections[0].reason or "deeper" in decoded.rejections[0].reason


@pytest.mark.parametrize(
    "fields",
    [
        {"attributes": [text(f"k{n}", "v") for n in range(4)]},
        {"attributes": [text("k", "x" * 16)]},
        {"attributes": [{"key": "d", "value": nested(3)}]},
        {"events": [{"name": "e"}] * 2},
    ],
    ids=["attribute-count", "value-size", "depth", "events"],
)
def test_records_from_request_accepts_a_span_at_each_bound(fields: dict[str, Any]) -> None:
    decoded = decode_json(json_span(**fields))

    assert decoded.rejections == []
    assert len(decoded.spans) == 1


@pytest.mark.parametrize(
    "resource",
    [
        {"attributes": [text("service.name", "x" * 17)]},
        {"attributes": [text(f"k{n}", "v") for n in range(5)]},
        {"attributes": [{"key": "d", "value": nested(4)}]},
    ],
    ids=["value-size", "attribute-count", "depth"],
)
def test_records_from_request_rejects_the_spans_of_a_resource_over_a_bound(
    resource: dict[str, Any],
) -> None:
    decoded = decode_json(json_span(), json_span(spanId="00000000000000aa"), resource=resource)

    assert decoded.spans == []
    assert [r.index for r in decoded.rejections] == [0, 1]
    assert all(r.reason.startswith("resource") for r in decoded.rejections)


def test_records_from_request_refuses_too_many_spans() -> None:
    spans = [json_span(spanId=f"{n:016x}") for n in range(1, 12)]

    with pytest.raises(TooManySpansError):
        decode_json(*spans)


def test_records_from_request_gives_protobuf_and_json_identical_records() -> None:
    attributes = [
        KeyValue(key="s", value=AnyValue(string_value="v")),
        KeyValue(key="i", value=AnyValue(int_value=-(2**63))),
        KeyValue(key="a", value=AnyValue(array_value={"values": [AnyValue(bool_value=True)]})),
    ]
    span = Span(
        trace_id=bytes.fromhex(TRACE_HEX),
        span_id=bytes.fromhex(SPAN_HEX),
        name="s",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=2**64 - 1,
        attributes=attributes,
    )
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.append(span)
    as_json = json_span(
        kind=3,
        startTimeUnixNano=str(2**64 - 1),
        attributes=[
            text("s", "v"),
            {"key": "i", "value": {"intValue": str(-(2**63))}},
            {"key": "a", "value": {"arrayValue": {"values": [{"boolValue": True}]}}},
        ],
    )

    from_protobuf = records_from_request(parse_protobuf(request.SerializeToString()), limits=LIMITS)

    assert from_protobuf == decode_json(as_json)


@pytest.mark.parametrize(
    "times",
    [
        {"startTimeUnixNano": "9223372036854775808"},
        {"startTimeUnixNano": "1", "endTimeUnixNano": "18446744073709551615"},
    ],
    ids=["start past int64", "end at uint64 max"],
)
def test_records_from_request_rejects_a_time_past_what_storage_holds(
    times: dict[str, str],
) -> None:
    decoded = decode_json(json_span(spanId="00000000000000aa"), json_span(**times))

    assert [s.span_id.hex() for s in decoded.spans] == ["00000000000000aa"]
    assert [r.index for r in decoded.rejections] == [1]
    assert "2262" in decoded.rejections[0].reason
