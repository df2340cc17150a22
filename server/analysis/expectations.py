"""Learned expectations: a step nearly every past run of an agent took, missing from this one.

Pure: the caller passes the labels of the agent's other recent runs. A step label that
occurs in at least `min_share` of at least `min_runs` past runs and not in this trace's
path is reported as a skipped usual step, pinned on the step before which it usually
happens (or the trace's first step).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from pathwatch.server.analysis.findings import Finding
from pathwatch.server.analysis.records import TraceRecord

SKIPPED_STEP = "skipped_step"


@dataclass(frozen=True, slots=True)
class ExpectationSettings:
    min_runs: int = 5
    min_share: float = 0.9


def detect_skipped_usual_steps(
    trace: TraceRecord,
    *,
    past_paths: Sequence[Sequence[str]],
    settings: ExpectationSettings | None = None,
) -> list[Finding]:
    settings = settings or ExpectationSettings()
    path = trace.path
    if len(past_paths) < settings.min_runs or not path:
        return []
    present = {step.label for step in path}
    share_by_label = Counter(label for labels in past_paths for label in set(labels))
    found = []
    for label, runs in sorted(share_by_label.items()):
        share = runs / len(past_paths)
        if label in present or share < settings.min_share:
            continue
        anchor = _usual_successor(label, past_paths, path_labels=[s.label for s in path])
        span_id = path[anchor].span_id if anchor is not None else path[0].span_id
        found.append(
            Finding(
                kind=SKIPPED_STEP,
                severity="warning",
                message=(
                    f"usual step {label} is missing: it occurs in {share:.0%} of "
                    f"{len(past_paths)} recent runs of this agent"
                ),
                span_ids=(span_id,),
            )
        )
    return found


def _usual_successor(
    label: str, past_paths: Sequence[Sequence[str]], *, path_labels: list[str]
) -> int | None:
    """Index in this path of the label that most often came right after `label`."""
    followers = Counter(
        labels[i + 1] for labels in past_paths for i in range(len(labels) - 1) if labels[i] == label
    )
    for follower, _count in followers.most_common():
        if follower in path_labels:
            return path_labels.index(follower)
    return None
