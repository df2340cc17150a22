"""Background work over PostgreSQL: finalise traces (open → complete or stalled) and
analyse finished traces into findings.

Workers coordinate only through the database, so any number of processes may run
them. A trace is complete when its root has arrived and nothing else arrived for the
settle window; stalled when its root has not arrived and nothing arrived for the
stall timeout. A late span sets the trace back to open (see collector/write.py).
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

from pathwatch.server.analysis.analyse import analyse_trace
from pathwatch.server.analysis.expectations import UsualSteps
from pathwatch.server.analysis.findings import Finding
from pathwatch.server.analysis.records import TraceRecord
from pathwatch.server.analysis.rules import RuleSet, RulesFileError, load_rules
from pathwatch.server.queries import analysis as analysis_queries
from pathwatch.server.queries.findings import TraceFindings, replace_findings
from pathwatch.server.queries.rules import current_rule_set, current_rule_sets

logger = logging.getLogger(__name__)

# An agent's rules may set its own stall timeout (`stall_after`); other agents use the
# server's. The settle window is the same for every agent.
_FINALISE_TRACES = text("""
WITH timeouts AS (
    SELECT * FROM unnest(CAST(:projects AS bigint[]), CAST(:agents AS text[]),
                         CAST(:seconds AS float8[])) AS t(project_id, agent_name, seconds)
)
UPDATE traces
SET status = CASE WHEN root_span_id IS NOT NULL THEN 'complete' ELSE 'stalled' END
WHERE id IN (
    SELECT trace.id FROM traces AS trace
    LEFT JOIN timeouts ON timeouts.project_id = trace.project_id
                      AND timeouts.agent_name = trace.agent_name
    WHERE trace.status = 'open'
      AND trace.last_received_at < now() - make_interval(secs =>
          CASE WHEN trace.root_span_id IS NOT NULL THEN :settle_seconds
               ELSE coalesce(timeouts.seconds, :stall_seconds) END)
    ORDER BY trace.last_received_at
    LIMIT :batch
    FOR UPDATE OF trace SKIP LOCKED
)
""")


@dataclass(frozen=True)
class LifecycleSettings:
    settle_seconds: float = 2.0
    stall_timeout_seconds: float = 300.0
    poll_seconds: float = 1.0
    batch_size: int = 1000
    analysis_batch_size: int = 100


def finalise_due_traces(engine: Engine, settings: LifecycleSettings) -> int:
    """Move every due open trace to complete or stalled; returns how many moved."""
    with engine.begin() as connection:
        timeouts = _stall_timeouts_by_agent(connection)
        result = connection.execute(
            _FINALISE_TRACES,
            {
                "projects": [project_id for project_id, _agent in timeouts],
                "agents": [agent for _project_id, agent in timeouts],
                "seconds": list(timeouts.values()),
                "settle_seconds": settings.settle_seconds,
                "stall_seconds": settings.stall_timeout_seconds,
                "batch": settings.batch_size,
            },
        )
    return result.rowcount


def _stall_timeouts_by_agent(connection: Connection) -> dict[tuple[int, str], float]:
    timeouts = {}
    for stored in current_rule_sets(connection, project_id=None):
        rules = _load_stored_rules(
            stored.project_id, stored.agent_name, stored.version, stored.body
        )
        if rules is not None and rules.stall_timeout_seconds is not None:
            timeouts[(stored.project_id, stored.agent_name)] = rules.stall_timeout_seconds
    return timeouts


@functools.lru_cache(maxsize=1024)
def _load_stored_rules(project_id: int, agent: str, version: int, body: str) -> RuleSet | None:
    """Parse a stored rule set once per version; one that no longer loads is skipped."""
    try:
        return load_rules(body, source=f"rules of {agent} v{version}")
    except RulesFileError:
        logger.warning("stored rules of agent %s (version %d) do not load; skipped", agent, version)
        return None


def analyse_due_traces(engine: Engine, settings: LifecycleSettings) -> int:
    """Analyse one batch of finished traces in one transaction; returns how many.

    Findings of a trace are replaced, never added to, so re-analysis after late spans
    leaves no duplicates. The claim, the findings and `analysed_at` commit together.
    """
    with engine.begin() as connection:
        claimed = analysis_queries.claim_due_traces(connection, limit=settings.analysis_batch_size)
        records = analysis_queries.load_trace_records(connection, claimed)
        context = _AnalysisContext(connection)
        results = [
            TraceFindings(
                project_id=claim.project_id,
                trace_rowid=claim.rowid,
                agent_name=claim.agent_name,
                findings=context.analyse(claim, record),
            )
            for claim, record in zip(claimed, records, strict=True)
        ]
        replace_findings(connection, results)
        analysis_queries.mark_analysed(
            connection,
            finding_count_by_trace={r.trace_rowid: len(r.findings) for r in results},
        )
    return len(claimed)


class _AnalysisContext:
    """Per-batch caches of each agent's rules and recent paths."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._rules: dict[tuple[int, str], RuleSet | None] = {}
        self._usual: dict[tuple[int, str], UsualSteps] = {}

    def analyse(self, claim: analysis_queries.ClaimedTrace, record: TraceRecord) -> list[Finding]:
        key = (claim.project_id, claim.agent_name)
        usual = self._usual_steps(key)
        lengths = [len(p) for rowid, p in usual.paths.items() if rowid != claim.rowid]
        found = analyse_trace(record, rules=self._rule_set(key), history=lengths)
        return found + usual.skipped_in(record, own_key=claim.rowid)

    def _rule_set(self, key: tuple[int, str]) -> RuleSet | None:
        if key not in self._rules:
            stored = current_rule_set(self._connection, project_id=key[0], agent=key[1])
            self._rules[key] = (
                None
                if stored is None
                else _load_stored_rules(key[0], key[1], stored.version, stored.body)
            )
        return self._rules[key]

    def _usual_steps(self, key: tuple[int, str]) -> UsualSteps:
        if key not in self._usual:
            paths = analysis_queries.recent_paths(self._connection, project_id=key[0], agent=key[1])
            self._usual[key] = UsualSteps(paths)
        return self._usual[key]


class Worker:
    """Runs the lifecycle loop in a thread until `stop()`."""

    def __init__(self, engine: Engine, settings: LifecycleSettings) -> None:
        self._engine = engine
        self._settings = settings
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pathwatch-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                moved = finalise_due_traces(self._engine, self._settings)
                analysed = analyse_due_traces(self._engine, self._settings)
                if moved or analysed:
                    logger.debug("finalised %d traces, analysed %d", moved, analysed)
                    continue
            except Exception:
                logger.exception("trace lifecycle pass failed; retrying")
            self._stopping.wait(self._settings.poll_seconds)
