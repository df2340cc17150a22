"""The finding record: what analysis reports about one trace, pinned to its steps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SEVERITIES = ("error", "warning", "info")
# Kinds of the built-in detectors; rule findings take their rule's kind.
BUILTIN_KINDS = ("loop", "stall", "error_step", "runaway", "invalid_args", "unknown_tool")


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem in one trace. `span_ids` (hex) are the steps it concerns, most telling
    first; `rule_id` and `rule_version` are None for built-in detectors."""

    kind: str
    severity: str
    message: str
    span_ids: tuple[str, ...]
    rule_id: str | None = None
    rule_version: int | None = None

    def __post_init__(self) -> None:
        assert self.severity in SEVERITIES, self.severity

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rule": self.rule_id,
            "rule_version": self.rule_version,
            "severity": self.severity,
            "message": self.message,
            "span_ids": list(self.span_ids),
        }
