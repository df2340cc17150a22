"""Findings of analysis, and versioned rule sets per agent.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rule_sets",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        sa.Column("agent_name", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_rule_sets_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_sets")),
        sa.UniqueConstraint(
            "project_id",
            "agent_name",
            "version",
            name=op.f("uq_rule_sets_project_id_agent_name_version"),
        ),
    )
    op.create_table(
        "findings",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        sa.Column("trace_rowid", sa.BigInteger(), nullable=False),
        sa.Column("agent_name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("rule_id", sa.Text(), nullable=True),
        sa.Column("rule_version", sa.Integer(), nullable=True),
        sa.Column("severity", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("span_ids", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "severity IN ('error', 'warning', 'info')", name=op.f("ck_findings_severity")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_findings_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["trace_rowid"],
            ["traces.id"],
            name=op.f("fk_findings_trace_rowid_traces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_findings")),
    )
    op.create_index(
        "ix_findings_project_id_created_at",
        "findings",
        ["project_id", sa.literal_column("created_at DESC")],
        unique=False,
    )
    op.create_index("ix_findings_trace_rowid", "findings", ["trace_rowid"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_findings_trace_rowid", table_name="findings")
    op.drop_index("ix_findings_project_id_created_at", table_name="findings")
    op.drop_table("findings")
    op.drop_table("rule_sets")
