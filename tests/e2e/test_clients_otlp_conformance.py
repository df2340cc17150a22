"""OTLP/HTTP conformance and hostile payloads (RELIABILITY §8 A1-A13, D1-D4, D6).

Documented choices pinned here: an unknown Content-Encoding is 415 (RFC 9110), a
multi-member gzip body is accepted, JSON enum names and snake_case keys are accepted
(as the Collector does), base64 ids of the right size are accepted, and for an attribute
key given twice the last value wins.
"""

from __future__ import annotations

import base64
import gzip
import json
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.conftest import PostgresForTests, RunningServer
from tests.e2e.ingest_support import fetch_trace, module_server, post_otlp

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
START_NS = 1_544_712_660_123_456_789
LIMIT_BYTES = 64 * 1024
LIMITS_ENV = {
    "PATHWATCH_MAX_BODY_BYTES": str(LIMIT_BYTES),
    "PATHWATCH_MAX_SPANS_PER_REQUEST": "50",
    "PATHWATCH_MAX_ATTRIBUTES_PER_SPAN": "8",
    "PATHWATCH_MAX_ATTRIBUTE_VALUE_BYTES": "1000",
    "PATHWATCH_MAX_ATTRIBUTE_DEPTH": "4",
}


def new_trace_id() -> bytes:
    return uuid.uuid4().bytes


def span_id(number: int) -> bytes:
    return number.to_bytes(8, "big")


def text(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def make_span(trace_id: bytes, number: int, *, parent: int = 0, **fields: Any) -> Span:
    return Span(
        trace_id=trace_id,
        span_id=span_id(number),
        parent_span_id=span_id(parent) if parent else b"",
        name=fields.pop("name", f"step {number}"),
        kind=fields.pop("kind", Span.SPAN_KIND_INTERNAL),
        start_time_unix_nano=fields.pop("start", START_NS + number),
        end_time_unix_nano=fields.pop("end", START_NS + number + 1_000),
        **fields,
    )


def make_request(*spans: Span) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(text("service.name", "conformance"))
    resource_spans.scope_spans.add().spans.extend(spans)
    return request


def agent_run(trace_id: bytes, span_count: int = 4) -> ExportTraceServiceRequest:
    """A root agent span and tool spans under it, with the attributes of a real run."""
    root = make_span(
        trace_id,
        1,
        name="invoke_agent a",
        attributes=[text("gen_ai.operation.name", "invoke_agent"), text("gen_ai.agent.name", "a")],
    )
    tools = [
        make_span(
            trace_id,
            n,
            parent=1,
            name="execute_tool t",
            attributes=[
                text("gen_ai.operation.name", "execute_tool"),
                text("gen_ai.tool.name", "t"),
                text("gen_ai.tool.call.arguments", json.dumps({"n": n})),
                KeyValue(key="count", value=AnyValue(int_value=n)),
                KeyValue(key="ratio", value=AnyValue(double_value=n / 3)),
            ],
        )
        for n in range(2, span_count + 1)
    ]
    return make_request(root, *tools)


def to_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """OTLP/JSON as exporters write it: hex ids, integer enums, int64 as strings."""
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return document


def json_body(document: Any) -> bytes:
    return json.dumps(document).encode()


def spans_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    spans: list[dict[str, Any]] = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    return spans


def rejected(reply: httpx.Response) -> tuple[int, str]:
    if reply.headers["content-type"] == "application/x-protobuf":
        partial = ExportTraceServiceResponse.FromString(reply.content).partial_success
        return partial.rejected_spans, partial.error_message
    partial = reply.json().get("partialSuccess", {})
    return int(partial.get("rejectedSpans", 0)), partial.get("errorMessage", "")


def status_message(reply: httpx.Response) -> str:
    """The google.rpc.Status message of an error reply, decoded in the reply's encoding."""
    if reply.headers["content-type"] == "application/x-protobuf":
        return status_pb2.Status.FromString(reply.content).message
    message: str = reply.json()["message"]
    return message


def stored_span_ids(server: RunningServer, trace_id: bytes) -> list[str]:
    detail = fetch_trace(server, trace_id.hex())
    return [] if detail is None else sorted(s["span_id"] for s in detail["spans"])


@pytest.fixture(scope="module")
def limited_server(
    postgres: PostgresForTests,
    template_database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningServer]:
    """A server with small bounds, set through the environment."""
    yield from module_server(
        postgres, template_database, tmp_path_factory.mktemp("limited"), env=LIMITS_ENV
    )


# ---- A1, A2, A5, A8: encodings, media types, empty requests, 64-bit values ------------


def test_protobuf_and_json_of_one_request_store_identical_rows(
    shared_server: RunningServer,
) -> None:
    trace_pb, trace_json = new_trace_id(), new_trace_id()
    as_protobuf = agent_run(trace_pb, 100).SerializeToString()
    as_json = json_body(to_json(agent_run(trace_json, 100)))

    replies = [
        post_otlp(shared_server.otlp_http_url, as_protobuf, PROTOBUF),
        post_otlp(shared_server.otlp_http_url, as_json, JSON),
    ]

    assert [r.status_code for r in replies] == [200, 200]
    assert [r.headers["content-type"] for r in replies] == [
        "application/x-protobuf",
        "application/json",
    ]
    assert not ExportTraceServiceResponse.FromString(replies[0].content).HasField("partial_success")
    assert replies[1].json() == {}
    from_pb = fetch_trace(shared_server, trace_pb.hex())
    from_json = fetch_trace(shared_server, trace_json.hex())
    assert from_pb is not None and from_json is not None
    assert len(from_pb["spans"]) == 100
    assert from_pb["spans"] == from_json["spans"]
    assert from_pb["steps"] == from_json["steps"]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-8",
        "Application/JSON",
        "APPLICATION/JSON;charset=UTF-8",
        "application/x-protobuf",
        "application/x-protobuf; proto=opentelemetry.proto.collector.trace.v1",
        "Application/X-Protobuf",
    ],
)
def test_post_traces_accepts_content_type_parameters_and_case(
    shared_server: RunningServer, content_type: str
) -> None:
    trace_id = new_trace_id()
    request = agent_run(trace_id, 2)
    is_json = "json" in content_type.lower()
    body = json_body(to_json(request)) if is_json else request.SerializeToString()

    reply = post_otlp(shared_server.otlp_http_url, body, {"Content-Type": content_type})

    assert reply.status_code == 200
    assert len(stored_span_ids(shared_server, trace_id)) == 2


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"", PROTOBUF),
        (b"{}", JSON),
        (b'{"resourceSpans": []}', JSON),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": []}]}]}', JSON),
        (make_request().SerializeToString(), PROTOBUF),
    ],
    ids=["empty-protobuf", "empty-json", "no-resource-spans", "no-spans", "protobuf-no-spans"],
)
def test_post_traces_accepts_empty_requests(
    shared_server: RunningServer, body: bytes, headers: dict[str, str]
) -> None:
    reply = post_otlp(shared_server.otlp_http_url, body, headers)

    assert reply.status_code == 200
    assert rejected(reply) == (0, "")


@pytest.mark.parametrize("as_string", [True, False], ids=["string", "number"])
def test_post_traces_keeps_64_bit_times_exact(
    shared_server: RunningServer, as_string: bool
) -> None:
    trace_id = new_trace_id()
    document = to_json(make_request(make_span(trace_id, 1, start=START_NS, end=START_NS + 7)))
    span = spans_of(document)[0]
    if not as_string:
        span["startTimeUnixNano"] = START_NS
        span["endTimeUnixNano"] = START_NS + 7

    reply = post_otlp(shared_server.otlp_http_url, json_body(document), JSON)

    assert reply.status_code == 200
    stored = fetch_trace(shared_server, trace_id.hex())
    assert stored is not None
    assert stored["spans"][0]["start_time_unix_nano"] == START_NS
    assert stored["spans"][0]["end_time_unix_nano"] == START_NS + 7


# ---- A3, A4, A6: refused requests --------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Content-Type": "text/plain"}, 415),
        ({}, 415),
        ({"Content-Type": "application/xml"}, 415),
        ({**JSON, "Content-Encoding": "br"}, 415),
        ({**JSON, "Content-Encoding": "deflate"}, 415),
    ],
    ids=["text-plain", "no-content-type", "xml", "brotli", "deflate"],
)
def test_post_traces_refuses_unsupported_types_and_encodings(
    shared_server: RunningServer, headers: dict[str, str], status: int
) -> None:
    trace_id = new_trace_id()
    body = json_body(to_json(agent_run(trace_id, 2)))

    reply = httpx.post(f"{shared_server.otlp_http_url}/v1/traces", content=body, headers=headers)

    assert reply.status_code == status
    assert status_message(reply)
    assert fetch_trace(shared_server, trace_id.hex()) is None


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_traces_endpoint_refuses_other_methods(shared_server: RunningServer, method: str) -> None:
    reply = httpx.request(method, f"{shared_server.otlp_http_url}/v1/traces", headers=JSON)

    assert reply.status_code == 405


def _corrupt_gzip(body: bytes) -> bytes:
    compressed = bytearray(gzip.compress(body))
    compressed[len(compressed) // 2] ^= 0xFF
    return bytes(compressed)


@pytest.mark.parametrize(
    ("mangle", "status"),
    [
        (gzip.compress, 200),
        (lambda body: gzip.compress(body[:10]) + gzip.compress(body[10:]), 200),
        (lambda body: gzip.compress(body)[:-12], 400),
        (_corrupt_gzip, 400),
        (lambda body: body, 400),
    ],
    ids=["gzip", "two-member-gzip", "truncated-gzip", "corrupt-gzip", "not-gzip"],
)
@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_post_traces_inflates_gzip_and_refuses_broken_gzip(
    shared_server: RunningServer, mangle: Any, status: int, encoding: str
) -> None:
    trace_id = new_trace_id()
    request = agent_run(trace_id, 3)
    body, headers = (
        (request.SerializeToString(), PROTOBUF)
        if encoding == "protobuf"
        else (json_body(to_json(request)), JSON)
    )

    reply = post_otlp(
        shared_server.otlp_http_url, mangle(body), {**headers, "Content-Encoding": "gzip"}
    )

    assert reply.status_code == status
    assert reply.headers["content-type"] == headers["Content-Type"]
    assert len(stored_span_ids(shared_server, trace_id)) == (3 if status == 200 else 0)
    if status == 400:
        assert "gzip" in status_message(reply)


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (bytes(range(256)) * 4, PROTOBUF),
        (b"\x0a\xff\xff\xff\xff\x0f", PROTOBUF),
        (b'{"resourceSpans": [', JSON),
        (b"[]", JSON),
        (b'[{"resourceSpans": []}]', JSON),
        (b'"text"', JSON),
        (b'{"resourceSpans": {"not": "a list"}}', JSON),
        (b"\xff\xfe{}", JSON),
    ],
    ids=[
        "random-bytes",
        "length-past-end",
        "truncated-json",
        "json-array",
        "json-array-of-requests",
        "json-string",
        "wrong-shape",
        "not-utf8-json",
    ],
)
def test_post_traces_answers_undecodable_bodies_with_status_400(
    shared_server: RunningServer, body: bytes, headers: dict[str, str]
) -> None:
    reply = post_otlp(shared_server.otlp_http_url, body, headers)

    assert reply.status_code == 400
    assert reply.headers["content-type"] == headers["Content-Type"]
    assert status_message(reply)


# ---- A7, A9-A12, D6: ids, leniency, attribute values ------------------------------


@pytest.mark.parametrize(
    ("bad_trace_id", "bad_span_id"),
    [
        ("0" * 32, "00000000000000aa"),
        ("ab" * 15 + "a", "00000000000000ab"),
        ("ab" * 16 + "a", "00000000000000ac"),
        ("", "00000000000000ad"),
        ("zz" * 16, "00000000000000ae"),
        (None, "00000000000000af"),
        ("ab" * 16, "0" * 16),
        ("ab" * 16, "abc"),
        ("ab" * 16, ""),
    ],
    ids=[
        "zero-trace",
        "31-chars",
        "33-chars",
        "empty-trace",
        "not-hex",
        "missing-trace",
        "zero-span",
        "short-span",
        "empty-span",
    ],
)
def test_post_traces_rejects_spans_with_invalid_ids_alone(
    shared_server: RunningServer, bad_trace_id: str | None, bad_span_id: str
) -> None:
    trace_id = new_trace_id()
    document = to_json(agent_run(trace_id, 3))
    bad = dict(spans_of(document)[1], spanId=bad_span_id, parentSpanId="")
    if bad_trace_id is None:
        del bad["traceId"]
    else:
        bad["traceId"] = bad_trace_id
    spans_of(document).append(bad)

    reply = post_otlp(shared_server.otlp_http_url, json_body(document), JSON)

    assert reply.status_code == 200
    count, message = rejected(reply)
    assert count == 1
    assert "span 3" in message
    assert stored_span_ids(shared_server, trace_id) == [span_id(n).hex() for n in (1, 2, 3)]


@pytest.mark.parametrize(
    "spell",
    [str.lower, str.upper, lambda hex_id: hex_id[:9].upper() + hex_id[9:]],
    ids=["lower", "upper", "mixed"],
)
def test_post_traces_reads_ids_in_any_hex_case(shared_server: RunningServer, spell: Any) -> None:
    trace_id = new_trace_id()
    document = to_json(agent_run(trace_id, 2))
    for span in spans_of(document):
        for key in ("traceId", "spanId", "parentSpanId"):
            if key in span:
                span[key] = spell(span[key])

    reply = post_otlp(shared_server.otlp_http_url, json_body(document), JSON)

    assert reply.status_code == 200
    assert stored_span_ids(shared_server, trace_id) == [span_id(1).hex(), span_id(2).hex()]


def test_post_traces_rejects_protobuf_spans_with_wrong_id_lengths(
    shared_server: RunningServer,
) -> None:
    trace_id = new_trace_id()
    request = agent_run(trace_id, 2)
    scope = request.resource_spans[0].scope_spans[0]
    scope.spans.add(trace_id=trace_id[:15], span_id=span_id(7), name="short trace id")
    scope.spans.add(trace_id=trace_id, span_id=b"\x01" * 9, name="long span id")
    scope.spans.add(trace_id=trace_id, span_id=span_id(8), parent_span_id=b"\x01", name="p")

    reply = post_otlp(shared_server.otlp_http_url, request.SerializeToString(), PROTOBUF)

    assert reply.status_code == 200
    assert rejected(reply)[0] == 3
    assert stored_span_ids(shared_server, trace_id) == [span_id(1).hex(), span_id(2).hex()]


def _add_unknown_fields(document: Any, depth: int = 0) -> Any:
    if isinstance(document, dict):
        marked = {k: _add_unknown_fields(v, depth + 1) for k, v in document.items()}
        marked[f"futureField{depth}"] = {"nested": [1, "x"]}
        return marked
    if isinstance(document, list):
        return [_add_unknown_fields(item, depth + 1) for item in document]
    return document


def test_post_traces_ignores_unknown_json_fields_at_every_level(
    shared_server: RunningServer,
) -> None:
    trace_id = new_trace_id()
    document = _add_unknown_fields(to_json(agent_run(trace_id, 3)))

    reply = post_otlp(shared_server.otlp_http_url, json_body(document), JSON)

    assert reply.status_code == 200
    assert rejected(reply) == (0, "")
    assert len(stored_span_ids(shared_server, trace_id)) == 3


def test_post_traces_ignores_unknown_protobuf_fields(shared_server: RunningServer) -> None:
    trace_id = new_trace_id()
    # Field 99 as a length-delimited value, at the top level and inside the span.
    unknown = b"\x9a\x06\x03abc"
    span = make_span(trace_id, 1).SerializeToString() + unknown
    scope_spans = b"\x12" + bytes([len(span)]) + span
    resource_spans = b"\x12" + bytes([len(scope_spans)]) + scope_spans
    body = b"\x0a" + bytes([len(resource_spans)]) + resource_spans + unknown

    reply = post_otlp(shared_server.otlp_http_url, body, PROTOBUF)

    assert reply.status_code == 200
    assert stored_span_ids(shared_server, trace_id) == [span_id(1).hex()]


def test_post_traces_accepts_enum_names_and_snake_case_keys(shared_server: RunningServer) -> None:
    trace_id = new_trace_id()
    document = {
        "resource_spans": [
            {
                "scope_spans": [
                    {
                        "spans": [
                            {
                                "trace_id": trace_id.hex(),
                                "span_id": span_id(1).hex(),
                                "name": "server span",
                                "kind": "SPAN_KIND_SERVER",
                                "start_time_unix_nano": str(START_NS),
                                "end_time_unix_nano": START_NS + 5,
                                "status": {"code": "STATUS_CODE_ERROR"},
                            },
                            {
                                "traceId": trace_id.hex(),
                                "spanId": span_id(2).hex(),
                                "parentSpanId": span_id(1).hex(),
                                "name": "client span",
                                "kind": 3,
                                "startTimeUnixNano": START_NS + 1,
                            },
                            {
                                "traceId": trace_id.hex(),
                                "spanId": span_id(3).hex(),
                                "parentSpanId": span_id(1).hex(),
                                "name": "future kind",
                                "kind": "SPAN_KIND_FROM_THE_FUTURE",
                            },
                        ]
                    }
                ]
            }
        ]
    }

    reply = post_otlp(shared_server.otlp_http_url, json_body(document), JSON)

    assert reply.status_code == 200
    stored = fetch_trace(shared_server, trace_id.hex())
    assert stored is not None
    by_name = {s["name"]: s for s in stored["spans"]}
    assert by_name["server span"]["kind"] == 2
    assert by_name["server span"]["status_code"] == 2
    assert by_name["server span"]["end_time_unix_nano"] == START_NS + 5
    assert by_name["client span"]["kind"] == 3
    assert by_name["client span"]["parent_span_id"] == span_id(1).hex()
    assert by_name["future kind"]["kind"] == 0  # an unknown enum name reads as unspecified


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ({"bytesValue": "AAECAwQF/w=="}, "AAECAwQF/w=="),
        ({"intValue": "9007199254740993"}, 9007199254740993),
        ({"intValue": -5}, -5),
        ({"doubleValue": 0.1}, 0.1),
        ({"doubleValue": "NaN"}, "nan"),
        ({"doubleValue": "Infinity"}, "inf"),
        ({"boolValue": False}, False),
        ({}, None),
        ({"arrayValue": {}}, []),
        ({"kvlistValue": {"values": [{"key": "k", "value": {"stringValue": "v"}}]}}, {"k": "v"}),
    ],
    ids=[
        "bytes",
        "int64-string",
        "int-number",
        "double",
        "nan",
        "infinity",
        "bool",
        "empty",
        "empty-array",
        "kvlist",
    ],
)
def test_post_traces_stores_attribute_values_by_type(
    shared_server: RunningServer, value: dict[str, Any], stored: Any
) -> None:
    trace_id = new_trace_id()
    document = to_json(make_request(make_span(trace_id, 1)))
    spans_of(document)[0]["attributes"] = [{"key": "v", "value": value}]

    reply = post_otlp(shared_server.otlp_http_url, json_body(document), JSON)

    assert reply.status_code == 200
    detail = fetch_trace(shared_server, trace_id.hex())
    assert detail is not None
    assert detail["spans"][0]["attributes"] == {"v": stored}


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_post_traces_keeps_the_last_of_duplicate_attribute_keys(
    shared_server: RunningServer, encoding: str
) -> None:
    trace_id = new_trace_id()
    span = make_span(trace_id, 1, attributes=[text("k", "first"), text("k", "last")])
    request = make_request(span)
    body, headers = (
        (request.SerializeToString(), PROTOBUF)
        if encoding == "protobuf"
        else (json_body(to_json(request)), JSON)
    )

    reply = post_otlp(shared_server.otlp_http_url, body, headers)

    assert reply.status_code == 200
    detail = fetch_trace(shared_server, trace_id.hex())
    assert detail is not None
    assert detail["spans"][0]["attributes"] == {"k": "last"}


SQL_TEXTS = [
    "'; DROP TABLE spans; --",
    "100% of _all_ \\ rows",
    "quote \" and ' and `tick`",
    "$1 $$ dollar $$ ::jsonb",
    "\\u0000 literal escape",
    "emoji 🤖 and RTL \u202e",
]


def test_post_traces_stores_sql_metacharacters_verbatim(shared_server: RunningServer) -> None:
    trace_id = new_trace_id()
    attributes = [text(value, value) for value in SQL_TEXTS]
    span = make_span(trace_id, 1, name=SQL_TEXTS[0], attributes=attributes)

    reply = post_otlp(shared_server.otlp_http_url, make_request(span).SerializeToString(), PROTOBUF)

    assert reply.status_code == 200
    detail = fetch_trace(shared_server, trace_id.hex())
    assert detail is not None
    assert detail["spans"][0]["name"] == SQL_TEXTS[0]
    assert detail["spans"][0]["attributes"] == {value: value for value in SQL_TEXTS}


def test_post_traces_stores_tool_spans_with_empty_arguments_and_result(
    shared_server: RunningServer,
) -> None:
    trace_id = new_trace_id()
    attributes = [
        text("gen_ai.operation.name", "execute_tool"),
        text("gen_ai.tool.name", "noop"),
        text("gen_ai.tool.call.arguments", ""),
        text("gen_ai.tool.call.result", "  "),
    ]
    span = make_span(trace_id, 1, attributes=attributes)

    reply = post_otlp(shared_server.otlp_http_url, make_request(span).SerializeToString(), PROTOBUF)

    assert reply.status_code == 200
    detail = fetch_trace(shared_server, trace_id.hex())
    assert detail is not None
    assert detail["steps"][0]["tool_result"] == "  "


# ---- D2-D4: nesting and encoding ---------------------------------------------------


def _nested_kvlists(levels: int) -> AnyValue:
    value = AnyValue(string_value="leaf")
    for level in range(levels):
        value = AnyValue(kvlist_value={"values": [KeyValue(key=f"l{level}", value=value)]})
    return value


def test_post_traces_stores_twenty_levels_of_nesting(shared_server: RunningServer) -> None:
    trace_id = new_trace_id()
    span = make_span(trace_id, 1, attributes=[KeyValue(key="deep", value=_nested_kvlists(20))])

    reply = post_otlp(shared_server.otlp_http_url, make_request(span).SerializeToString(), PROTOBUF)

    assert reply.status_code == 200
    detail = fetch_trace(shared_server, trace_id.hex())
    assert detail is not None
    value, levels = detail["spans"][0]["attributes"]["deep"], 0
    while isinstance(value, dict) and levels < 50:
        value, levels = next(iter(value.values())), levels + 1
    assert (levels, value) == (20, "leaf")


def _deep_protobuf(levels: int) -> bytes:
    """A span attribute nested `levels` kvlists deep, built as raw bytes (no recursion)."""
    leaf = AnyValue(string_value="x").SerializeToString()
    headers, size = [], len(leaf)
    for _ in range(levels):  # each level: AnyValue{kvlist{KeyValue{key "k", value}}}
        key_value = b"\x0a\x01k\x12" + _varint(size)
        kvlist = b"\x0a" + _varint(size + len(key_value))
        any_value = b"\x32" + _varint(size + len(key_value) + len(kvlist))
        header = any_value + kvlist + key_value
        headers.append(header)
        size += len(header)
    value = b"".join(reversed(headers)) + leaf
    attribute = b"\x0a\x01d\x12" + _varint(len(value)) + value
    span = make_span(new_trace_id(), 1).SerializeToString()
    span += b"\x4a" + _varint(len(attribute)) + attribute
    scope_spans = b"\x12" + _varint(len(span)) + span
    resource_spans = b"\x12" + _varint(len(scope_spans)) + scope_spans
    return b"\x0a" + _varint(len(resource_spans)) + resource_spans


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (lambda: _deep_protobuf(100_000), PROTOBUF),
        (lambda: b'{"resourceSpans": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", JSON),
        (
            lambda: (
                b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"'
                + b"ab" * 16
                + b'","spanId":"'
                + b"cd" * 8
                + b'","attributes":[{"key":"d","value":'
                + b'{"arrayValue":{"values":[' * 50_000
                + b"{}"
                + b"]}}" * 50_000
                + b"}]}]}]}]}"
            ),
            JSON,
        ),
    ],
    ids=["protobuf-100k-kvlists", "json-100k-arrays", "json-50k-array-values"],
)
def test_post_traces_refuses_deep_nesting_quickly_and_stays_up(
    shared_server: RunningServer, body: Any, headers: dict[str, str]
) -> None:
    payload = body()
    started = time.monotonic()

    reply = post_otlp(shared_server.otlp_http_url, payload, headers)

    elapsed = time.monotonic() - started
    assert reply.status_code == 400 or (reply.status_code == 200 and rejected(reply)[0] == 1)
    assert elapsed < 5
    assert shared_server.process.poll() is None
    assert httpx.get(f"{shared_server.base_url}/healthz", timeout=5).status_code == 200


def test_post_traces_refuses_invalid_utf8_in_protobuf_strings(
    shared_server: RunningServer,
) -> None:
    trace_id = new_trace_id()
    body = make_request(make_span(trace_id, 1, name="NAME")).SerializeToString()
    body = body.replace(b"NAME", b"N\xffM\xc3")

    reply = post_otlp(shared_server.otlp_http_url, body, PROTOBUF)

    assert reply.status_code == 400
    assert status_message(reply)
    assert fetch_trace(shared_server, trace_id.hex()) is None


# ---- A13, D1, D5: bounds -----------------------------------------------------------


def _chunks(body: bytes, size: int = 8192) -> Iterator[bytes]:
    for offset in range(0, len(body), size):
        yield body[offset : offset + size]


def _over_limit_body(trace_id: bytes) -> bytes:
    spans = [make_span(trace_id, n, name="x" * 500) for n in range(1, 50)]
    for span in spans:
        span.attributes.append(text("pad", "y" * 900))
    body = make_request(*spans).SerializeToString()
    assert len(body) > LIMIT_BYTES
    return body


@pytest.mark.parametrize(
    "send",
    [
        lambda url, body: post_otlp(url, body, PROTOBUF),
        lambda url, body: post_otlp(
            url, gzip.compress(body), {**PROTOBUF, "Content-Encoding": "gzip"}
        ),
        lambda url, body: httpx.post(
            f"{url}/v1/traces", content=_chunks(body), headers=PROTOBUF, timeout=30
        ),
        lambda url, body: httpx.post(
            f"{url}/v1/traces",
            content=_chunks(gzip.compress(body)),
            headers={**PROTOBUF, "Content-Encoding": "gzip"},
            timeout=30,
        ),
    ],
    ids=["raw", "gzip-inflating-past-limit", "chunked", "chunked-gzip"],
)
def test_post_traces_answers_bodies_over_the_limit_with_413(
    limited_server: RunningServer, send: Any
) -> None:
    trace_id = new_trace_id()
    body = _over_limit_body(trace_id)

    reply = send(limited_server.otlp_http_url, body)

    assert reply.status_code == 413
    assert status_message(reply)
    assert fetch_trace(limited_server, trace_id.hex()) is None


def test_post_traces_answers_a_gzip_bomb_with_413_quickly(limited_server: RunningServer) -> None:
    bomb = gzip.compress(b"\x00" * (256 * 1024 * 1024), compresslevel=9)
    started = time.monotonic()

    reply = post_otlp(limited_server.otlp_http_url, bomb, {**PROTOBUF, "Content-Encoding": "gzip"})

    assert reply.status_code == 413
    assert time.monotonic() - started < 5


def _raw_post(server: RunningServer, headers: bytes, body: bytes) -> int:
    """Send a hand-made HTTP/1.1 request and return the status code of the reply."""
    with socket.create_connection(("127.0.0.1", server.otlp_http_port), timeout=10) as sock:
        sock.sendall(headers + body)
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return int(reply.split(b" ", 2)[1])


@pytest.mark.parametrize(
    ("declared", "sent_bytes", "statuses"),
    [
        (LIMIT_BYTES * 100, 100, {413}),  # says too much: refused before reading
        (100, LIMIT_BYTES * 2, {400}),  # says little: only the declared bytes are read
    ],
    ids=["declares-over-limit", "declares-under-limit"],
)
def test_post_traces_bounds_bodies_with_lying_content_length(
    limited_server: RunningServer, declared: int, sent_bytes: int, statuses: set[int]
) -> None:
    headers = (
        b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-protobuf\r\n"
        b"Content-Length: " + str(declared).encode() + b"\r\nConnection: close\r\n\r\n"
    )

    status = _raw_post(limited_server, headers, b"\x0a" * sent_bytes)

    assert status in statuses
    assert httpx.get(f"{limited_server.base_url}/healthz", timeout=5).status_code == 200


def test_post_traces_rejects_the_spans_of_a_resource_over_a_bound(
    limited_server: RunningServer,
) -> None:
    trace_id = new_trace_id()
    request = agent_run(trace_id, 3)
    request.resource_spans[0].resource.attributes.append(text("host.notes", "x" * 1001))

    reply = post_otlp(limited_server.otlp_http_url, request.SerializeToString(), PROTOBUF)

    assert reply.status_code == 200
    assert rejected(reply)[0] == 3
    assert fetch_trace(limited_server, trace_id.hex()) is None


def test_post_traces_answers_too_many_spans_with_413(limited_server: RunningServer) -> None:
    trace_id = new_trace_id()
    request = make_request(*(make_span(trace_id, n) for n in range(1, 52)))

    reply = post_otlp(limited_server.otlp_http_url, request.SerializeToString(), PROTOBUF)

    assert reply.status_code == 413
    assert fetch_trace(limited_server, trace_id.hex()) is None


@pytest.mark.parametrize(
    "attributes",
    [
        [text(f"k{n}", "v") for n in range(9)],
        [text("big", "x" * 1001)],
        [KeyValue(key="blob", value=AnyValue(bytes_value=b"x" * 1001))],
        [KeyValue(key="deep", value=_nested_kvlists(5))],
        [
            KeyValue(
                key="list",
                value=AnyValue(array_value={"values": [_nested_kvlists(4)]}),
            )
        ],
    ],
    ids=["attribute-count", "value-size", "bytes-size", "kvlist-depth", "array-depth"],
)
@pytest.mark.parametrize("where", ["span", "event"])
def test_post_traces_rejects_a_span_over_a_bound_alone(
    limited_server: RunningServer, attributes: list[KeyValue], where: str
) -> None:
    trace_id = new_trace_id()
    over = make_span(trace_id, 2, parent=1)
    if where == "span":
        over.attributes.extend(attributes)
    else:
        over.events.add(name="e", time_unix_nano=START_NS, attributes=attributes)
    request = make_request(make_span(trace_id, 1), over, make_span(trace_id, 3, parent=1))

    reply = post_otlp(limited_server.otlp_http_url, request.SerializeToString(), PROTOBUF)

    assert reply.status_code == 200
    count, message = rejected(reply)
    assert (count, message.startswith("1 spans rejected; span 1:")) == (1, True)
    assert stored_span_ids(limited_server, trace_id) == [span_id(1).hex(), span_id(3).hex()]


@pytest.mark.parametrize(
    "attributes",
    [
        [text(f"k{n}", "v") for n in range(8)],
        [text("big", "x" * 1000)],
        [KeyValue(key="deep", value=_nested_kvlists(3))],
    ],
    ids=["attribute-count", "value-size", "depth"],
)
def test_post_traces_accepts_spans_at_each_bound(
    limited_server: RunningServer, attributes: list[KeyValue]
) -> None:
    trace_id = new_trace_id()
    request = make_request(make_span(trace_id, 1, attributes=attributes))

    reply = post_otlp(limited_server.otlp_http_url, request.SerializeToString(), PROTOBUF)

    assert reply.status_code == 200
    assert rejected(reply) == (0, "")
    assert stored_span_ids(limited_server, trace_id) == [span_id(1).hex()]


# ---- gRPC ----------------------------------------------------------------------------


def test_grpc_export_rejects_invalid_spans_alone(shared_server: RunningServer) -> None:
    trace_id = new_trace_id()
    request = agent_run(trace_id, 2)
    request.resource_spans[0].scope_spans[0].spans.add(trace_id=b"\x00" * 16, span_id=span_id(9))

    with grpc.insecure_channel(shared_server.otlp_grpc_target) as channel:
        response = TraceServiceStub(channel).Export(request, timeout=10)

    assert response.partial_success.rejected_spans == 1
    assert response.partial_success.error_message
    assert stored_span_ids(shared_server, trace_id) == [span_id(1).hex(), span_id(2).hex()]


def test_grpc_export_over_the_size_limit_is_resource_exhausted(
    limited_server: RunningServer,
) -> None:
    trace_id = new_trace_id()
    request = ExportTraceServiceRequest.FromString(_over_limit_body(trace_id))

    with (
        grpc.insecure_channel(limited_server.otlp_grpc_target) as channel,
        pytest.raises(grpc.RpcError) as refused,
    ):
        TraceServiceStub(channel).Export(request, timeout=10)

    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert fetch_trace(limited_server, trace_id.hex()) is None
