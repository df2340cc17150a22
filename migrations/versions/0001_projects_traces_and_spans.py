"""Projects, traces and spans, with the default project.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("name", name=op.f("uq_projects_name")),
    )
    op.create_table(
        "spans",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        sa.Column("trace_id", sa.LargeBinary(), nullable=False),
        sa.Column("span_id", sa.LargeBinary(), nullable=False),
        sa.Column("parent_span_id", sa.LargeBinary(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("start_time_ns", sa.BigInteger(), nullable=False),
        sa.Column("end_time_ns", sa.BigInteger(), nullable=True),
        sa.Column("status_code", sa.SmallInteger(), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=False),
        sa.Column("trace_state", sa.Text(), nullable=False),
        sa.Column("flags", sa.BigInteger(), nullable=False),
        sa.Column("attributes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("events", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("links", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("resource", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("scope", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("dropped_counts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("step_type", sa.Text(), nullable=False),
        sa.Column("step_label", sa.Text(), nullable=False),
        sa.Column("step_name", sa.Text(), nullable=True),
        sa.Column("tool_name", sa.Text(), nullable=True),
        sa.Column("tool_call_id", sa.Text(), nullable=True),
        sa.Column("tool_arguments", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("tool_result", sa.Text(), nullable=True),
        sa.Column("tool_definitions", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=True),
        sa.Column("output_tokens", sa.BigInteger(), nullable=True),
        sa.Column("is_error", sa.Boolean(), nullable=False),
        sa.Column("token_logprobs", postgresql.ARRAY(sa.Float()), nullable=True),
        sa.Column("agent_name", sa.Text(), nullable=True),
        sa.Column("agent_version", sa.Text(), nullable=True),
        sa.Column("service_name", sa.Text(), nullable=False),
        sa.CheckConstraint("octet_length(span_id) = 8", name=op.f("ck_spans_span_id_length")),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_spans_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spans")),
        sa.UniqueConstraint(
            "project_id", "trace_id", "span_id", name=op.f("uq_spans_project_id_trace_id_span_id")
        ),
    )
    op.create_table(
        "traces",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        sa.Column("trace_id", sa.LargeBinary(), nullable=False),
        sa.Column("agent_name", sa.Text(), nullable=False),
        sa.Column("agent_name_rank", sa.SmallInteger(), nullable=False),
        sa.Column("agent_version", sa.Text(), nullable=True),
        sa.Column("service_name", sa.Text(), nullable=False),
        sa.Column("root_span_id", sa.LargeBinary(), nullable=True),
        sa.Column("root_name", sa.Text(), nullable=True),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("span_count", sa.Integer(), nullable=False),
        sa.Column("error_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'open'"), nullable=False),
        sa.Column("first_received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("analysed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finding_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'complete', 'stalled')", name=op.f("ck_traces_status")
        ),
        sa.CheckConstraint("octet_length(trace_id) = 16", name=op.f("ck_traces_trace_id_length")),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_traces_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_traces")),
        sa.UniqueConstraint("project_id", "trace_id", name=op.f("uq_traces_project_id_trace_id")),
    )
    op.execute("INSERT INTO projects (name) VALUES ('default')")
    op.create_index(
        "ix_traces_open_last_received_at",
        "traces",
        ["last_received_at"],
        unique=False,
        postgresql_where=sa.text(
            "status = 'open' OR analysed_at IS NULL OR analysed_at < last_received_at"
        ),
    )
    op.create_index(
        "ix_traces_project_id_start_time_id",
        "traces",
        ["project_id", sa.literal_column("start_time DESC"), sa.literal_column("id DESC")],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_traces_project_id_start_time_id", table_name="traces")
    op.drop_index(
        "ix_traces_open_last_received_at",
        table_name="traces",
        postgresql_where=sa.text(
            "status = 'open' OR analysed_at IS NULL OR analysed_at < last_received_at"
        ),
    )
    op.drop_table("traces")
    op.drop_table("spans")
    op.drop_table("projects")
