"""`pathwatch check`: analyse OTLP export files offline, as the server would, and report.

Exit status: 0 when no finding has severity error, 1 when one does, 2 when an input file
or the rules file cannot be read. No server and no database: the same analysis code,
run in memory.
"""

from __future__ import annotations

import argparse
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from xml.etree import ElementTree

import orjson

from pathwatch.collector.decode import (
    DecodedRequest,
    SpanRecord,
    parse_json,
    parse_protobuf,
    records_from_request,
)
from pathwatch.collector.errors import IngestError, UndecodableBodyError
from pathwatch.collector.limits import IngestLimits
from pathwatch.server.analysis.analyse import analyse_trace
from pathwatch.server.analysis.findings import Finding
from pathwatch.server.analysis.records import TraceRecord
from pathwatch.server.analysis.rules import RuleSet, RulesFileError, load_rules
from pathwatch.server.offline import traces_from_spans

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_UNREADABLE = 2
GZIP_MAGIC = b"\x1f\x8b"
FORMATS = ("text", "json", "junit")


class UnreadableInputError(Exception):
    """An input file that is missing, not OTLP, or over the body bound."""


@dataclass(frozen=True, slots=True)
class TraceReport:
    trace: TraceRecord
    findings: tuple[Finding, ...]

    @property
    def has_errors(self) -> bool:
        return any(finding.severity == "error" for finding in self.findings)


def add_check_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `check` to the `pathwatch` command's subcommands."""
    parser = subparsers.add_parser(
        "check",
        help="analyse OTLP export files offline; exit 1 on any error finding",
        description=__doc__,
    )
    _add_arguments(parser)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rules", type=Path, default=None, help="a rules file (YAML)")
    parser.add_argument("--format", choices=FORMATS, default="text", help="report format")
    parser.add_argument(
        "files",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="OTLP/JSON or OTLP/protobuf export requests (.gz too); spans of one trace "
        "may be spread over several files",
    )


def run_check(argv: Sequence[str] | argparse.Namespace, *, out: IO[str] | None = None) -> int:
    """Run `pathwatch check` with command-line arguments (or parsed ones) and return
    the exit status."""
    args = argv if isinstance(argv, argparse.Namespace) else _parse(list(argv))
    out = out or sys.stdout
    try:
        rules = _read_rules(args.rules)
        spans = [span for path in args.files for span in read_spans(path)]
    except (UnreadableInputError, RulesFileError) as error:
        sys.stderr.write(f"pathwatch check: {error}\n")
        return EXIT_UNREADABLE

    reports = [
        TraceReport(trace, tuple(analyse_trace(trace, rules=rules)))
        for trace in traces_from_spans(spans)
    ]
    out.write(_RENDERERS[args.format](reports))
    return EXIT_FINDINGS if any(report.has_errors for report in reports) else EXIT_CLEAN


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pathwatch check", description=__doc__)
    _add_arguments(parser)
    return parser.parse_args(argv)


def _read_rules(path: Path | None) -> RuleSet | None:
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UnreadableInputError(f"{path}: cannot read the rules file ({error})") from None
    return load_rules(text, source=str(path))


# ---- reading -----------------------------------------------------------------------


def read_spans(path: Path, *, limits: IngestLimits | None = None) -> list[SpanRecord]:
    """The spans of one export file: an OTLP/JSON request, JSON Lines of requests (as
    the Collector's file exporter writes), or an OTLP/protobuf request; gzip or not.
    Raises UnreadableInputError."""
    limits = limits or IngestLimits()
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise UnreadableInputError(f"{path}: {error.strerror or error}") from None
    try:
        body = _inflate(raw, limits) if raw.startswith(GZIP_MAGIC) else raw
        decoded = _decode(body, limits)
    except (IngestError, zlib.error) as error:
        raise UnreadableInputError(f"{path}: {_reason(error)}") from None
    return [span for request in decoded for span in request.spans]


def _inflate(raw: bytes, limits: IngestLimits) -> bytes:
    """Gunzip with the body bound checked while inflating, not after."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    body = inflater.decompress(raw, limits.max_body_bytes + 1)
    if len(body) > limits.max_body_bytes:
        raise UndecodableBodyError("body_too_large", f"inflates past {limits.max_body_bytes} bytes")
    return body


def _decode(body: bytes, limits: IngestLimits) -> list[DecodedRequest]:
    if body.lstrip()[:1] not in (b"{", b"["):
        return [records_from_request(parse_protobuf(body), limits=limits)]
    try:
        return [_decode_json(body, limits)]
    except UndecodableBodyError as whole:
        lines = [line for line in body.splitlines() if line.strip()]
        if len(lines) < 2:  # one line is the whole document again: nothing else to try
            raise
        try:
            return [_decode_json(line, limits) for line in lines]
        except UndecodableBodyError:
            raise whole from None


def _decode_json(body: bytes, limits: IngestLimits) -> DecodedRequest:
    request, rejections = parse_json(body)
    return records_from_request(request, limits=limits, rejections=rejections)


def _reason(error: Exception) -> str:
    if isinstance(error, IngestError):
        return error.message
    return f"not valid gzip ({error})"


# ---- reports -----------------------------------------------------------------------


def render_text(reports: Sequence[TraceReport]) -> str:
    lines: list[str] = []
    for report in reports:
        trace = report.trace
        count = len(report.findings)
        summary = f"{count} finding{'s' if count != 1 else ''}" if count else "no findings"
        lines.append(f"trace {trace.trace_id} ({trace.agent_name}, {trace.status}): {summary}")
        lines.extend(f"  {_finding_line(finding)}" for finding in report.findings)
    lines.append(_summary_line(reports))
    return "\n".join(lines) + "\n"


def _finding_line(finding: Finding) -> str:
    rule = f" [{finding.rule_id} v{finding.rule_version}]" if finding.rule_id else ""
    spans = ", ".join(finding.span_ids)
    return f"{finding.severity:<8}{finding.kind:<13}{finding.message}{rule} (spans: {spans})"


def _summary_line(reports: Sequence[TraceReport]) -> str:
    findings = [finding for report in reports for finding in report.findings]
    errors = sum(finding.severity == "error" for finding in findings)
    return f"{len(reports)} traces, {len(findings)} findings, {errors} of severity error"


def render_json(reports: Sequence[TraceReport]) -> str:
    document = {
        "traces": [
            {
                "trace_id": report.trace.trace_id,
                "agent": report.trace.agent_name,
                "status": report.trace.status,
                "findings": [finding.as_dict() for finding in report.findings],
            }
            for report in reports
        ],
        "summary": {
            "traces": len(reports),
            "findings": sum(len(report.findings) for report in reports),
            "errors": sum(
                finding.severity == "error" for report in reports for finding in report.findings
            ),
        },
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"


def render_junit(reports: Sequence[TraceReport]) -> str:
    """One test case per trace; its error findings make one failure, the rest go to
    system-out."""
    failures = sum(report.has_errors for report in reports)
    attributes = {"name": "pathwatch check", "tests": str(len(reports)), "failures": str(failures)}
    suites = ElementTree.Element("testsuites", attributes)
    suite = ElementTree.SubElement(suites, "testsuite", {**attributes, "errors": "0"})
    for report in reports:
        _add_test_case(suite, report)
    ElementTree.indent(suites)
    return ElementTree.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def _add_test_case(suite: ElementTree.Element, report: TraceReport) -> None:
    case = ElementTree.SubElement(
        suite,
        "testcase",
        {"classname": f"pathwatch.{report.trace.agent_name}", "name": report.trace.trace_id},
    )
    errors = [finding for finding in report.findings if finding.severity == "error"]
    others = [finding for finding in report.findings if finding.severity != "error"]
    if errors:
        failure = ElementTree.SubElement(
            case,
            "failure",
            {"message": errors[0].message, "type": ",".join(sorted({f.kind for f in errors}))},
        )
        failure.text = "\n".join(_finding_line(finding) for finding in errors)
    if others:
        output = ElementTree.SubElement(case, "system-out")
        output.text = "\n".join(_finding_line(finding) for finding in others)


_RENDERERS = {"text": render_text, "json": render_json, "junit": render_junit}
