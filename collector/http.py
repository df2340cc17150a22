"""OTLP/HTTP receiver: POST /v1/traces with protobuf or JSON, optionally gzip."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from fastapi import APIRouter, Request, Response
from psycopg_pool import ConnectionPool
from starlette.concurrency import run_in_threadpool

from pathwatch.collector.errors import (
    BodyTooLargeError,
    IngestError,
    InternalError,
    OverloadedError,
)
from pathwatch.collector.limits import IngestLimits
from pathwatch.collector.receive import (
    JSON,
    GzipInflater,
    check_content_encoding,
    decode_body,
    error_body,
    export_spans,
    media_type,
    success_body,
    too_large,
)
from pathwatch.collector.write import RETRY_AFTER_SECONDS

logger = logging.getLogger(__name__)
router = APIRouter()


class InflightGate:
    """Counts exports in flight on one event loop; `enter` refuses past the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.inflight = 0

    @contextlib.contextmanager
    def enter(self) -> Iterator[None]:
        if self.inflight >= self.limit:
            raise OverloadedError(
                "overloaded",
                f"{self.inflight} exports are in flight, the limit is {self.limit}; retry later",
            )
        self.inflight += 1
        try:
            yield
        finally:
            self.inflight -= 1


@dataclass(frozen=True)
class Receiver:
    """What the OTLP handlers need, set on `app.state.receiver` at start-up."""

    pool: ConnectionPool
    limits: IngestLimits
    project_id: int
    gate: InflightGate = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "gate", InflightGate(self.limits.max_concurrent_requests))


@router.post("/v1/traces", include_in_schema=True, tags=["otlp"])
async def post_traces(request: Request) -> Response:
    """OTLP/HTTP trace export. 200 is sent only after the spans are committed."""
    receiver: Receiver = request.app.state.receiver
    encoding = JSON
    try:
        encoding = media_type(request.headers.get("content-type"))
        with receiver.gate.enter():
            body = await _read_body(request, receiver.limits)
            decoded = await run_in_threadpool(decode_body, body, encoding, receiver.limits)
            result = await run_in_threadpool(
                export_spans, decoded, pool=receiver.pool, project_id=receiver.project_id
            )
    except IngestError as error:
        return _error_response(error, encoding)
    except Exception:
        logger.exception("export failed")
        return _error_response(InternalError("internal_error", "internal error"), encoding)
    return Response(success_body(result, encoding), media_type=encoding)


def _error_response(error: IngestError, encoding: str) -> Response:
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if error.retryable else {}
    if isinstance(error, BodyTooLargeError):
        headers["Connection"] = "close"
    return Response(
        error_body(error, encoding),
        status_code=error.http_status,
        media_type=encoding,
        headers=headers,
    )


async def _read_body(request: Request, limits: IngestLimits) -> bytes:
    """The body, inflated if gzip; the size bound holds before and after inflating."""
    is_gzip = check_content_encoding(request.headers.get("content-encoding"))
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise too_large(limits.max_body_bytes)
    inflater = GzipInflater(limits.max_body_bytes) if is_gzip else None
    received = bytearray()
    received_bytes = 0
    async for chunk in request.stream():
        received_bytes += len(chunk)
        if received_bytes > limits.max_body_bytes:
            raise too_large(limits.max_body_bytes)
        if inflater is not None:
            inflater.feed(chunk)
        else:
            received += chunk
    return inflater.finish() if inflater is not None else bytes(received)
