"""Analyse one trace: the built-in detectors, then the agent's rules. Pure and in memory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from pathwatch.server.analysis.detectors import DetectorSettings, run_detectors
from pathwatch.server.analysis.findings import Finding
from pathwatch.server.analysis.records import TraceRecord, causal_order
from pathwatch.server.analysis.rules import RuleSet, evaluate_rules


def analyse_trace(
    trace: TraceRecord,
    *,
    rules: RuleSet | None = None,
    history: Sequence[int] | None = None,
    settings: DetectorSettings | None = None,
) -> list[Finding]:
    """Findings of one trace, ordered by where they are pinned in the run.

    `history` holds the path lengths of the agent's earlier runs (for `runaway`).
    Detector thresholds come from `settings`, else from the rules file, else defaults.
    The same trace always gives the same findings, so re-analysis can replace them.
    """
    ordered = replace(trace, steps=causal_order(trace.steps))
    chosen = settings or (rules.settings if rules is not None else DetectorSettings())
    findings = run_detectors(ordered, settings=chosen, history=history)
    if rules is not None:
        findings += evaluate_rules(rules, ordered)
    position = {step.span_id: index for index, step in enumerate(ordered.steps)}
    return sorted(findings, key=lambda finding: _sort_key(finding, position))


def _sort_key(finding: Finding, position: dict[str, int]) -> tuple[int, str, str]:
    first = min((position.get(span_id, len(position)) for span_id in finding.span_ids), default=-1)
    return (first, finding.kind, finding.rule_id or "")
