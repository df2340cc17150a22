"""Indexes for the traces list filtered by agent, status, finding kind or rule.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_traces_project_id_agent_name_start_time_id",
        "traces",
        [
            "project_id",
            "agent_name",
            sa.literal_column("start_time DESC"),
            sa.literal_column("id DESC"),
        ],
    )
    op.create_index(
        "ix_traces_project_id_status_start_time_id",
        "traces",
        [
            "project_id",
            "status",
            sa.literal_column("start_time DESC"),
            sa.literal_column("id DESC"),
        ],
    )
    op.create_index(
        "ix_findings_project_id_kind_trace_rowid", "findings", ["project_id", "kind", "trace_rowid"]
    )
    op.create_index(
        "ix_findings_project_id_rule_id_trace_rowid",
        "findings",
        ["project_id", "rule_id", "trace_rowid"],
        postgresql_where=sa.text("rule_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_findings_project_id_rule_id_trace_rowid", table_name="findings")
    op.drop_index("ix_findings_project_id_kind_trace_rowid", table_name="findings")
    op.drop_index("ix_traces_project_id_status_start_time_id", table_name="traces")
    op.drop_index("ix_traces_project_id_agent_name_start_time_id", table_name="traces")
