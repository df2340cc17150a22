"""OTLP export handling shared by the HTTP and gRPC receivers: bounds, decode, write, reply.

Replies follow the OTLP specification ("OTLP/HTTP Response"): success carries an
ExportTraceServiceResponse in the request's encoding, with `partial_success` set only
when spans were rejected; failures carry a google.rpc.Status.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass

import orjson
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from psycopg_pool import ConnectionPool

from pathwatch.collector.decode import (
    DecodedRequest,
    SpanRejection,
    parse_json,
    parse_protobuf,
    records_from_request,
)
from pathwatch.collector.errors import (
    BodyTooLargeError,
    IngestError,
    UndecodableBodyError,
    UnsupportedEncodingError,
    UnsupportedMediaTypeError,
)
from pathwatch.collector.limits import IngestLimits
from pathwatch.collector.normalise import normalise_span
from pathwatch.collector.write import write_spans

logger = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# OTLP: the response may be shortened; keep partial-success messages well under 4 MiB.
MAX_ERROR_MESSAGE_CHARS = 4_096


@dataclass(frozen=True, slots=True)
class ExportResult:
    accepted_spans: int
    rejected_spans: int
    error_message: str


def media_type(content_type: str | None) -> str:
    """The OTLP encoding named by a Content-Type header (parameters and case ignored)."""
    essence = (content_type or "").split(";", 1)[0].strip().lower()
    if essence in (PROTOBUF, "application/protobuf"):
        return PROTOBUF
    if essence == JSON:
        return JSON
    raise UnsupportedMediaTypeError(
        "unsupported_media_type",
        f"Content-Type {essence or '(missing)'!r} is not supported; send {PROTOBUF} or {JSON}",
    )


def check_content_encoding(content_encoding: str | None) -> bool:
    """True when the body is gzip; identity is accepted; anything else is refused."""
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return False
    if encoding in ("gzip", "x-gzip"):
        return True
    raise UnsupportedEncodingError(
        "unsupported_content_encoding",
        f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding",
    )


class GzipInflater:
    """Inflates a gzip stream chunk by chunk, refusing output past `max_bytes`.

    Multi-member gzip (concatenated streams) is inflated member after member.
    """

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._output = bytearray()
        self._inflater = zlib.decompressobj(wbits=31)

    def feed(self, data: bytes) -> None:
        while data:
            room = self._max_bytes - len(self._output) + 1
            try:
                self._output += self._inflater.decompress(data, room)
            except zlib.error as error:
                raise UndecodableBodyError(
                    "invalid_gzip", f"gzip body is corrupt: {error}"
                ) from None
            if len(self._output) > self._max_bytes:
                raise _too_large(self._max_bytes, after_inflating=True)
            data = self._inflater.unconsumed_tail
            if self._inflater.eof and self._inflater.unused_data:
                data = self._inflater.unused_data + data
                self._inflater = zlib.decompressobj(wbits=31)

    def finish(self) -> bytes:
        if not self._inflater.eof:
            raise UndecodableBodyError("invalid_gzip", "gzip body is truncated")
        return bytes(self._output)


def _too_large(max_bytes: int, *, after_inflating: bool) -> BodyTooLargeError:
    where = "after gzip inflation " if after_inflating else ""
    return BodyTooLargeError(
        "body_too_large",
        f"request body {where}exceeds the limit of {max_bytes} bytes",
    )


def too_large(max_bytes: int) -> BodyTooLargeError:
    return _too_large(max_bytes, after_inflating=False)


def decode_body(body: bytes, encoding: str, limits: IngestLimits) -> DecodedRequest:
    rejections: list[SpanRejection] = []
    request: ExportTraceServiceRequest
    if encoding == PROTOBUF:
        request = parse_protobuf(body)
    else:
        request, rejections = parse_json(body)
    return records_from_request(request, limits=limits, rejections=rejections)


def export_spans(
    decoded: DecodedRequest,
    *,
    pool: ConnectionPool,
    project_id: int,
) -> ExportResult:
    """Normalise and store the decoded spans; returns once they are committed."""
    steps = [normalise_span(span) for span in decoded.spans]
    write_spans(pool, decoded.spans, steps, project_id=project_id)
    message = ""
    if decoded.rejections:
        logger.warning("rejected %d spans of an export request", len(decoded.rejections))
        message = _rejection_message(decoded.rejections)
    return ExportResult(
        accepted_spans=len(decoded.spans),
        rejected_spans=len(decoded.rejections),
        error_message=message,
    )


def _rejection_message(rejections: list[SpanRejection]) -> str:
    parts = [f"span {r.index}: {r.reason}" for r in rejections[:50]]
    if len(rejections) > 50:
        parts.append(f"and {len(rejections) - 50} more")
    message = f"{len(rejections)} spans rejected; " + "; ".join(parts)
    return message[:MAX_ERROR_MESSAGE_CHARS]


def success_body(result: ExportResult, encoding: str) -> bytes:
    response = ExportTraceServiceResponse()
    if result.rejected_spans:
        response.partial_success.rejected_spans = result.rejected_spans
        response.partial_success.error_message = result.error_message
    if encoding == PROTOBUF:
        return response.SerializeToString()
    return bytes(orjson.dumps(json_format.MessageToDict(response)))


def error_body(error: IngestError, encoding: str) -> bytes:
    status = status_pb2.Status(code=error.grpc_code.value[0], message=error.message)
    if encoding == PROTOBUF:
        return bytes(status.SerializeToString())
    return bytes(orjson.dumps(json_format.MessageToDict(status)))
