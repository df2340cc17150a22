"""Database tables: projects, traces and spans (each span row carries its step fields)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSON

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

TRACE_STATUSES = ("open", "complete", "stalled")
DEFAULT_PROJECT_ID = 1

projects = Table(
    "projects",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
)

traces = Table(
    "traces",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("project_id", BigInteger, ForeignKey("projects.id"), nullable=False),
    Column("trace_id", LargeBinary, nullable=False),
    Column("agent_name", Text, nullable=False),
    # Which source named the agent: 3 root agent span, 2 other agent span, 1 service.name.
    Column("agent_name_rank", SmallInteger, nullable=False),
    Column("agent_version", Text),
    Column("service_name", Text, nullable=False),
    Column("root_span_id", LargeBinary),
    Column("root_name", Text),
    Column("start_time", DateTime(timezone=True), nullable=False),
    Column("end_time", DateTime(timezone=True)),
    Column("span_count", Integer, nullable=False),
    Column("error_count", Integer, nullable=False, server_default=text("0")),
    Column("status", Text, nullable=False, server_default=text("'open'")),
    Column("first_received_at", DateTime(timezone=True), nullable=False),
    Column("last_received_at", DateTime(timezone=True), nullable=False),
    Column("analysed_at", DateTime(timezone=True)),
    Column("finding_count", Integer, nullable=False, server_default=text("0")),
    UniqueConstraint("project_id", "trace_id"),
    CheckConstraint("status IN ('open', 'complete', 'stalled')", name="status"),
    CheckConstraint("octet_length(trace_id) = 16", name="trace_id_length"),
)
Index(
    "ix_traces_project_id_start_time_id",
    traces.c.project_id,
    traces.c.start_time.desc(),
    traces.c.id.desc(),
)
# The traces list filtered by agent or by status keeps its newest-first order.
Index(
    "ix_traces_project_id_agent_name_start_time_id",
    traces.c.project_id,
    traces.c.agent_name,
    traces.c.start_time.desc(),
    traces.c.id.desc(),
)
Index(
    "ix_traces_project_id_status_start_time_id",
    traces.c.project_id,
    traces.c.status,
    traces.c.start_time.desc(),
    traces.c.id.desc(),
)
Index(
    "ix_traces_open_last_received_at",
    traces.c.last_received_at,
    postgresql_where=text(
        "status = 'open' OR analysed_at IS NULL OR analysed_at < last_received_at"
    ),
)

spans = Table(
    "spans",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("project_id", BigInteger, ForeignKey("projects.id"), nullable=False),
    Column("trace_id", LargeBinary, nullable=False),
    Column("span_id", LargeBinary, nullable=False),
    Column("parent_span_id", LargeBinary),
    Column("name", Text, nullable=False),
    Column("kind", SmallInteger, nullable=False),
    Column("start_time_ns", BigInteger, nullable=False),
    Column("end_time_ns", BigInteger),
    Column("status_code", SmallInteger, nullable=False),
    Column("status_message", Text, nullable=False),
    Column("trace_state", Text, nullable=False),
    Column("flags", BigInteger, nullable=False),
    # Span documents are json, not jsonb: kept as sent and read whole, so PostgreSQL
    # only checks them on write instead of converting them.
    Column("attributes", JSON, nullable=False),
    Column("events", JSON, nullable=False),
    Column("links", JSON, nullable=False),
    Column("resource", JSON, nullable=False),
    Column("scope", JSON, nullable=False),
    Column("dropped_counts", JSON, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    # Step fields: what the span means to the agent's execution path.
    Column("step_type", Text, nullable=False),
    Column("step_label", Text, nullable=False),
    Column("step_name", Text),
    Column("tool_name", Text),
    Column("tool_call_id", Text),
    Column("tool_arguments", JSON),
    Column("tool_result", Text),
    Column("tool_definitions", JSON),
    Column("model", Text),
    Column("input_tokens", BigInteger),
    Column("output_tokens", BigInteger),
    Column("is_error", Boolean, nullable=False),
    Column("token_logprobs", ARRAY(Float)),
    Column("agent_name", Text),
    Column("agent_version", Text),
    Column("service_name", Text, nullable=False),
    # A start marker stands for a span that began and has not ended (yet); the ended span
    # replaces it when it arrives.
    Column("is_start_marker", Boolean, nullable=False, server_default=text("false")),
    UniqueConstraint("project_id", "trace_id", "span_id"),
    CheckConstraint("octet_length(span_id) = 8", name="span_id_length"),
)

FINDING_SEVERITIES = ("error", "warning", "info")

findings = Table(
    "findings",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("project_id", BigInteger, ForeignKey("projects.id"), nullable=False),
    Column("trace_rowid", BigInteger, ForeignKey("traces.id", ondelete="CASCADE"), nullable=False),
    Column("agent_name", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("rule_id", Text),
    Column("rule_version", Integer),
    Column("severity", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("span_ids", ARRAY(Text), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    CheckConstraint("severity IN ('error', 'warning', 'info')", name="severity"),
)
Index("ix_findings_trace_rowid", findings.c.trace_rowid)
# Traces with a finding of a kind or a rule: read from the findings side.
Index(
    "ix_findings_project_id_kind_trace_rowid",
    findings.c.project_id,
    findings.c.kind,
    findings.c.trace_rowid,
)
Index(
    "ix_findings_project_id_rule_id_trace_rowid",
    findings.c.project_id,
    findings.c.rule_id,
    findings.c.trace_rowid,
    postgresql_where=text("rule_id IS NOT NULL"),
)
Index(
    "ix_findings_project_id_created_at",
    findings.c.project_id,
    findings.c.created_at.desc(),
)

rule_sets = Table(
    "rule_sets",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("project_id", BigInteger, ForeignKey("projects.id"), nullable=False),
    Column("agent_name", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    UniqueConstraint("project_id", "agent_name", "version"),
)
