"""`pathwatch check`: exit codes, the JSON and JUnit reports, unreadable input."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from xml.etree import ElementTree

import pytest

from pathwatch.server.check import run_check

FIXTURES = Path(__file__).parent / "fixtures"
CLEAN_RUN = FIXTURES / "runs" / "genai" / "tau-bench_airline__task-12_trial-0.otlp.json"
ORDER_RUN = FIXTURES / "runs" / "genai" / "tau-bench_airline__task-41_trial-2.otlp.json"
EPS_RUN = FIXTURES / "runs" / "openllmetry" / "swe-agent__ctf_crypto_eps.otlp.json"
LOOP_PB = FIXTURES / "clients" / "otel-py-http.pb"
LOOP_JSON_GZ = FIXTURES / "clients" / "otel-node-json-gzip.json.gz"
AIRLINE_RULES = Path(__file__).parent.parent / "examples" / "rules" / "airline.yaml"


def check(*args: str | Path) -> tuple[int, str]:
    out = io.StringIO()
    status = run_check([str(arg) for arg in args], out=out)
    return status, out.getvalue()


@pytest.mark.parametrize(
    ("args", "status"),
    [
        pytest.param([CLEAN_RUN], 0, id="clean-run"),
        pytest.param([ORDER_RUN], 0, id="ordering-without-rules"),
        pytest.param(["--rules", AIRLINE_RULES, ORDER_RUN], 1, id="ordering-with-rules"),
        pytest.param([LOOP_PB], 1, id="loop-protobuf"),
        pytest.param([LOOP_JSON_GZ], 1, id="loop-gzip-json"),
        pytest.param([CLEAN_RUN, LOOP_PB], 1, id="one-bad-trace-among-many"),
    ],
)
def test_check_exit_status_follows_error_findings(args: list[str | Path], status: int) -> None:
    assert check(*args)[0] == status


FAILED_TOOL_ONLY = {
    "resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": "execute_tool lookup_order",
        "startTimeUnixNano": "1735732800000000000",
        "endTimeUnixNano": "1735732801000000000",
        "status": {"code": 2, "message": "timeout"},
        "attributes": [
            {"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}},
            {"key": "gen_ai.tool.name", "value": {"stringValue": "lookup_order"}},
        ],
    }]}]}]
}  # fmt: skip


def test_check_exit_status_ignores_warnings(tmp_path: Path) -> None:
    path = tmp_path / "failed-tool.json"
    path.write_text(json.dumps(FAILED_TOOL_ONLY))

    status, out = check("--format", "json", CLEAN_RUN, path)

    severities = [f["severity"] for t in json.loads(out)["traces"] for f in t["findings"]]
    assert (status, severities) == (0, ["warning"])


@pytest.mark.parametrize(
    "content",
    [b"not otlp at all \xff\x00", b'{"resourceSpans": 5}', b"\x1f\x8b broken gzip", b"[1]"],
    ids=["garbage", "wrong-shape", "broken-gzip", "json-array"],
)
def test_check_unreadable_input_exits_2(
    tmp_path: Path, content: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "export.bin"
    path.write_bytes(content)

    status, out = check(CLEAN_RUN, path)

    assert (status, out) == (2, "")
    assert str(path) in capsys.readouterr().err


def test_check_empty_protobuf_request_has_no_traces(tmp_path: Path) -> None:
    path = tmp_path / "empty.pb"
    path.write_bytes(b"")

    assert check(path) == (0, "0 traces, 0 findings, 0 of severity error\n")


def test_check_missing_file_and_bad_rules_exit_2(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - id: a\n    kind: sometimes\n")

    assert check(tmp_path / "missing.json")[0] == 2
    assert check("--rules", rules, CLEAN_RUN) == (2, "")


def test_check_json_lists_every_trace_with_its_findings() -> None:
    status, out = check("--format", "json", "--rules", AIRLINE_RULES, CLEAN_RUN, ORDER_RUN, LOOP_PB)

    report = json.loads(out)
    by_id = {t["trace_id"]: t["findings"] for t in report["traces"]}
    assert status == 1
    assert by_id["fc30bd6e19da3e7bbdc03401899ef623"] == []
    (ordering,) = by_id["e8c82739426d6cef8837a2c295c276f8"]
    assert ordering["kind"] == "before"
    assert ordering["rule"] == "reservation-looked-up-before-change"
    assert ordering["severity"] == "error"
    assert ordering["span_ids"][0] == "87132091127a3c09"
    assert len(ordering["span_ids"]) == 2
    (loop,) = by_id["a17c21e79b4a96006484110bbdb9fed9"]
    assert (loop["kind"], loop["rule"], len(loop["span_ids"])) == ("loop", None, 3)
    assert set(loop) == {"kind", "rule", "rule_version", "severity", "message", "span_ids"}
    assert report["summary"] == {"traces": 3, "findings": 2, "errors": 2}


def test_check_junit_is_valid_xml_with_a_failure_per_failing_trace() -> None:
    status, out = check("--format", "junit", CLEAN_RUN, EPS_RUN, LOOP_PB)

    suites = ElementTree.fromstring(out.encode())
    cases = {case.get("name"): case for case in suites.iter("testcase")}
    assert status == 1
    assert suites.get("tests") == "3"
    assert suites.get("failures") == "2"
    assert cases["fc30bd6e19da3e7bbdc03401899ef623"].find("failure") is None
    eps = cases["bab0b7cf028557a32935edd646f1ba08"]
    assert eps.find("failure").get("type") == "loop"
    assert "error_step" in eps.find("system-out").text


def test_check_text_report_names_traces_and_findings() -> None:
    _, out = check(LOOP_PB, CLEAN_RUN)

    assert "trace a17c21e79b4a96006484110bbdb9fed9 (trip-helper, complete): 1 finding" in out
    assert "search_docs called 3 times" in out
    assert "trace fc30bd6e19da3e7bbdc03401899ef623" in out and "no findings" in out


def test_check_merges_spans_of_one_trace_across_files_and_json_lines(tmp_path: Path) -> None:
    parts = [FIXTURES / "ingest" / "PW-04" / f"0{n}.json" for n in (1, 2, 3)]
    lines = b"\n".join(json.dumps(json.loads(p.read_bytes())).encode() for p in parts)
    (tmp_path / "export.jsonl.gz").write_bytes(gzip.compress(lines))

    status, out = check("--format", "json", tmp_path / "export.jsonl.gz")

    (only,) = json.loads(out)["traces"]
    assert (status, only["findings"]) == (0, [])
