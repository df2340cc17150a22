"""Rules files are bounded: no YAML aliases, a size limit and a rule count limit."""

from __future__ import annotations

import time

import pytest

from pathwatch.server.analysis.rules import (
    MAX_RULES,
    MAX_RULES_FILE_CHARS,
    RulesFileError,
    load_rules,
)


def _nested_aliases(levels: int) -> str:
    lines = ["version: 1", "defs:", '  a0: &a0 ["lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        previous = f"*a{level - 1}"
        lines.append(f"  a{level}: &a{level} [{', '.join([previous] * 10)}]")
    lines += ["rules:", f"  - {{id: s, kind: max_steps, max: 40, description: *a{levels - 1}}}"]
    return "\n".join(lines) + "\n"


def test_rules_file_with_nested_aliases_is_refused_at_once() -> None:
    started = time.monotonic()

    with pytest.raises(RulesFileError) as refused:
        load_rules(_nested_aliases(9))

    assert time.monotonic() - started < 1
    assert "aliases" in refused.value.message
    assert len(refused.value.message) < 200


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 1\nrules: []\n" + "#" * MAX_RULES_FILE_CHARS, "the limit is"),
        (
            "version: 1\nrules:\n"
            + "".join(f"  - {{id: r{i}, kind: max_steps, max: 5}}\n" for i in range(MAX_RULES + 1)),
            "rules",
        ),
    ],
    ids=["too long", "too many rules"],
)
def test_rules_file_over_a_bound_is_refused(text: str, expected: str) -> None:
    with pytest.raises(RulesFileError) as refused:
        load_rules(text)

    assert expected in refused.value.message
