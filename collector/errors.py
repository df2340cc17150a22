"""Errors of the collector, each mapped to one OTLP/HTTP status and gRPC code.

IngestError (code, http_status, grpc_code, retryable)
├── UnsupportedMediaTypeError   415  a Content-Type that is not protobuf or JSON
├── UnsupportedEncodingError    415  a Content-Encoding other than gzip or identity
├── BodyTooLargeError           413  body over the limit, before or after inflating
├── TooManySpansError           413  more spans in one request than allowed
├── UndecodableBodyError        400  bytes that are not an ExportTraceServiceRequest
└── StorageUnavailableError     503  the database cannot take the write now (retryable)
"""

from __future__ import annotations

import grpc


class IngestError(Exception):
    """A request the collector refuses as a whole."""

    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    retryable = False

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class UnsupportedMediaTypeError(IngestError):
    http_status = 415


class UnsupportedEncodingError(IngestError):
    http_status = 415


class BodyTooLargeError(IngestError):
    http_status = 413
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class TooManySpansError(IngestError):
    http_status = 413
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class UndecodableBodyError(IngestError):
    http_status = 400


class StorageUnavailableError(IngestError):
    http_status = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE
    retryable = True


class OverloadedError(IngestError):
    http_status = 429
    grpc_code = grpc.StatusCode.UNAVAILABLE
    retryable = True


class InternalError(IngestError):
    http_status = 500
    grpc_code = grpc.StatusCode.INTERNAL
