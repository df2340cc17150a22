"""Rules dry run: what a rules file would flag on an agent's recent traces, saving nothing."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from pathwatch.server.analysis.analyse import analyse_trace
from pathwatch.server.analysis.findings import Finding
from pathwatch.server.analysis.rules import RuleSet
from pathwatch.server.queries import analysis as analysis_queries

DRY_RUN_MAX_TRACES = 500


@dataclass(frozen=True)
class DryRunTrace:
    """One checked trace and the findings its rules would raise (built-ins left out);
    `step_labels` names the steps those findings are pinned on, by span id."""

    trace_id: str
    findings: list[Finding]
    step_labels: dict[str, str]


@dataclass(frozen=True)
class DryRun:
    agent_name: str
    traces: list[DryRunTrace]  # newest first

    @property
    def traces_checked(self) -> int:
        return len(self.traces)

    @property
    def flagged(self) -> list[DryRunTrace]:
        return [trace for trace in self.traces if trace.findings]


def dry_run_rules(
    connection: Connection, *, project_id: int, agent: str, rules: RuleSet, last: int
) -> DryRun:
    """Run `rules` over the agent's `last` newest finished traces (at most
    DRY_RUN_MAX_TRACES); only rule findings are reported, in step order."""
    recent = analysis_queries.recent_traces(
        connection, project_id=project_id, agent=agent, limit=min(last, DRY_RUN_MAX_TRACES)
    )
    records = {r.trace_id: r for r in analysis_queries.load_trace_records(connection, recent)}

    checked = []
    for claimed in recent:
        record = records[claimed.trace_id.hex()]
        found = [f for f in analyse_trace(record, rules=rules) if f.rule_id is not None]
        pinned = {span_id for f in found for span_id in f.span_ids}
        labels = {s.span_id: s.label for s in record.steps if s.span_id in pinned}
        checked.append(DryRunTrace(trace_id=record.trace_id, findings=found, step_labels=labels))
    return DryRun(agent_name=agent, traces=checked)
