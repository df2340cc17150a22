"""rotel, an OTLP relay, forwards the Python SDK's export to Pathwatch over HTTP+gzip and gRPC."""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import rotel
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.trace.export import SpanExporter

from tests.conftest import RunningServer, free_port
from tests.e2e.test_clients_python import assert_story_stored, emit_agent_story

ROTEL_AGENT = Path(rotel.__file__).parent / "rotel-agent"
START_TIMEOUT_SECONDS = 15.0


@dataclass
class Relay:
    process: subprocess.Popen[bytes]
    grpc_port: int
    http_port: int
    log_path: Path


def start_relay(tmp_path: Path, *, protocol: str, endpoint: str) -> Relay:
    """rotel in the foreground on loopback, exporting traces to `endpoint` with gzip."""
    grpc_port, http_port = free_port(), free_port()
    log_path = tmp_path / "rotel.log"
    command = [
        str(ROTEL_AGENT), "start",
        "--pid-file", str(tmp_path / "rotel.pid"), "--log-file", str(log_path),
        "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
        "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
        "--otlp-receiver-metrics-disabled", "--otlp-receiver-logs-disabled",
        "--exporter", "otlp",
        "--otlp-exporter-endpoint", endpoint,
        "--otlp-exporter-protocol", protocol,
        "--otlp-exporter-compression", "gzip",
        "--traces-batch-timeout", "100ms",
    ]  # fmt: skip
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    relay = Relay(process, grpc_port, http_port, log_path)
    _wait_until_listening(relay)
    return relay


def _wait_until_listening(relay: Relay) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if relay.process.poll() is not None:
            pytest.fail(f"rotel exited early:\n{relay.log_path.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", relay.grpc_port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    stop_relay(relay)
    pytest.fail(f"rotel did not listen within {START_TIMEOUT_SECONDS}s")


def stop_relay(relay: Relay) -> None:
    if relay.process.poll() is None:
        relay.process.terminate()
        try:
            relay.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            relay.process.kill()
            relay.process.wait()


def _sdk_exporter(relay: Relay, sdk_protocol: str) -> SpanExporter:
    if sdk_protocol == "grpc":
        return GrpcSpanExporter(endpoint=f"127.0.0.1:{relay.grpc_port}", insecure=True, timeout=10)
    return HttpSpanExporter(endpoint=f"http://127.0.0.1:{relay.http_port}/v1/traces", timeout=10)


@pytest.mark.parametrize(
    ("sdk_protocol", "relay_protocol"),
    [("grpc", "http"), ("http", "http"), ("grpc", "grpc"), ("http", "grpc")],
    ids=["sdk-grpc-to-http-gzip", "sdk-http-to-http-gzip", "sdk-grpc-to-grpc", "sdk-http-to-grpc"],
)
def test_rotel_relay_forwards_every_span_once(
    shared_server: RunningServer, tmp_path: Path, sdk_protocol: str, relay_protocol: str
) -> None:
    endpoint = (
        shared_server.otlp_http_url
        if relay_protocol == "http"
        else f"http://{shared_server.otlp_grpc_target}"
    )
    relay = start_relay(tmp_path, protocol=relay_protocol, endpoint=endpoint)
    try:
        run = emit_agent_story(
            _sdk_exporter(relay, sdk_protocol),
            service_name=f"rotel-{sdk_protocol}-{relay_protocol}",
        )

        assert_story_stored(shared_server, run)
    finally:
        stop_relay(relay)
