"""Rules: execution constraints over one finite trace, read from a YAML rules file.

A trace is the finite sequence of its steps in causal order; each rule kind is a formula
of linear temporal logic over that sequence (finite-trace semantics: ◇φ fails when no
position satisfies φ, ◯ fails at the last position). Matchers select steps by `type`,
`name` (the step's name or label, exact or glob), `attributes` (equality on span
attributes) and `status` (`ok` or `error`; a tool result that reports an error counts as
`error`). Every key of a matcher must hold. The file format::

    version: 1
    agent: airline-agent          # optional: the agent the rules are for
    settings: {loop_min_repeats: 3}
    rules:
      - id: lookup-before-cancel
        kind: before
        match: {type: tool, name: cancel_reservation}
        required: {type: tool, name: get_reservation_details, status: ok}
        same_args: [reservation_id]

Errors:

    InvalidRequestError (pathwatch.server.errors, 422)
    └── RulesFileError   the file is not valid YAML or breaks RULES_FILE_SCHEMA; each
                         problem names its line, its path in the file and what is wrong
"""

from __future__ import annotations

import fnmatch
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import yaml
from jsonschema.exceptions import SchemaError

from pathwatch.server.analysis.detectors import DetectorSettings, args_problem
from pathwatch.server.analysis.findings import SEVERITIES, Finding
from pathwatch.server.analysis.records import StepRecord, TraceRecord, canonical_json
from pathwatch.server.errors import InvalidRequestError

RULE_KINDS = (
    "never",
    "eventually",
    "before",
    "response",
    "max_repeats",
    "max_steps",
    "max_duration",
    "stall_after",
    "args_schema",
)
STEP_TYPES = (
    "agent", "llm", "tool", "retrieval", "embedding", "rerank", "guardrail", "evaluator",
    "chain", "span",
)  # fmt: skip
NS_PER_SECOND = 1_000_000_000
# A rules file is small: these bound the work a file can ask of the server.
MAX_RULES_FILE_CHARS = 256 * 1024
MAX_RULES = 1_000

# Keys each kind requires and allows besides id, kind, version, severity, description.
_KIND_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "never": (("match",), ()),
    "eventually": (("match",), ("by",)),
    "before": (("match", "required"), ("same_args",)),
    "response": (("match", "then"), ("same_args",)),
    "max_repeats": (("match", "max"), ()),
    "max_steps": (("max",), ("match",)),
    "max_duration": (("seconds",), ("match",)),
    "stall_after": (("seconds",), ()),
    "args_schema": (("match", "schema"), ()),
}
_COMMON_KEYS = ("id", "kind", "version", "severity", "description")
_STRINGS = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}

MATCHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": False,
    "properties": {
        "type": {
            "oneOf": [
                {"enum": list(STEP_TYPES)},
                {"type": "array", "items": {"enum": list(STEP_TYPES)}, "minItems": 1},
            ]
        },
        "name": _STRINGS,
        "attributes": {
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean"]},
        },
        "status": {"enum": ["ok", "error"]},
    },
}
RULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "kind"],
    "properties": {
        "id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.:-]*$", "maxLength": 100},
        "kind": {"enum": list(RULE_KINDS)},
        "version": {"type": "integer", "minimum": 1},
        "severity": {"enum": list(SEVERITIES)},
        "description": {"type": "string"},
        "match": MATCHER_SCHEMA,
        "required": MATCHER_SCHEMA,
        "then": MATCHER_SCHEMA,
        "by": MATCHER_SCHEMA,
        "same_args": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "max": {"type": "integer", "minimum": 0},
        "seconds": {"type": "number", "exclusiveMinimum": 0},
        "schema": {"type": ["object", "boolean"]},
    },
    "allOf": [
        {
            "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
            "then": {
                "required": list(required),
                "propertyNames": {"enum": [*_COMMON_KEYS, *required, *allowed]},
            },
        }
        for kind, (required, allowed) in _KIND_KEYS.items()
    ],
}
RULES_FILE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Pathwatch rules file",
    "type": "object",
    "required": ["rules"],
    "additionalProperties": False,
    "properties": {
        "version": {"const": 1},
        "agent": {"type": "string"},
        "settings": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "loop_min_repeats": {"type": "integer", "minimum": 2},
                "loop_max_cycle_length": {"type": "integer", "minimum": 2},
                "runaway_min_history": {"type": "integer", "minimum": 1},
                "runaway_factor": {"type": "number", "exclusiveMinimum": 1},
            },
        },
        "rules": {"type": "array", "items": RULE_SCHEMA, "maxItems": MAX_RULES},
    },
}


# ---- records -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One thing wrong in a rules file; `line` counts from 1, `path` is like rules[0].kind."""

    line: int
    path: str
    message: str


class RulesFileError(InvalidRequestError):
    """A rules file that cannot be used; `problems` lists every problem found."""

    def __init__(self, source: str, problems: Sequence[RuleProblem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        lines = [f"{source}:{p.line}: {p.path}: {p.message}" for p in self.problems]
        super().__init__("invalid_rules", "\n".join(lines))


@dataclass(frozen=True, slots=True)
class Matcher:
    """Selects steps; every given key must hold, an empty key list holds for any value."""

    types: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    attributes: tuple[tuple[str, Any], ...] = ()
    status: str | None = None

    def matches(self, step: StepRecord) -> bool:
        if self.types and step.type not in self.types:
            return False
        if self.names and not any(_name_matches(step, pattern) for pattern in self.names):
            return False
        if any(step.attributes.get(key) != value for key, value in self.attributes):
            return False
        return self.status is None or (self.status == "error") == step.is_failed

    def describe(self) -> str:
        words = ["/".join(self.types) or "step"]
        if self.names:
            words.append("|".join(self.names))
        if self.status:
            words.append(f"({self.status})")
        return " ".join(words)


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule; which optional fields are set depends on `kind` (see RULE_SCHEMA)."""

    id: str
    kind: str
    version: int = 1
    severity: str = "error"
    description: str | None = None
    match: Matcher | None = None
    required: Matcher | None = None
    then: Matcher | None = None
    by: Matcher | None = None
    same_args: tuple[str, ...] = ()
    max_count: int | None = None
    seconds: float | None = None
    schema: Any = None


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    agent: str | None = None
    settings: DetectorSettings = field(default_factory=DetectorSettings)

    @property
    def stall_timeout_seconds(self) -> float | None:
        """The shortest `stall_after`: how long a trace may stay quiet before it stalls."""
        limits = [rule.seconds for rule in self.rules if rule.kind == "stall_after"]
        return min((limit for limit in limits if limit is not None), default=None)


# ---- loading -----------------------------------------------------------------------


def load_rules(text: str, *, source: str = "rules") -> RuleSet:
    """Parse and check a rules file. Raises RulesFileError listing every problem with
    its line number; nothing is half-loaded."""
    document, root = _parse_yaml(text, source)
    problems = _schema_problems(document, root) or _meaning_problems(document, root)
    if problems:
        raise RulesFileError(source, problems)
    return _rule_set(document)


def _parse_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """Parse a rules file. YAML aliases are refused: a few hundred bytes of nested aliases
    expand into gigabytes once validated or reported ("billion laughs")."""
    if len(text) > MAX_RULES_FILE_CHARS:
        problem = f"the file has {len(text)} characters; the limit is {MAX_RULES_FILE_CHARS}"
        raise RulesFileError(source, [RuleProblem(1, "$", problem)])
    try:
        alias = next(
            (e for e in yaml.parse(text, Loader=yaml.SafeLoader) if isinstance(e, yaml.AliasEvent)),
            None,
        )
        if alias is not None:
            line = alias.start_mark.line + 1 if alias.start_mark is not None else 1
            raise RulesFileError(
                source, [RuleProblem(line, "$", "YAML aliases (*name) are not allowed")]
            )
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise RulesFileError(source, [RuleProblem(line, "$", str(problem))]) from None
    return document, root


def _schema_problems(document: Any, root: yaml.Node | None) -> list[RuleProblem]:
    validator = jsonschema.Draft202012Validator(RULES_FILE_SCHEMA)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path)))
    return [
        RuleProblem(
            _line_of(root, error.absolute_path), _path_text(error.absolute_path), error.message
        )
        for error in _leaf_errors(errors)
    ]


def _leaf_errors(
    errors: Sequence[jsonschema.ValidationError],
) -> Iterator[jsonschema.ValidationError]:
    """For `oneOf` and friends, the most telling sub-error rather than the summary."""
    for error in errors:
        yield jsonschema.exceptions.best_match([error]) or error


def _meaning_problems(document: Any, root: yaml.Node | None) -> list[RuleProblem]:
    """What the schema cannot say: ids are unique; `schema` is itself a valid JSON Schema."""
    problems: list[RuleProblem] = []
    seen: set[str] = set()
    for position, rule in enumerate(document["rules"]):
        if rule["id"] in seen:
            path = ("rules", position, "id")
            problems.append(RuleProblem(_line_of(root, path), _path_text(path), "duplicate id"))
        seen.add(rule["id"])
        if "schema" in rule:
            path = ("rules", position, "schema")
            try:
                jsonschema.validators.validator_for(rule["schema"]).check_schema(rule["schema"])
            except SchemaError as error:
                message = f"not a valid JSON Schema: {error.message}"
                problems.append(RuleProblem(_line_of(root, path), _path_text(path), message))
    return problems


def _line_of(root: yaml.Node | None, path: Sequence[Any]) -> int:
    """The line (from 1) of the YAML node at `path`, or of its nearest ancestor."""
    node = root
    for key in path:
        child = _child(node, key)
        if child is None:
            break
        node = child
    return node.start_mark.line + 1 if node is not None else 1


def _child(node: yaml.Node | None, key: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        return next((value for name, value in node.value if name.value == str(key)), None)
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        child: yaml.Node = node.value[key]
        return child
    return None


def _path_text(path: Sequence[Any]) -> str:
    text = "$"
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else f".{key}"
    return text


def _rule_set(document: Mapping[str, Any]) -> RuleSet:
    return RuleSet(
        rules=tuple(_rule(entry) for entry in document["rules"]),
        agent=document.get("agent"),
        settings=DetectorSettings(**document.get("settings", {})),
    )


def _rule(entry: Mapping[str, Any]) -> Rule:
    return Rule(
        id=entry["id"],
        kind=entry["kind"],
        version=entry.get("version", 1),
        severity=entry.get("severity", "error"),
        description=entry.get("description"),
        match=_matcher(entry.get("match")),
        required=_matcher(entry.get("required")),
        then=_matcher(entry.get("then")),
        by=_matcher(entry.get("by")),
        same_args=tuple(entry.get("same_args", ())),
        max_count=entry.get("max"),
        seconds=entry.get("seconds"),
        schema=entry.get("schema"),
    )


def _matcher(entry: Mapping[str, Any] | None) -> Matcher | None:
    if entry is None:
        return None
    return Matcher(
        types=_strings(entry.get("type")),
        names=_strings(entry.get("name")),
        attributes=tuple(sorted(entry.get("attributes", {}).items())),
        status=entry.get("status"),
    )


def _strings(value: str | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _name_matches(step: StepRecord, pattern: str) -> bool:
    candidates = (step.name or "", step.label)
    return any(fnmatch.fnmatchcase(candidate, pattern) for candidate in candidates)


# ---- evaluation --------------------------------------------------------------------


def evaluate_rules(rule_set: RuleSet, trace: TraceRecord) -> list[Finding]:
    """Every rule of the set over one trace whose steps are in causal order."""
    return [finding for rule in rule_set.rules for finding in _EVALUATORS[rule.kind](rule, trace)]


def check_never(rule: Rule, trace: TraceRecord) -> list[Finding]:
    """never φ ≡ □¬φ — no step matches. One finding per matching step.

    Example: ``{id: no-shell, kind: never, match: {type: tool, name: "shell*"}}``
    flags every call of a tool whose name starts with "shell".
    """
    assert rule.match is not None
    return [
        _finding(rule, f"{step.label} must never happen", step)
        for step in trace.steps
        if rule.match.matches(step)
    ]


def check_eventually(rule: Rule, trace: TraceRecord) -> list[Finding]:
    """eventually φ ≡ ◇φ; with `by: ψ`, ◇φ ∧ (¬ψ W φ) — φ happens, and before the first ψ.

    Pinned on the point by which φ should have happened: the first ψ step, else the
    last step of the run. Example: ``{id: retrieve-first, kind: eventually,
    match: {type: retrieval}, by: {type: llm}}`` — a retrieval before the first model turn.
    """
    assert rule.match is not None
    hit = _first_index(trace.steps, rule.match)
    deadline = _first_index(trace.steps, rule.by) if rule.by is not None else None
    if hit is not None and (deadline is None or hit < deadline):
        return []
    wanted = rule.match.describe()
    if deadline is not None:
        late = (trace.steps[hit],) if hit is not None else ()
        point = trace.steps[deadline]
        return [_finding(rule, f"no {wanted} before {point.label}", point, *late)]
    end = _end_point(trace)
    return [_finding(rule, f"no {wanted} in the run", *((end,) if end else ()))]


def check_before(rule: Rule, trace: TraceRecord) -> list[Finding]:
    """before(A, B) ≡ ¬B W A — no `match` step (B) until a `required` step (A) with the
    same `same_args` values has happened. One finding per B, pinned on B and on the A
    that came too late, or else on the model turn that chose B.

    Example: ``{id: lookup-first, kind: before, match: {name: cancel_reservation},
    required: {name: get_reservation_details, status: ok}, same_args: [reservation_id]}``.
    """
    assert rule.match is not None and rule.required is not None
    findings = []
    steps = trace.steps
    for position, step in enumerate(steps):
        if not rule.match.matches(step):
            continue
        if any(_is_partner(rule, rule.required, earlier, step) for earlier in steps[:position]):
            continue
        late = next(
            (s for s in steps[position + 1 :] if _is_partner(rule, rule.required, s, step)), None
        )
        other = late or _deciding_turn(steps, position)
        text = f"{step.label} without an earlier {rule.required.describe()}{_args_text(rule)}"
        findings.append(
            _finding(rule, text + ("; it came later" if late else ""), step, *_some(other))
        )
    return findings


def check_response(rule: Rule, trace: TraceRecord) -> list[Finding]:
    """response(A, B) ≡ □(A → ◯◇B) — every `match` step (A) is followed later by a `then`
    step (B) with the same `same_args` values. Pinned on A and the end of the run.

    Example: ``{id: confirm-refund, kind: response, match: {name: issue_refund},
    then: {name: send_email}}`` — a refund is always followed by an email.
    """
    assert rule.match is not None and rule.then is not None
    findings = []
    steps = trace.steps
    end = _end_point(trace)
    for position, step in enumerate(steps):
        if not rule.match.matches(step):
            continue
        if any(_is_partner(rule, rule.then, later, step) for later in steps[position + 1 :]):
            continue
        text = f"{step.label} was not followed by {rule.then.describe()}{_args_text(rule)}"
        findings.append(_finding(rule, text, step, *_some(end if end is not step else None)))
    return findings


def check_max_repeats(rule: Rule, trace: TraceRecord) -> list[Finding]:
    """max_repeats(φ, n) — at most n positions satisfy φ. Pinned on the steps past n.

    Example: ``{id: few-searches, kind: max_repeats, match: {name: search_docs}, max: 5}``.
    """
    assert rule.match is not None and rule.max_count is not None
    hits = [step for step in trace.steps if rule.match.matches(step)]
    if len(hits) <= rule.max_count:
        return []
    text = f"{rule.match.describe()} happened {len(hits)} times; at most {rule.max_count} allowed"
    return [_finding(rule, text, *hits[rule.max_count :])]


def check_max_steps(rule: Rule, trace: TraceRecord) -> list[Finding]:
    """max_steps(n) — the path (or the steps matching `match`) has at most n steps.
    Pinned on the first step past n. Example: ``{id: short, kind: max_steps, max: 40}``.
    """
    assert rule.max_count is not None
    counted = [s for s in trace.steps if rule.match.matches(s)] if rule.match else trace.path
    if len(counted) <= rule.max_count:
        return []
    text = f"{len(counted)} steps; at most {rule.max_count} allowed"
    return [_finding(rule, text, counted[rule.max_count])]


def check_max_duration(rule: Rule, trace: TraceRecord) -> list[Finding]:
    """max_duration(s) — the run (or each step matching `match`) lasts at most s seconds.
    A run over the limit is pinned on the first step that ended past it.
    Example: ``{id: quick-tools, kind: max_duration, match: {type: tool}, seconds: 30}``.
    """
    assert rule.seconds is not None
    limit_ns = rule.seconds * NS_PER_SECOND
    if rule.match is not None:
        return [
            _finding(rule, f"{step.label} took {_seconds(step.duration_ns or 0)}", step)
            for step in trace.steps
            if rule.match.matches(step) and (step.duration_ns or 0) > limit_ns
        ]
    ended = [step for step in trace.steps if step.end_time_ns is not None]
    if not ended:
        return []
    start_ns = min(step.start_time_ns for step in trace.steps)
    late = [step for step in ended if (step.end_time_ns or 0) - start_ns > limit_ns]
    if not late:
        return []
    first = min(late, key=lambda step: step.end_time_ns or 0)
    total = max(step.end_time_ns or 0 for step in ended) - start_ns
    return [_finding(rule, f"run took {_seconds(total)}; limit {rule.seconds:g} s", first)]


def check_stall_after(rule: Rule, trace: TraceRecord) -> list[Finding]:
    """stall_after(s) — no step runs, and no gap between steps lasts, longer than s seconds
    (□ of a bound on every interval). It is also the agent's stall timeout. Time spent
    waiting for a person — after a model turn that answered without calling a tool —
    is not a stall. Findings are of kind `stall`. Example: ``{id: hang, kind:
    stall_after, seconds: 30}``.
    """
    assert rule.seconds is not None
    limit_ns = rule.seconds * NS_PER_SECOND
    path = trace.path
    findings = [
        _finding(rule, f"{step.label} ran for {_seconds(step.duration_ns or 0)}", step)
        for step in path
        if (step.duration_ns or 0) > limit_ns
    ]
    for previous, step in itertools.pairwise(path):
        gap_ns = step.start_time_ns - (previous.end_time_ns or previous.start_time_ns)
        if gap_ns > limit_ns and not _waits_for_person(previous):
            text = f"nothing happened for {_seconds(gap_ns)} after {previous.label}"
            findings.append(_finding(rule, text, previous, step))
    return findings


def check_args_schema(rule: Rule, trace: TraceRecord) -> list[Finding]:
    """□(φ → args ⊨ schema) — the arguments of every matching step pass the JSON Schema
    (validated with `jsonschema`). Example: ``{id: order-id, kind: args_schema,
    match: {name: lookup_order}, schema: {type: object, required: [order_id]}}``.
    """
    assert rule.match is not None
    findings = []
    for step in trace.steps:
        if not rule.match.matches(step):
            continue
        problem = args_problem(step.tool_arguments, rule.schema)
        if problem is not None:
            findings.append(_finding(rule, f"arguments of {step.name}: {problem}", step))
    return findings


_EVALUATORS: dict[str, Callable[[Rule, TraceRecord], list[Finding]]] = {
    "never": check_never,
    "eventually": check_eventually,
    "before": check_before,
    "response": check_response,
    "max_repeats": check_max_repeats,
    "max_steps": check_max_steps,
    "max_duration": check_max_duration,
    "stall_after": check_stall_after,
    "args_schema": check_args_schema,
}


def _finding(rule: Rule, message: str, *steps: StepRecord) -> Finding:
    return Finding(
        kind="stall" if rule.kind == "stall_after" else rule.kind,
        severity=rule.severity,
        message=message,
        span_ids=tuple(step.span_id for step in steps),
        rule_id=rule.id,
        rule_version=rule.version,
    )


def _first_index(steps: Sequence[StepRecord], matcher: Matcher | None) -> int | None:
    if matcher is None:
        return None
    return next((i for i, step in enumerate(steps) if matcher.matches(step)), None)


def _is_partner(rule: Rule, matcher: Matcher, candidate: StepRecord, step: StepRecord) -> bool:
    """The candidate matches and carries the same `same_args` values as the step."""
    if not matcher.matches(candidate):
        return False
    return all(_argument(candidate, name) == _argument(step, name) for name in rule.same_args)


def _argument(step: StepRecord, name: str) -> str | None:
    arguments = step.tool_arguments
    if not isinstance(arguments, dict) or name not in arguments:
        return None
    return canonical_json(arguments[name])


def _args_text(rule: Rule) -> str:
    return f" with the same {', '.join(rule.same_args)}" if rule.same_args else ""


def _deciding_turn(steps: Sequence[StepRecord], position: int) -> StepRecord | None:
    """The last model turn before the step: where the model chose to take it."""
    return next((s for s in reversed(steps[:position]) if s.type == "llm"), None)


def _end_point(trace: TraceRecord) -> StepRecord | None:
    """The point by which a run's obligations fall due: its last path step, else its root."""
    if trace.path:
        return trace.path[-1]
    return trace.steps[0] if trace.steps else None


def _waits_for_person(step: StepRecord) -> bool:
    return step.type == "llm" and not step.requested_tool_call_ids


def _some(step: StepRecord | None) -> tuple[StepRecord, ...]:
    return (step,) if step is not None else ()


def _seconds(duration_ns: int) -> str:
    return f"{duration_ns / NS_PER_SECOND:.1f} s"
