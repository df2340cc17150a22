"""Background work over PostgreSQL: finalise traces (open → complete or stalled).

Workers coordinate only through the database, so any number of processes may run
them. A trace is complete when its root has arrived and nothing else arrived for the
settle window; stalled when its root has not arrived and nothing arrived for the
stall timeout. A late span sets the trace back to open (see collector/write.py).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from sqlalchemy import Engine, text

logger = logging.getLogger(__name__)

_FINALISE_TRACES = text("""
UPDATE traces
SET status = CASE WHEN root_span_id IS NOT NULL THEN 'complete' ELSE 'stalled' END
WHERE id IN (
    SELECT id FROM traces
    WHERE status = 'open'
      AND last_received_at < now() - make_interval(secs =>
          CASE WHEN root_span_id IS NOT NULL THEN :settle_seconds ELSE :stall_seconds END)
    ORDER BY last_received_at
    LIMIT :batch
    FOR UPDATE SKIP LOCKED
)
""")


@dataclass(frozen=True)
class LifecycleSettings:
    settle_seconds: float = 5.0
    stall_timeout_seconds: float = 300.0
    poll_seconds: float = 1.0
    batch_size: int = 1000


def finalise_due_traces(engine: Engine, settings: LifecycleSettings) -> int:
    """Move every due open trace to complete or stalled; returns how many moved."""
    with engine.begin() as connection:
        result = connection.execute(
            _FINALISE_TRACES,
            {
                "settle_seconds": settings.settle_seconds,
                "stall_seconds": settings.stall_timeout_seconds,
                "batch": settings.batch_size,
            },
        )
    return result.rowcount


class Worker:
    """Runs the lifecycle loop in a thread until `stop()`."""

    def __init__(self, engine: Engine, settings: LifecycleSettings) -> None:
        self._engine = engine
        self._settings = settings
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pathwatch-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                moved = finalise_due_traces(self._engine, self._settings)
                if moved:
                    logger.debug("finalised %d traces", moved)
            except Exception:
                logger.exception("trace lifecycle pass failed; retrying")
            self._stopping.wait(self._settings.poll_seconds)
