"""Analysis throughput: traces analysed per second, in memory, no database.

Builds 10,000 synthetic traces of 20 to 50 steps (model turns and tool calls, some with
repeated calls and failures, tool definitions offered), then times `analyse_trace` with
the built-in detectors, a history for `runaway`, and the airline example rules.

    .venv/bin/python benchmarks/analysis.py [--traces 10000] [--seed 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
from pathlib import Path

from pathwatch.server.analysis.analyse import analyse_trace
from pathwatch.server.analysis.records import TraceRecord, step_record, trace_record
from pathwatch.server.analysis.rules import load_rules
from pathwatch.server.steps import Step

RULES_FILE = Path(__file__).parent.parent / "examples" / "rules" / "airline.yaml"
TOOLS = ("get_reservation_details", "search_direct_flight", "cancel_reservation", "think")
DEFINITIONS = [
    {"type": "function", "name": name, "parameters": {"type": "object"}} for name in TOOLS
]
MS = 1_000_000


def synthetic_trace(number: int, rng: random.Random) -> TraceRecord:
    root_id = f"{number:08x}00000000"
    steps = [_record(_step("agent", "bench-agent"), root_id, None, 0)]
    for position in range(1, rng.randint(20, 50)):
        parent = root_id
        if position % 2:
            step = _step("llm", "gpt-4o", definitions=DEFINITIONS)
        else:
            tool = rng.choice(TOOLS)
            reservation = rng.choice(("R1", "R2")) if rng.random() < 0.9 else "R3"
            step = _step("tool", tool, args={"reservation_id": reservation}, result=reservation)
        steps.append(_record(step, f"{number:08x}{position:08x}", parent, position * 10 * MS))
    return trace_record(f"{number:032x}", steps, status="complete")


def _step(kind: str, name: str, *, args: object = None, result: str | None = None,
          definitions: object = None) -> Step:  # fmt: skip
    return Step(
        type=kind, label=f"{kind}:{name}", name=name, tool_name=name if kind == "tool" else None,
        tool_call_id=None, tool_arguments=args, tool_result=result, tool_definitions=definitions,
        model=None, input_tokens=None, output_tokens=None, is_error=False, token_logprobs=None,
        agent_name="bench-agent" if kind == "agent" else None, agent_version=None,
        service_name="bench",
    )  # fmt: skip


def _record(step: Step, span_id: str, parent: str | None, start_ns: int):
    return step_record(
        step,
        span_id=span_id,
        parent_span_id=parent,
        span_name=step.label,
        start_time_ns=start_ns,
        end_time_ns=start_ns + 5 * MS,
        status_code=0,
        attributes={},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    traces = [synthetic_trace(number, rng) for number in range(args.traces)]
    rules = load_rules(RULES_FILE.read_text())
    history = [rng.randint(20, 50) for _ in range(200)]
    steps = sum(len(trace.steps) for trace in traces)

    started = time.perf_counter()
    findings = sum(len(analyse_trace(t, rules=rules, history=history)) for t in traces)
    elapsed = time.perf_counter() - started

    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"{len(traces)} traces, {steps} steps ({steps / len(traces):.1f} per trace), 1 process")
    print(f"rules: {RULES_FILE.name} ({len(rules.rules)} rules); history of {len(history)} runs")
    print(f"{findings} findings in {elapsed:.2f} s: {len(traces) / elapsed:,.0f} traces/s")


if __name__ == "__main__":
    main()
