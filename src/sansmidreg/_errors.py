# Errors raised to the embedding program. Remote input never raises (DESIGN.md §2.4): only local
# misuse -- a bad configuration, time going backwards, calling an entry point wrongly -- raises
# UsageError, whose message says what to change.
from __future__ import annotations

__all__ = ["UsageError"]


class UsageError(Exception):
    """The embedding program used the core wrongly; the message says what to change."""
