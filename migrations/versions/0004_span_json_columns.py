"""Span documents as json, not jsonb: stored as sent, without conversion on every write.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = (
    "attributes", "events", "links", "resource", "scope", "dropped_counts", "tool_arguments",
    "tool_definitions",
)  # fmt: skip


def upgrade() -> None:
    for column in COLUMNS:
        op.execute(f"ALTER TABLE spans ALTER COLUMN {column} TYPE json USING {column}::json")


def downgrade() -> None:
    for column in COLUMNS:
        op.execute(f"ALTER TABLE spans ALTER COLUMN {column} TYPE jsonb USING {column}::jsonb")
