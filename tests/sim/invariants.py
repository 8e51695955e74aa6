# The invariants of issue 3 (deliverable 5), checked against a simulated network:
#
# (a) every live local contact is reachable through a live binding at the main registrar, and that
#     binding lives at least as long as the contact (so it stays reachable with no further
#     traffic): contact/mirror modes through the binding carrying its contact id, AOR mode
#     through the AOR's aggregate binding (AORs with a relayed REGISTER in flight are judged
#     when its answer is in: the main registrar applies a request before we see its 2xx);
# (b) no binding the main registrar holds for us outlives every local contact it reaches by more
#     than one retransmission timeout (64*T1), unless our de-REGISTER of it failed (the simulated
#     registrar refused or lost it, and the core counted it);
# (c) every 2xx a UA gets lists only device contacts with the device-side lifetimes (its own no
#     longer than it asked), and no Expires header unless the policy lets the main registrar's
#     one through (compat=opensips in AOR mode);
# plus: the core never counts an internal error, and the main registrar saw nothing malformed.
# (d) and (e) are checked by the tests themselves (early handle_timer; replay()).
#
# The local side is read from the core's location table: the one place tests look inside.
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sansmidreg import Config, MidRegistrar, Mode
from sansmidreg._bindings import Contact
from sansmidreg.sip import SipParseError, Uri, unescape

from .mainreg import Binding, SimMainRegistrar
from .network import Network

__all__ = ["Invariants", "World", "local_contacts", "settled_contacts"]


class World(Protocol):
    """What invariant (a) looks at: a core, its main registrar, the time (a Network, or a
    benchmark's own event loop)."""

    @property
    def config(self) -> Config: ...

    @property
    def core(self) -> MidRegistrar: ...

    @property
    def registrar(self) -> SimMainRegistrar: ...

    @property
    def now(self) -> float: ...


def local_contacts(core: MidRegistrar, now: float) -> list[Contact]:
    """The live contacts of the core's location table."""
    return [c for c in core._ctx.table.contacts() if c.expires_at > now]


def settled_contacts(core: MidRegistrar, now: float) -> list[Contact]:
    """Live contacts of AORs with no relayed REGISTER in flight: while one is, the main
    registrar may already have applied it (removed or shortened a binding) and the core not yet
    (its 2xx is on the way), so those AORs are judged once the answer is in."""
    table = core._ctx.table
    return [c for c in table.contacts() if c.expires_at > now
            and (aor := table.aors.get(c.aor)) is not None and aor.pending == 0]


@dataclass(slots=True)
class Invariants:
    """Attach with ``network.hooks.append(inv)``; violations collect in ``violations``."""

    tolerance: float = 1e-6
    """Slack for the network: the main registrar starts a lifetime when a request reaches it,
    we start ours when its 2xx reaches us, so ours may end up to a round trip later."""
    check_orphans: bool = True
    violations: list[str] = field(default_factory=list)
    orphan_since: dict[tuple[str, float], float] = field(default_factory=dict)
    """(binding key, its expiry: one lease) -> when it was first seen reaching nothing."""
    _answers_seen: dict[int, int] = field(default_factory=dict)
    _labels: dict[str, str | None] = field(default_factory=dict)

    def __call__(self, net: Network) -> None:
        self.check(net)

    def check(self, net: Network) -> None:
        self.reachable(net)
        if self.check_orphans:
            self.orphans(net)
        self.replies(net)
        stats = net.core.stats()
        if stats.internal_errors:
            self.violations.append(f"internal errors: {net.drops[-1:]}")
        if net.registrar.violations:
            self.violations.extend(net.registrar.violations)
            net.registrar.violations.clear()

    def raise_if_any(self) -> None:
        if self.violations:
            raise AssertionError("invariant violations:\n" + "\n".join(self.violations[:20]))

    # -- (a) -------------------------------------------------------------------------------------
    def _reaching(self, net: World, now: float) -> dict[str, list[Binding]]:
        """Main-registrar bindings pointing at us, by what they reach: 'ctid:N' or 'aor:KEY'."""
        out: dict[str, list[Binding]] = {}
        labels = self._labels
        for b in net.registrar.live(now - self.tolerance):  # network delay: see `tolerance`
            label = labels.get(b.uri, "")
            if label == "":
                label = labels[b.uri] = self._label_of(b.uri, net.config)
            if label is not None:
                out.setdefault(label, []).append(b)
        return out

    @staticmethod
    def _label_of(text: str, cfg: Config) -> str | None:
        """What a binding's URI reaches, 'ctid:N' or 'aor:KEY'; None when it is not ours."""
        adv = cfg.advertised_endpoint
        try:
            uri = Uri.parse(text)
        except SipParseError:
            return None
        if (uri.host, uri.port or 5060) != (adv.host, adv.port):
            return None
        if cfg.mode is Mode.AOR_THROTTLING:
            user = unescape(uri.user or "")
            if cfg.at_escape != "%40":
                user = user.replace(cfg.at_escape, "@", 1)
            return "aor:" + user
        ident = uri.user if cfg.contact_id_in_user else uri.param(cfg.contact_id_param)
        return f"ctid:{ident}"

    @staticmethod
    def _label(contact: Contact, cfg: Config) -> str:
        if cfg.mode is Mode.AOR_THROTTLING:
            return "aor:" + contact.aor
        return f"ctid:{contact.ctid}"

    def reachable(self, net: World) -> None:
        now = net.now
        cfg = net.config
        reaching = self._reaching(net, now)
        for contact in settled_contacts(net.core, now):
            bindings = reaching.get(self._label(contact, cfg), [])
            if not bindings:
                self.violations.append(
                    f"(a) t={now}: local contact {contact.uri} (aor {contact.aor}, ctid "
                    f"{contact.ctid}, until {contact.expires_at}) has no upstream binding")
                continue
            best = max(b.expires_at for b in bindings)
            if best + self.tolerance < contact.expires_at:
                self.violations.append(
                    f"(a) t={now}: local contact {contact.uri} lives until {contact.expires_at}, "
                    f"its upstream binding only until {best}")

    # -- (b) -------------------------------------------------------------------------------------
    def orphans(self, net: Network) -> None:
        now = net.now
        cfg = net.config
        alive = {self._label(c, cfg) for c in local_contacts(net.core, now)}
        limit = 64 * cfg.t1 + 2 * net.latency + self.tolerance
        current: set[tuple[str, float]] = set()
        for label, bindings in self._reaching(net, now).items():
            if label in alive:
                continue
            for b in bindings:
                lease = (b.key, b.expires_at)
                current.add(lease)
                since = self.orphan_since.setdefault(lease, now)
                if now - since > limit and b.key not in net.registrar.failed_deregisters:
                    self.violations.append(
                        f"(b) t={now}: upstream binding {b.uri} (until {b.expires_at}) has "
                        f"reached no local contact since {since}")
                    self.orphan_since[lease] = now  # report once per period
        for key in list(self.orphan_since):
            if key not in current:
                del self.orphan_since[key]
        failed = len(net.registrar.failed_deregisters)
        if failed and net.core.stats().deregisters_sent == 0:
            self.violations.append("(b) a de-REGISTER failed that the core never sent")

    # -- (c) -------------------------------------------------------------------------------------
    def replies(self, net: Network) -> None:
        cfg = net.config
        adv = cfg.advertised_endpoint
        expires_may_leak = not cfg.strip_reply_expires and cfg.mode is Mode.AOR_THROTTLING
        for ua in net.uas.values():
            start = self._answers_seen.get(id(ua), 0)
            for answer in ua.answers[start:]:
                resp = answer.response
                if not 200 <= resp.status < 300:
                    continue
                where = f"(c) t={answer.at}: 2xx to {ua.user}:{ua.port} CSeq {answer.cseq}"
                if resp.has("expires") and not expires_may_leak:
                    self.violations.append(f"{where} carries Expires: {resp.get('expires')}")
                try:
                    items = resp.contacts.items
                except SipParseError as exc:
                    self.violations.append(f"{where}: bad Contact {exc}")
                    continue
                for item in items:
                    uri = item.uri
                    if (uri.host, uri.port or 5060) == (adv.host, adv.port):
                        self.violations.append(f"{where} lists an upstream contact {uri}")
                    raw = item.expires
                    if raw is None or not raw.isdigit():
                        self.violations.append(f"{where}: contact {uri} without ;expires")
                        continue
                    if cfg.max_expires and int(raw) > cfg.max_expires:
                        self.violations.append(f"{where}: {uri};expires={raw} > max_expires")
                    if str(uri) == ua.contact_uri and answer.asked:
                        own = cfg.clamp_expires(answer.asked)
                        if int(raw) > own:
                            self.violations.append(
                                f"{where}: own contact expires={raw}, asked {answer.asked}")
            self._answers_seen[id(ua)] = len(ua.answers)
