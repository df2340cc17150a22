"""Collector: OTLP receive, decode, normalise to steps, write."""
