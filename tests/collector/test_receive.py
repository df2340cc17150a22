"""receive: media types, content encodings and bounded gzip inflation (table-driven)."""

from __future__ import annotations

import gzip

import pytest

from pathwatch.collector.errors import (
    BodyTooLargeError,
    UndecodableBodyError,
    UnsupportedEncodingError,
    UnsupportedMediaTypeError,
)
from pathwatch.collector.receive import (
    JSON,
    PROTOBUF,
    GzipInflater,
    check_content_encoding,
    media_type,
)

BODY = b"span data " * 100


@pytest.mark.parametrize(
    ("content_type", "encoding"),
    [
        ("application/json", JSON),
        ("Application/JSON; charset=utf-8", JSON),
        ("application/x-protobuf", PROTOBUF),
        ("application/protobuf", PROTOBUF),
        (" APPLICATION/X-PROTOBUF ;x=y", PROTOBUF),
    ],
)
def test_media_type_ignores_parameters_and_case(content_type: str, encoding: str) -> None:
    assert media_type(content_type) == encoding


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "application/jsonx", "*/*"])
def test_media_type_refuses_other_types(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaTypeError):
        media_type(content_type)


@pytest.mark.parametrize(
    ("content_encoding", "is_gzip"),
    [(None, False), ("", False), ("identity", False), ("gzip", True), ("GZIP ", True),
     ("x-gzip", True)],
)  # fmt: skip
def test_check_content_encoding_accepts_gzip_and_identity(
    content_encoding: str | None, is_gzip: bool
) -> None:
    assert check_content_encoding(content_encoding) is is_gzip


@pytest.mark.parametrize("content_encoding", ["br", "deflate", "zstd", "gzip, br"])
def test_check_content_encoding_refuses_others(content_encoding: str) -> None:
    with pytest.raises(UnsupportedEncodingError):
        check_content_encoding(content_encoding)


def inflate(data: bytes, *, max_bytes: int, chunk: int = 7) -> bytes:
    inflater = GzipInflater(max_bytes)
    for offset in range(0, len(data), chunk):
        inflater.feed(data[offset : offset + chunk])
    return inflater.finish()


@pytest.mark.parametrize(
    "data",
    [gzip.compress(BODY), gzip.compress(BODY[:10]) + gzip.compress(BODY[10:]),
     b"".join(gzip.compress(BODY[i : i + 100]) for i in range(0, len(BODY), 100))],
    ids=["one-member", "two-members", "ten-members"],
)  # fmt: skip
def test_gzip_inflater_inflates_every_member(data: bytes) -> None:
    assert inflate(data, max_bytes=len(BODY)) == BODY


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (gzip.compress(BODY)[:-8], UndecodableBodyError),
        (gzip.compress(BODY)[:5], UndecodableBodyError),
        (b"not gzip at all", UndecodableBodyError),
        (gzip.compress(BODY)[:20] + b"\xff" * 20 + gzip.compress(BODY)[40:], UndecodableBodyError),
        (gzip.compress(BODY + b"!"), BodyTooLargeError),
        (gzip.compress(BODY) + gzip.compress(b"!"), BodyTooLargeError),
        (gzip.compress(b"\x00" * (64 * 1024 * 1024)), BodyTooLargeError),
    ],
    ids=["truncated", "header-only", "not-gzip", "corrupt", "one-byte-over", "member-over",
         "bomb"],
)  # fmt: skip
def test_gzip_inflater_refuses_broken_or_oversized_bodies(
    data: bytes, error: type[Exception]
) -> None:
    with pytest.raises(error):
        inflate(data, max_bytes=len(BODY), chunk=4096)
