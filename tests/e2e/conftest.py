"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import PostgresForTests, RunningServer
from tests.e2e.ingest_support import module_server


@pytest.fixture(scope="module")
def shared_server(
    postgres: PostgresForTests,
    template_database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningServer]:
    """One server on its own database for all the tests of a module."""
    yield from module_server(postgres, template_database, tmp_path_factory.mktemp("serve"))
