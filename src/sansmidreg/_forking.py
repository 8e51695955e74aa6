# Requests toward registered devices (issue 4 replaces this with lookup + stateful parallel
# forking, RFC 3261 §16). Until then every non-REGISTER request is refused with 501, ACKs are
# dropped, and responses no transaction claims are dropped.
from __future__ import annotations

from ._actions import Action, Drop, Endpoint
from ._context import Context
from .sip import Request, Response

__all__ = ["Proxy"]


class Proxy:
    __slots__ = ("ctx",)

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def handle_request(self, req: Request, source: Endpoint, now: float) -> list[Action]:
        if req.method == "ACK":
            return [Drop(reason="stray-ack", detail="ACK matching no transaction", source=source)]
        return [self.ctx.reply(req, source, 501, "Not Implemented")]

    def handle_response(self, resp: Response, source: Endpoint, now: float) -> list[Action]:
        return [Drop(reason="stray-response", detail=f"{resp.status} matching no transaction",
                     source=source)]

    def on_timer(self, key: object, now: float) -> list[Action]:
        return []
