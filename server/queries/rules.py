"""Rule sets: one YAML document per agent, every saved edit a new version."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select

from pathwatch.server.models import rule_sets


@dataclass(frozen=True)
class RuleSetRead:
    project_id: int
    agent_name: str
    version: int
    body: str
    created_at: datetime


def current_rule_set(connection: Connection, *, project_id: int, agent: str) -> RuleSetRead | None:
    row = connection.execute(
        select(rule_sets)
        .where(rule_sets.c.project_id == project_id, rule_sets.c.agent_name == agent)
        .order_by(rule_sets.c.version.desc())
        .limit(1)
    ).first()
    return None if row is None else _read(row)


def current_rule_sets(connection: Connection, *, project_id: int | None) -> list[RuleSetRead]:
    """Each agent's latest rule set, in one project or (None) in all."""
    latest = select(
        rule_sets.c.project_id,
        rule_sets.c.agent_name,
        func.max(rule_sets.c.version).label("version"),
    ).group_by(rule_sets.c.project_id, rule_sets.c.agent_name)
    if project_id is not None:
        latest = latest.where(rule_sets.c.project_id == project_id)
    newest = latest.subquery()
    rows = connection.execute(
        select(rule_sets)
        .join(
            newest,
            (newest.c.project_id == rule_sets.c.project_id)
            & (newest.c.agent_name == rule_sets.c.agent_name)
            & (newest.c.version == rule_sets.c.version),
        )
        .order_by(rule_sets.c.project_id, rule_sets.c.agent_name)
    )
    return [_read(r) for r in rows]


def rule_set_versions(connection: Connection, *, project_id: int, agent: str) -> list[RuleSetRead]:
    rows = connection.execute(
        select(rule_sets)
        .where(rule_sets.c.project_id == project_id, rule_sets.c.agent_name == agent)
        .order_by(rule_sets.c.version.desc())
    )
    return [_read(r) for r in rows]


def save_rule_set(connection: Connection, *, project_id: int, agent: str, body: str) -> int:
    """Store `body` as the agent's next version; returns that version number.

    The row lock on the agent's latest version serialises concurrent saves; the unique
    constraint catches the first save of an agent racing another.
    """
    latest = connection.execute(
        select(rule_sets.c.version)
        .where(rule_sets.c.project_id == project_id, rule_sets.c.agent_name == agent)
        .order_by(rule_sets.c.version.desc())
        .limit(1)
        .with_for_update()
    ).scalar()
    version = (latest or 0) + 1
    connection.execute(
        insert(rule_sets).values(
            project_id=project_id, agent_name=agent, version=version, body=body
        )
    )
    return version


def _read(row: Any) -> RuleSetRead:
    return RuleSetRead(row.project_id, row.agent_name, row.version, row.body, row.created_at)
