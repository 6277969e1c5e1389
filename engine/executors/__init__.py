"""Executors: the rule pack's plan compiled to a matching backend (durable_rules, Polars)."""

__all__ = ["columnar", "durable", "facts", "plan"]
