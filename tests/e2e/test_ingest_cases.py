"""Bug-report inputs (tests/fixtures/ingest/PW-*): each request's status and what is stored.

Where a case allows two answers, the documented choice is the lenient one: base64 ids of
the right size are decoded (PW-05 request 3), and spans with all-zero ids are rejected
alone with partial_success (PW-05 request 5). NUL becomes U+FFFD (PW-10).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.conftest import FIXTURES, RunningServer, start_server, wait_for
from tests.e2e.ingest_support import (
    assert_whole_trace,
    fetch_trace,
    list_trace_ids,
    post_otlp,
    steps_by_name,
)

CASES_DIR = FIXTURES / "ingest"
CASE_IDS = sorted(p.name for p in CASES_DIR.iterdir() if (p / "case.json").is_file())
# Statuses where the case leaves a choice: (case, request index) → the chosen answer.
CHOSEN_STATUS = {("PW-05", 2): 200, ("PW-05", 4): 200}
DOCUMENTED_REJECTIONS = {("PW-05", 4): 4}  # all-zero trace id: every span rejected
REPLACEMENT = "\ufffd"


def load_case(case_id: str) -> dict[str, Any]:
    case: dict[str, Any] = json.loads((CASES_DIR / case_id / "case.json").read_text())
    return case


def send_request(server: RunningServer, case_id: str, request: dict[str, Any]) -> httpx.Response:
    body = (CASES_DIR / case_id / request["file"]).read_bytes()
    assert request["method"] == "POST"
    return httpx.post(
        f"{server.otlp_http_url}{request['path']}",
        content=body,
        headers=request["headers"],
        timeout=30,
    )


def send_case(server: RunningServer, case_id: str) -> list[httpx.Response]:
    return [send_request(server, case_id, r) for r in load_case(case_id)["requests"]]


def expected_status(case_id: str, index: int, listed: int | str) -> int:
    if isinstance(listed, int):
        return listed
    return CHOSEN_STATUS[(case_id, index)]


def rejected_spans(reply: httpx.Response) -> int:
    if reply.headers["content-type"] == "application/x-protobuf":
        response = ExportTraceServiceResponse.FromString(reply.content)
        return response.partial_success.rejected_spans
    return int(reply.json().get("partialSuccess", {}).get("rejectedSpans", 0))


@pytest.fixture(scope="module")
def replies(shared_server: RunningServer) -> dict[str, list[httpx.Response]]:
    """Every case sent once, in order, to the shared server."""
    return {case_id: send_case(shared_server, case_id) for case_id in CASE_IDS}


def trace(server: RunningServer, trace_id: str) -> dict[str, Any]:
    detail = fetch_trace(server, trace_id)
    assert detail is not None, f"trace {trace_id} is not stored"
    return detail


def span_named(detail: dict[str, Any], span_id: str) -> dict[str, Any]:
    return next(s for s in detail["spans"] if s["span_id"] == span_id)


def step_of(detail: dict[str, Any], span_id: str) -> dict[str, Any]:
    return next(s for s in detail["steps"] if s["span_id"] == span_id)


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_ingest_case_requests_get_their_expected_status(
    replies: dict[str, list[httpx.Response]], case_id: str
) -> None:
    listed = load_case(case_id)["expected"]["http"]

    statuses = [r.status_code for r in replies[case_id]]

    assert statuses == [expected_status(case_id, i, s) for i, s in enumerate(listed)]
    for index, reply in enumerate(replies[case_id]):
        if reply.status_code == 200:
            expected = DOCUMENTED_REJECTIONS.get((case_id, index), 0)
            assert rejected_spans(reply) == expected


def stored_traces(server: RunningServer) -> dict[str, tuple[int, int]]:
    """Trace id → (listed span count, spans in its detail) for every stored trace."""
    counts = {}
    for trace_id in list_trace_ids(server):
        detail = trace(server, trace_id)
        counts[trace_id] = (detail["trace"]["span_count"], len(detail["spans"]))
    return counts


def test_ingest_cases_resent_change_nothing(
    shared_server: RunningServer, replies: dict[str, list[httpx.Response]]
) -> None:
    before = stored_traces(shared_server)

    again = {case_id: send_case(shared_server, case_id) for case_id in CASE_IDS}

    assert {c: [r.status_code for r in rs] for c, rs in again.items()} == {
        c: [r.status_code for r in rs] for c, rs in replies.items()
    }
    assert stored_traces(shared_server) == before


@pytest.fixture
def quick_server(database_url: str, tmp_path: Path) -> Iterator[RunningServer]:
    """A server that settles traces after 1 s and calls a rootless trace stalled after 1 s."""
    running = start_server(
        database_url,
        tmp_path,
        extra_args=("--settle-seconds", "1", "--stall-timeout", "1"),
    )
    yield running
    running.stop()


def test_pw03_root_arriving_last_completes_one_tree(quick_server: RunningServer) -> None:
    server = quick_server
    trace_id = "0b0d7614d74970b92180b87d27ebbd22"
    requests = load_case("PW-03")["requests"]

    for request in requests[:2]:
        assert send_request(server, "PW-03", request).status_code == 200
    provisional = trace(server, trace_id)
    assert len(provisional["spans"]) == 5
    assert not provisional["trace"]["has_root"]
    wait_for(
        lambda: trace(server, trace_id)["trace"]["status"] == "stalled",
        message="the rootless trace to stall",
    )
    assert send_request(server, "PW-03", requests[2]).status_code == 200

    detail = assert_whole_trace(server, trace_id, 6)
    assert detail["tree"][0]["span_id"] == "e4be64091956f4e0"
    assert detail["trace"]["root_name"] == "invoke_agent support-agent"
    assert detail["path"] == [
        "llm:gpt-4o-mini",
        "tool:lookup_order",
        "llm:gpt-4o-mini",
        "tool:track_parcel",
        "llm:gpt-4o-mini",
    ]
    wait_for(
        lambda: trace(server, trace_id)["trace"]["status"] == "complete",
        message="the trace to complete once its root arrived",
    )


def test_pw04_duplicates_are_stored_once(
    shared_server: RunningServer, replies: dict[str, list[httpx.Response]]
) -> None:
    detail = assert_whole_trace(shared_server, "9f5cc3311096be2a625be8c3541d687c", 8)

    tools = [s for s in detail["steps"] if s["type"] == "tool"]
    assert [t["tool_name"] for t in tools] == ["lookup_order", "issue_refund", "send_email"]
    chats = [s for s in detail["steps"] if s["type"] == "llm"]
    assert len(chats) == 4
    assert sum(c["input_tokens"] for c in chats) == 812 * 4
    assert sum(c["output_tokens"] for c in chats) == 41 * 4


@pytest.mark.parametrize(
    ("trace_id", "root_span_id"),
    [
        ("5b8efff798038103d269b633813fc60c", "cd328ab577f00e28"),  # hex, the spec's form
        ("0af7651916cd43dd8448eb211c80319c", "f04157f54f6d30b6"),  # upper-case hex
        ("08e1bc229eb5d3530ce77f41f7ae5ba6", "6f298f09b61d380c"),  # base64, decoded
        ("b096effa3b62401d3ba70888128a3e27", "ecccd46539598523"),  # parentSpanId ""
    ],
    ids=["hex", "upper-hex", "base64", "empty-parent"],
)
def test_pw05_ids_are_stored_as_their_bytes(
    shared_server: RunningServer,
    replies: dict[str, list[httpx.Response]],
    trace_id: str,
    root_span_id: str,
) -> None:
    detail = assert_whole_trace(shared_server, trace_id, 4)

    root = next(s for s in detail["spans"] if s["parent_span_id"] is None)
    assert root["span_id"] == root_span_id
    assert all(len(s["span_id"]) == 16 for s in detail["spans"])
    assert all(len(t) == 32 for t in list_trace_ids(shared_server))


def test_pw05_all_zero_trace_id_is_not_stored(
    shared_server: RunningServer, replies: dict[str, list[httpx.Response]]
) -> None:
    assert "0" * 32 not in list_trace_ids(shared_server)
    reply = httpx.get(f"{shared_server.base_url}/api/v1/traces/{'0' * 32}", timeout=10)
    assert reply.status_code == 404


def test_pw07_gzip_bodies_store_what_their_inflated_bodies_store(
    shared_server: RunningServer, replies: dict[str, list[httpx.Response]], server: RunningServer
) -> None:
    inflated = [
        ("01.json.gz", "application/json", "f53155844469fc8967e4b0d4ea7764cc"),
        ("02.pb.gz", "application/x-protobuf", "5fa11ed1a6ee2133bb47baeec76a5aee"),
    ]

    for name, content_type, trace_id in inflated:
        body = gzip.decompress((CASES_DIR / "PW-07" / name).read_bytes())
        assert post_otlp(server.otlp_http_url, body, {"Content-Type": content_type}).is_success

        plain = assert_whole_trace(server, trace_id, 4)
        compressed = assert_whole_trace(shared_server, trace_id, 4)
        assert compressed["spans"] == plain["spans"]
        assert compressed["steps"] == plain["steps"]
    assert b"gzip" in replies["PW-07"][2].content


def test_pw08_response_encoding_follows_the_request(
    replies: dict[str, list[httpx.Response]],
) -> None:
    protobuf, json_reply, text = replies["PW-08"]

    assert protobuf.headers["content-type"] == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(protobuf.content).HasField("partial_success")
    assert json_reply.headers["content-type"] == "application/json"
    assert json_reply.json() == {}
    assert text.status_code == 415


def test_pw10_nul_characters_become_replacement_characters(
    shared_server: RunningServer, replies: dict[str, list[httpx.Response]]
) -> None:
    detail = assert_whole_trace(shared_server, "60d05fde3b14e261c4250046628c3eb8", 6)

    shell = span_named(detail, "d46b76ca9f55b02e")
    assert shell["name"] == f"execute_tool run_shell{REPLACEMENT}"
    assert f"debug.{REPLACEMENT}raw" in shell["attributes"]
    assert shell["attributes"]["gen_ai.tool.call.result"] == f"abc{REPLACEMENT}def{REPLACEMENT}"
    shell_step = step_of(detail, "d46b76ca9f55b02e")
    assert shell_step["tool_name"] == "run_shell"
    assert shell_step["tool_result"] == f"abc{REPLACEMENT}def{REPLACEMENT}"
    explain = step_of(detail, "f5bd6b1235c71e51")
    assert explain["tool_result"] == (
        "The message contains the escape sequence \\u0000 which Postgres rejects"
    )


STRUCTURED_TRACE = "4f27b4338a16a77985c1aef882805dfb"


def test_pw13_structured_attribute_values_keep_their_types(
    shared_server: RunningServer, replies: dict[str, list[httpx.Response]]
) -> None:
    detail = assert_whole_trace(shared_server, STRUCTURED_TRACE, 3)

    chat = span_named(detail, "52210a180dab1408")["attributes"]
    assert chat["app.blob"] == "AAECAwQF/w=="
    assert chat["app.mixed_array"] == ["a", 1, None]
    assert chat["app.empty_value"] == {}
    assert chat["llm.token_logprobs"] == [-0.01, -2.3, -0.0004]
    assert chat["gen_ai.response.finish_reasons"] == ["tool_call"]
    assert chat["gen_ai.input.messages"] == [
        {"role": "user", "parts": [{"type": "text", "content": "Where is order A-1313?"}]}
    ]
    deep, levels = chat["app.deep"], 0
    while isinstance(deep, dict) and deep and levels < 100:
        deep, levels = next(iter(deep.values())), levels + 1
    assert levels >= 11
    assert step_of(detail, "52210a180dab1408")["token_logprobs"] == [-0.01, -2.3, -0.0004]
    tool = step_of(detail, "74ebf5a98c1b7308")
    assert tool["tool_arguments"] == {"order_id": "A-1313", "include": ["items", "tracking"]}
    assert json.loads(tool["tool_result"]) == {"status": "in_transit"}


def test_pw13_protobuf_and_json_store_identical_data(
    shared_server: RunningServer, replies: dict[str, list[httpx.Response]], server: RunningServer
) -> None:
    body = (CASES_DIR / "PW-13" / "02.pb").read_bytes()

    reply = post_otlp(server.otlp_http_url, body, {"Content-Type": "application/x-protobuf"})

    assert reply.status_code == 200
    from_protobuf = assert_whole_trace(server, STRUCTURED_TRACE, 3)
    from_json = trace(shared_server, STRUCTURED_TRACE)
    assert from_protobuf["spans"] == from_json["spans"]
    assert from_protobuf["steps"] == from_json["steps"]


def test_pw15_bad_end_times_give_no_negative_or_huge_durations(
    shared_server: RunningServer, replies: dict[str, list[httpx.Response]]
) -> None:
    detail = assert_whole_trace(shared_server, "f887a7c361355d7dc63d71660db984ab", 6)

    unfinished = span_named(detail, "be27b04c51c6ea4d")
    assert unfinished["end_time_unix_nano"] is None
    assert unfinished["duration_ms"] is None
    backwards = span_named(detail, "6e8e099a7b4aadcb")
    assert backwards["end_time_unix_nano"] == backwards["start_time_unix_nano"] - 1
    assert backwards["duration_ms"] is None
    assert span_named(detail, "b4af290aba7e59c1")["duration_ms"] == 0
    durations = [s["duration_ms"] for s in detail["spans"] if s["duration_ms"] is not None]
    assert all(0 <= d <= 2800 for d in durations)
    assert detail["trace"]["duration_ms"] == pytest.approx(2800)


def test_pw17_unknown_kinds_and_status_codes_are_kept(
    shared_server: RunningServer, replies: dict[str, list[httpx.Response]]
) -> None:
    detail = assert_whole_trace(shared_server, "994c1ab6a65be01760b23c75d356f180", 6)

    assert span_named(detail, "2b5bdb0c528c7460")["kind"] == 9
    weird = span_named(detail, "4d275786935d0f76")
    assert (weird["status_code"], weird["status_message"]) == (7, "weird")
    assert not step_of(detail, "4d275786935d0f76")["is_error"]
    assert detail["trace"]["error_count"] == 0
    assert step_of(detail, "0af90b678c4e9c84")["type"] == "tool"
    assert step_of(detail, "3b9e83b2a3da60bd")["type"] in ("guardrail", "span")
    chain_value = span_named(detail, "b67087b263f392de")["attributes"]
    assert chain_value["openinference.span.kind"] == "OPENINFERENCESPANKINDVALUES.CHAIN"


@pytest.mark.parametrize(
    ("trace_id", "service_name"),
    [
        ("30c449edc714d6c9dadea6169e49172e", "unknown_service"),  # no resource
        ("4532367854e2f6e112c6616b494198e6", "unknown_service"),  # empty attributes
        ("dca7868eb7fb13c57618f2a38924cb21", "support-agent"),  # no scope
        ("484c4acec06d61ee1ddc78644754161b", "unknown_service"),  # service.name ""
        ("6a0d498f7cfaba05e91c70efc77ec2af", "unknown_service"),  # protobuf, no resource
    ],
    ids=["no-resource", "empty-resource", "no-scope", "empty-service-name", "protobuf"],
)
def test_pw18_missing_resource_falls_back_to_unknown_service(
    shared_server: RunningServer,
    replies: dict[str, list[httpx.Response]],
    trace_id: str,
    service_name: str,
) -> None:
    detail = assert_whole_trace(shared_server, trace_id, 4)

    assert detail["trace"]["service_name"] == service_name
    assert detail["trace"]["agent_name"] == "support-agent"


def test_pw21_one_tool_call_in_three_conventions_reads_the_same(
    shared_server: RunningServer, replies: dict[str, list[httpx.Response]]
) -> None:
    detail = assert_whole_trace(shared_server, "bcbb5278b6d23fe9907df71afcdb1a5b", 5)

    tools = [s for s in detail["steps"] if s["type"] == "tool"]
    assert len(tools) == 3
    assert {t["label"] for t in tools} == {"tool:lookup_order"}
    assert all(t["tool_arguments"] == {"order_id": "A-2121"} for t in tools)
    assert all(json.loads(t["tool_result"]) == {"status": "shipped"} for t in tools)
    chat = steps_by_name(detail)["openai.chat"][0]
    assert chat["type"] == "llm"
    attributes = span_named(detail, chat["span_id"])["attributes"]
    assert attributes["gen_ai.prompt.0.user"] == "Where is my order?"
    assert attributes["gen_ai.completion.0.role"] == "assistant"


def test_ingest_case_fixtures_are_all_covered() -> None:
    assert CASE_IDS == [
        "PW-01", "PW-03", "PW-04", "PW-05", "PW-07", "PW-08",
        "PW-10", "PW-13", "PW-15", "PW-17", "PW-18", "PW-21",
    ]  # fmt: skip
    assert all(Path(CASES_DIR / c / "case.json").is_file() for c in CASE_IDS)
