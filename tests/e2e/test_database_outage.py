"""While PostgreSQL is down the receiver answers 503 with a short Retry-After, never 500,
and it writes again once PostgreSQL is back, without a restart."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pathwatch.server.embedded_db import EmbeddedDatabase, start_embedded_database
from tests.builders import export_request, new_trace_id, tool_span
from tests.conftest import RunningServer, start_server, wait_for


@pytest.fixture
def own_database() -> Iterator[EmbeddedDatabase]:
    """A throwaway PostgreSQL this test may stop and start."""
    folder = Path(tempfile.mkdtemp(prefix="pathwatch-outage-", dir="/tmp"))
    folder.chmod(0o755)
    database = start_embedded_database(folder, port=5433)
    yield database
    database.stop()
    subprocess.run(["rm", "-rf", str(folder)], check=False)


def _export(server: RunningServer) -> httpx.Response:
    trace_id = new_trace_id()
    body = export_request([tool_span(trace_id, parent=None)]).SerializeToString()
    return httpx.post(
        f"{server.otlp_http_url}/v1/traces",
        content=body,
        timeout=30,
        headers={"Content-Type": "application/x-protobuf"},
    )


def test_outage_gets_503_with_retry_after_and_writes_resume_after_it(
    own_database: EmbeddedDatabase, tmp_path: Path
) -> None:
    server = start_server(own_database.url, tmp_path)
    try:
        assert _export(server).status_code == 200
        subprocess.run(
            [str(own_database.bin_dir / "pg_ctl"), "-D", str(own_database.pgdata),
             "-m", "immediate", "stop"],
            check=True, capture_output=True, user=own_database.run_as, cwd="/",
        )  # fmt: skip

        during = [_export(server) for _ in range(2)]

        start_embedded_database(own_database.pgdata.parent, port=5433)
        after = wait_for(
            lambda: (r := _export(server)).status_code == 200 and r,
            timeout=30,
            message="a 200 once PostgreSQL is back",
        )
    finally:
        server.stop()

    assert [r.status_code for r in during] == [503, 503]
    assert all(r.elapsed.total_seconds() < 8 for r in during)
    assert all(1 <= int(r.headers["retry-after"]) <= 5 for r in during)
    assert after.status_code == 200
