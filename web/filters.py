"""The traces page's filters: read from the query string, checked, turned back into links. Pure."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from pathwatch.server.models import TRACE_STATUSES

LAST_WINDOWS = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}


class FilterError(ValueError):
    """A filter value the page cannot use; the message names the field."""


@dataclass(frozen=True)
class TraceFilters:
    """What the person asked for, as they typed it (times are UTC, minute precision)."""

    agent: str = ""
    status: str = ""
    last: str = ""
    start_from: str = ""
    start_to: str = ""
    finding: str = ""
    rule: str = ""
    cursor: str = ""

    def query(self, **changes: str) -> str:
        """The query string for these filters with `changes` applied, empty values left out."""
        values = vars(replace(self, **changes))
        names = {"start_from": "from", "start_to": "to"}
        pairs = [(names.get(key, key), value) for key, value in values.items() if value]
        return urlencode(pairs)

    @property
    def is_filtered(self) -> bool:
        chosen = (self.agent, self.status, self.last, self.start_from, self.start_to)
        return any((*chosen, self.finding, self.rule))


@dataclass(frozen=True)
class TraceQuery:
    """Checked filters, ready for `list_traces`."""

    agent: str | None
    status: str | None
    start_from: datetime | None
    start_to: datetime | None
    finding_kind: str | None
    rule_id: str | None
    cursor: str | None


def parse_filters(filters: TraceFilters, *, now: datetime) -> TraceQuery:
    """Raises FilterError for an unknown status or window, or a time that does not parse."""
    if filters.status and filters.status not in TRACE_STATUSES:
        raise FilterError(f"status must be one of {', '.join(TRACE_STATUSES)}")
    if filters.last and filters.last not in LAST_WINDOWS:
        raise FilterError(f"last must be one of {', '.join(LAST_WINDOWS)}")

    start_from = _parse_time(filters.start_from, field="from")
    if start_from is None and filters.last:
        start_from = now - LAST_WINDOWS[filters.last]
    return TraceQuery(
        agent=filters.agent or None,
        status=filters.status or None,
        start_from=start_from,
        start_to=_parse_time(filters.start_to, field="to"),
        finding_kind=filters.finding or None,
        rule_id=filters.rule or None,
        cursor=filters.cursor or None,
    )


def _parse_time(text: str, *, field: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise FilterError(f"{field} must be a date and time like 2025-01-31T13:45") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment
