"""The `pathwatch` command: serve, demo, check."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from pathwatch.server.check import add_check_parser
from pathwatch.server.errors import StartupError

logger = logging.getLogger("pathwatch")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pathwatch", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the collector, workers, API and dashboard")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=6180, help="dashboard, API and OTLP/HTTP")
    serve.add_argument("--otlp-http-port", type=int, default=4318, help="0 turns it off")
    serve.add_argument("--otlp-grpc-port", type=int, default=4317, help="0 turns it off")
    serve.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="embedded PostgreSQL lives here (ignored with DATABASE_URL)",
    )
    serve.add_argument("--demo", action="store_true", help="run the demo agents once ready")
    serve.add_argument(
        "--settle-seconds",
        type=float,
        default=2.0,
        help="quiet time after the root span before a trace is complete",
    )
    serve.add_argument(
        "--stall-timeout",
        type=float,
        default=None,
        help="quiet time without a root span before a trace is stalled "
        "(default 300 s; 30 s with --demo, so the demo's hung agent shows soon)",
    )
    serve.add_argument("--log-format", choices=("text", "json"), default="text")
    serve.add_argument(
        "--role",
        default="collector,worker,web",
        help="roles to run, comma-separated: collector (OTLP receivers), worker (trace "
        "lifecycle and analysis), web (API and dashboard); processes with different roles "
        "share one DATABASE_URL",
    )

    demo = commands.add_parser("demo", help="send the demo agents' spans to a running server")
    demo.add_argument(
        "--endpoint",
        default="http://127.0.0.1:4318",
        help="OTLP/HTTP base URL of a running Pathwatch",
    )

    add_check_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(getattr(args, "log_format", "text"))
    try:
        if args.command == "serve":
            from pathwatch.server.serve import ServeOptions, serve

            return serve(
                ServeOptions(
                    host=args.host,
                    port=args.port,
                    otlp_http_port=args.otlp_http_port,
                    otlp_grpc_port=args.otlp_grpc_port,
                    data_dir=args.data_dir,
                    database_url=os.environ.get("DATABASE_URL") or None,
                    demo=args.demo,
                    settle_seconds=args.settle_seconds,
                    stall_timeout_seconds=_stall_timeout(args),
                    roles=_roles(args.role),
                )
            )
        if args.command == "demo":
            from pathwatch.server.demo import run_demo

            return run_demo(args.endpoint)
        if args.command == "check":
            from pathwatch.server.check import run_check

            return run_check(args)
    except StartupError as error:
        print(f"pathwatch: {error.message}", file=sys.stderr)  # noqa: T201
        return 2
    return 2


def _roles(text: str) -> frozenset[str]:
    from pathwatch.server.serve import ROLES

    roles = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = roles - ROLES
    if unknown or not roles:
        raise StartupError(
            "unknown_role",
            f"unknown role {', '.join(sorted(unknown)) or '(none)'}; choose from "
            f"{', '.join(sorted(ROLES))}",
        )
    return roles


def _stall_timeout(args: argparse.Namespace) -> float:
    if args.stall_timeout is not None:
        return float(args.stall_timeout)
    return 30.0 if args.demo else 300.0


def _configure_logging(log_format: str) -> None:
    if log_format == "json":
        from pathwatch.server.logs import JsonFormatter

        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        logging.basicConfig(level=logging.INFO, handlers=[handler])
    else:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


if __name__ == "__main__":
    sys.exit(main())
