"""OTLP/gRPC receiver: opentelemetry.proto.collector.trace.v1.TraceService/Export."""

from __future__ import annotations

import logging
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from pathwatch.collector.decode import records_from_request
from pathwatch.collector.errors import IngestError
from pathwatch.collector.http import Receiver
from pathwatch.collector.receive import export_spans

logger = logging.getLogger(__name__)


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: Receiver) -> None:
        self._receiver = receiver

    def Export(
        self,
        request: ExportTraceServiceRequest,
        context: grpc.ServicerContext,
    ) -> ExportTraceServiceResponse:
        receiver = self._receiver
        try:
            decoded = records_from_request(request, limits=receiver.limits)
            result = export_spans(decoded, pool=receiver.pool, project_id=receiver.project_id)
        except IngestError as error:
            context.abort(error.grpc_code, error.message)
        except Exception:
            logger.exception("export failed")
            context.abort(grpc.StatusCode.INTERNAL, "internal error")
        response = ExportTraceServiceResponse()
        if result.rejected_spans:
            response.partial_success.rejected_spans = result.rejected_spans
            response.partial_success.error_message = result.error_message
        return response


def start_grpc_server(receiver: Receiver, *, host: str, port: int) -> grpc.Server:
    """Start the gRPC listener; messages over the body limit get RESOURCE_EXHAUSTED."""
    options = [
        ("grpc.max_receive_message_length", receiver.limits.max_body_bytes),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=options,
        # Past this many calls gRPC itself answers RESOURCE_EXHAUSTED.
        maximum_concurrent_rpcs=receiver.limits.max_concurrent_requests,
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
        TraceService(receiver), server
    )
    server.add_insecure_port(f"{host}:{port}")
    server.start()
    logger.info("OTLP/gRPC listening on %s:%d", host, port)
    return server
