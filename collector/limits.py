"""Ingest bounds. Each is configurable (environment or `serve` options) and tested."""

from __future__ import annotations

import os
from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class IngestLimits:
    """What one OTLP request may hold.

    `max_body_bytes` applies to the body as sent and again after gzip inflation
    (OTLP specification: the limit holds after decompression; 64 MiB recommended).
    A span over a per-span bound is rejected alone and counted in partial_success.
    """

    max_body_bytes: int = 64 * MIB
    max_spans_per_request: int = 100_000
    max_attributes_per_span: int = 1_024
    max_attribute_value_bytes: int = 1 * MIB
    max_attribute_depth: int = 24
    max_events_per_span: int = 1_024
    max_links_per_span: int = 1_024
    # Exports being read, decoded or written at once; more get 429 with Retry-After, so
    # that bodies waiting for the database cannot pile up in memory.
    max_concurrent_requests: int = 64

    @classmethod
    def from_environment(cls) -> IngestLimits:
        """Read PATHWATCH_MAX_BODY_BYTES and its siblings; unset ones keep their default."""
        values = {}
        for name in cls.__dataclass_fields__:
            raw = os.environ.get(f"PATHWATCH_{name.upper()}")
            if raw is not None:
                values[name] = int(raw)
        return cls(**values)
