"""The Node OpenTelemetry SDK exports an agent run to Pathwatch over OTLP/HTTP JSON."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import RunningServer
from tests.e2e.test_clients_python import EmittedRun, assert_story_stored

NODE_DIR = Path(__file__).parent / "node"
EXPORT_SUCCESS = 0  # ExportResultCode.SUCCESS in @opentelemetry/core


def run_node_story(server: RunningServer, *, compression: str) -> EmittedRun:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules").is_dir():
        pytest.fail("node or tests/e2e/node/node_modules missing; run scripts/bootstrap.sh --test")
    environment = {
        **os.environ,
        "PATHWATCH_OTLP_ENDPOINT": server.otlp_http_url,
        "PATHWATCH_OTLP_COMPRESSION": compression,
    }

    finished = subprocess.run(
        [node, str(NODE_DIR / "agent_story.mjs")],
        capture_output=True,
        env=environment,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 0, finished.stderr.decode(errors="replace")
    printed = json.loads(finished.stdout.decode().strip().splitlines()[-1])
    assert printed["exportResults"]
    assert set(printed["exportResults"]) == {EXPORT_SUCCESS}
    return EmittedRun(trace_id=printed["traceId"], span_ids=frozenset(printed["spanIds"]))


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_node_sdk_json_export_is_stored_once(
    shared_server: RunningServer, compression: str
) -> None:
    run = run_node_story(shared_server, compression=compression)

    assert_story_stored(shared_server, run)
