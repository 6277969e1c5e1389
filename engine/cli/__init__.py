"""The ``casecheck`` command line: check, scan, watch, serve, generate, schema and demo; the ``rules``
(list, show, validate, packs, diff, test) and ``calendar`` (is-workday, between, add, info, validate) groups.

Output meant for programs (verdicts) goes to stdout as JSON; problems go to stderr with the record's
line and JSON path, so a pipeline never mistakes an error report for a verdict.
"""

from engine.cli import calendar, checking, rules, scanning, service
from engine.cli.common import app

__all__ = ["app", "calendar", "checking", "rules", "scanning", "service"]
