"""Pathwatch: observability for AI agents: OTLP in, execution paths checked."""
