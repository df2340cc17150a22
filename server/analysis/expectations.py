"""Learned expectations: a step nearly every past run of an agent took, missing from this one.

Pure: the caller passes the paths of the agent's recent runs. A step label that occurs
in at least `min_share` of at least `min_runs` other runs and not in this trace's path
is reported as a skipped usual step, pinned on the step before which it usually happens
(or the trace's first step).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pathwatch.server.analysis.findings import Finding
from pathwatch.server.analysis.records import TraceRecord

SKIPPED_STEP = "skipped_step"


@dataclass(frozen=True, slots=True)
class ExpectationSettings:
    min_runs: int = 5
    min_share: float = 0.9


@dataclass(frozen=True)
class UsualSteps:
    """How often each step label occurs in an agent's recent runs, counted once, so that
    each of a batch of traces can be compared with all the other runs."""

    paths: Mapping[int, Sequence[str]]
    settings: ExpectationSettings = field(default_factory=ExpectationSettings)
    runs_with_label: Counter[str] = field(init=False)

    def __post_init__(self) -> None:
        counts = Counter(label for labels in self.paths.values() for label in set(labels))
        object.__setattr__(self, "runs_with_label", counts)

    def skipped_in(self, trace: TraceRecord, *, own_key: int | None = None) -> list[Finding]:
        """Usual steps missing from `trace`; its own past path (`own_key`) is left out."""
        own = set(self.paths[own_key]) if own_key is not None and own_key in self.paths else None
        runs = len(self.paths) - (own is not None)
        path = trace.path
        if runs < self.settings.min_runs or not path:
            return []
        present = {step.label for step in path}
        found = []
        for label, count in sorted(self.runs_with_label.items()):
            share = (count - (own is not None and label in own)) / runs
            if label in present or share < self.settings.min_share:
                continue
            anchor = self._usual_successor(label, [step.label for step in path])
            found.append(
                Finding(
                    kind=SKIPPED_STEP,
                    severity="warning",
                    message=(
                        f"usual step {label} is missing: it occurs in {share:.0%} of "
                        f"{runs} recent runs of this agent"
                    ),
                    span_ids=(path[anchor or 0].span_id,),
                )
            )
        return found

    def _usual_successor(self, label: str, path_labels: list[str]) -> int | None:
        """Index in this path of the label that most often came right after `label`."""
        followers = Counter(
            labels[i + 1]
            for labels in self.paths.values()
            for i in range(len(labels) - 1)
            if labels[i] == label
        )
        for follower, _count in followers.most_common():
            if follower in path_labels:
                return path_labels.index(follower)
        return None


def detect_skipped_usual_steps(
    trace: TraceRecord,
    *,
    past_paths: Sequence[Sequence[str]],
    settings: ExpectationSettings | None = None,
) -> list[Finding]:
    """Usual steps missing from `trace`, against `past_paths` (which exclude it)."""
    usual = UsualSteps(dict(enumerate(past_paths)), settings or ExpectationSettings())
    return usual.skipped_in(trace)
