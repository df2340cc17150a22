"""Every migration walks up and down, and head matches the models."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from pathwatch.server.db import (
    alembic_config,
    create_db_engine,
    downgrade_database,
    upgrade_database,
)
from pathwatch.server.models import metadata
from tests.conftest import PostgresForTests


@pytest.fixture
def empty_engine(postgres: PostgresForTests) -> Iterator[Engine]:
    postgres.execute_admin("DROP DATABASE IF EXISTS pathwatch_migrations")
    postgres.execute_admin("CREATE DATABASE pathwatch_migrations")
    engine = create_db_engine(postgres.url_for("pathwatch_migrations"))
    yield engine
    engine.dispose()
    postgres.execute_admin("DROP DATABASE IF EXISTS pathwatch_migrations WITH (FORCE)")


def test_migrations_walk_up_and_down_one_revision_at_a_time(empty_engine: Engine) -> None:
    revisions = [r.revision for r in ScriptDirectory.from_config(alembic_config()).walk_revisions()]

    for revision in reversed(revisions):
        upgrade_database(empty_engine, revision)
    for revision in revisions[1:]:
        downgrade_database(empty_engine, revision)
    downgrade_database(empty_engine, "base")

    assert inspect(empty_engine).get_table_names() == ["alembic_version"]


def test_head_schema_matches_the_models(empty_engine: Engine) -> None:
    upgrade_database(empty_engine)

    with empty_engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)

    assert differences == []
