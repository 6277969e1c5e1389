"""casecheck: checks case records against the service standards of 甬政办发〔2020〕36号.

The pipeline is parse → validate (``cases``) → measure (``measures``, on the ``calendar`` index) →
match (``executors``) → verdicts (``verdicts``) → aggregate → report. ``Engine`` ties it together.
"""

from typing import TYPE_CHECKING, Any

__all__ = ["Engine"]

if TYPE_CHECKING:
    from engine.core import Engine


def __getattr__(name: str) -> Any:
    # Lazy so that `casecheck calendar …` does not pay for loading durable_rules and Polars.
    if name == "Engine":
        from engine.core import Engine

        return Engine
    raise AttributeError(name)
