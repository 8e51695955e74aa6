# Choosing the final response of a response context (RFC 3261 §16.7 steps 6-7) from what the
# branches answered, as pure functions so the rules can be tested on their own.
#
# - Any 6xx wins (§16.7 step 6; 6xx also cancelled the other branches, §16.7 step 5 / §16.10).
# - After a CANCEL from upstream the answer is 487 (a branch's own 487 when there is one).
# - Otherwise the lowest class wins; within 4xx, 401/407/415/420/484 are preferred (step 6);
#   a real response beats one we synthesised (408 for a timed-out branch, 487 for a branch we
#   cancelled before it answered); then arrival order.
# - A 503 is never forwarded: it becomes 500 (step 6).
# - A chosen 401/407 carries every WWW-Authenticate and Proxy-Authenticate value of every 401/407
#   received, unmodified (step 7).
# - No response at all (every branch timed out): 408, except for non-INVITE requests, where a
#   transaction-stateful element must not send 408 (RFC 4320 §4.2): a timed-out branch does not
#   count, the best real answer goes up (a 500 rather than nothing), and with none nothing is
#   sent.
from __future__ import annotations

from collections.abc import Sequence
from typing import Final, NamedTuple

from .sip import Response

__all__ = ["Candidate", "choose", "merge_challenges"]

_PREFERRED_4XX: Final = frozenset({401, 407, 415, 420, 484})
_AUTH_HEADERS: Final = ("www-authenticate", "proxy-authenticate")


class Candidate(NamedTuple):
    """A branch's final answer: a real response (our Via still on top) or a synthetic status.
    (A NamedTuple: one is built per final response of every branch.)"""

    status: int
    response: Response | None
    order: int


def _rank(c: Candidate) -> tuple[int, int, int, int]:
    cls = c.status // 100
    preferred = 0 if cls == 4 and c.status in _PREFERRED_4XX else 1
    synthetic = 1 if c.response is None else 0
    return (cls, preferred, synthetic, c.order)


def choose(candidates: Sequence[Candidate], *, cancelled: bool, invite: bool) -> Candidate | None:
    """The best final response (status and response, or a status to synthesise), or None when
    nothing may be sent (non-INVITE, every branch timed out)."""
    if not candidates:
        return Candidate(status=487 if cancelled else 408, response=None, order=0)
    six = [c for c in candidates if c.status >= 600]
    if six:
        return min(six, key=_rank)
    if cancelled and invite:
        real = [c for c in candidates if c.status == 487 and c.response is not None]
        return real[0] if real else Candidate(status=487, response=None, order=0)
    if not invite:  # RFC 4320 §4.2: no 408 of ours; the best answer a device gave, if any
        answers = [c for c in candidates if c.response is not None]
        return min(answers, key=_rank) if answers else None
    return min(candidates, key=_rank)


def merge_challenges(best: Response, candidates: Sequence[Candidate]) -> Response:
    """Add the challenges of every other 401/407 to ``best`` (RFC 3261 §16.7 step 7)."""
    present = {(k, v) for k, v, _ in best.headers if k in _AUTH_HEADERS}
    out = best
    for c in candidates:
        if c.response is None or c.response is best or c.status not in (401, 407):
            continue
        for key, value, _ in c.response.headers:
            if key in _AUTH_HEADERS and (key, value) not in present:
                present.add((key, value))
                label = "WWW-Authenticate" if key == "www-authenticate" else "Proxy-Authenticate"
                out = out.insert_before(label, value, before="content-length")
    return out
