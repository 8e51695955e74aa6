# The location table: AOR -> contacts, and the upstream registration state behind them.
#
# Invariants (checked by tests/property/test_registrar_machine.py):
# - every live Contact is reachable from `aors[contact.aor]` and, by id, from `by_ctid`;
# - an Aor with no contact and no pending work is removed (no dangling empty AORs, OpenSIPS #1449);
# - contact ids are unique among live contacts and stable over refreshes of the same binding.
#
# Memory matters (DESIGN.md: <= 1 KiB per contact at 1M contacts): Contact and Aor are slotted
# classes holding strings and numbers only; URIs are kept as text and parsed when needed; the
# upstream data of a binding (what our de-REGISTER needs) lives in one shared Upstream object.
from __future__ import annotations

from collections.abc import Iterator

from ._actions import Endpoint
from ._timers import TimerHandle

__all__ = ["Aor", "Contact", "LocationTable", "Upstream"]


class Upstream:
    """What the main registrar holds for us: one binding (a contact in contact-throttling mode,
    the aggregate contact of an AOR in AOR mode), and what a de-REGISTER of it needs
    (OPENSIPS-BEHAVIOUR.md §0.3: F, T, ru, CID, Seq, Con, expO, LRTs)."""

    __slots__ = ("from_uri", "to_uri", "request_uri", "call_id", "cseq", "contact_uri",
                 "granted", "refreshed_at", "expires_at")

    def __init__(self, *, from_uri: str, to_uri: str, request_uri: str, call_id: str, cseq: int,
                 contact_uri: str, granted: int, refreshed_at: float) -> None:
        self.from_uri = from_uri
        self.to_uri = to_uri
        self.request_uri = request_uri
        self.call_id = call_id
        self.cseq = cseq
        self.contact_uri = contact_uri
        self.granted = granted  # expO: lifetime the main registrar granted (s)
        self.refreshed_at = refreshed_at  # LRTs: time of its last 2xx
        self.expires_at = refreshed_at + granted


class Contact:
    """One device binding kept locally."""

    __slots__ = ("aor", "uri", "ctid", "expires_at", "lifetime", "q", "call_id", "cseq",
                 "updated_at", "registered_at", "source", "path", "instance", "reg_id", "methods",
                 "upstream", "timer")

    def __init__(self, *, aor: str, uri: str, ctid: int, source: Endpoint) -> None:
        self.aor = aor
        self.uri = uri  # the device's Contact URI, as it wrote it (inside <>)
        self.ctid = ctid
        self.expires_at = 0.0
        self.lifetime = 0  # e_local of the last update (seconds)
        self.q: str | None = None  # as written, e.g. "0.5"
        self.call_id = ""
        self.cseq = 0
        self.updated_at = 0.0
        self.registered_at = 0.0
        self.source = source
        self.path: tuple[str, ...] = ()
        self.instance: str | None = None
        self.reg_id: int | None = None
        self.methods: frozenset[str] | None = None
        self.upstream: Upstream | None = None  # contact-throttling / mirror: its upstream binding
        self.timer: TimerHandle[object] | None = None  # its entry in the deadline heap

    def remaining(self, now: float) -> int:
        """Whole seconds of life left (what a UA is told in ;expires=)."""
        left = self.expires_at - now
        return int(left + 0.5) if left > 0 else 0


class Aor:
    """An address-of-record with its contacts (few: a list is faster than a dict here)."""

    __slots__ = ("key", "contacts", "upstream", "pending", "pinned")

    def __init__(self, key: str) -> None:
        self.key = key
        self.contacts: list[Contact] = []
        self.upstream: Upstream | None = None  # AOR-throttling: the aggregate binding
        self.pending = 0  # relayed REGISTERs in flight (keeps an empty Aor alive)
        self.pinned: Endpoint | None = None  # source of the last relayed, accepted REGISTER

    def live(self, now: float) -> list[Contact]:
        return [c for c in self.contacts if c.expires_at > now]

    def find(self, uri: str) -> Contact | None:
        """The contact registered with exactly this URI text (fast path; see uri_match)."""
        for c in self.contacts:
            if c.uri == uri:
                return c
        return None


class LocationTable:
    """AOR records and the contact-id index."""

    __slots__ = ("aors", "by_ctid", "contact_count")

    def __init__(self) -> None:
        self.aors: dict[str, Aor] = {}
        self.by_ctid: dict[int, Contact] = {}
        self.contact_count = 0

    def get_or_create(self, key: str) -> Aor:
        aor = self.aors.get(key)
        if aor is None:
            aor = self.aors[key] = Aor(key)
        return aor

    def add(self, aor: Aor, contact: Contact) -> None:
        aor.contacts.append(contact)
        self.by_ctid[contact.ctid] = contact
        self.contact_count += 1

    def remove(self, contact: Contact) -> None:
        aor = self.aors.get(contact.aor)
        if aor is not None and contact in aor.contacts:
            aor.contacts.remove(contact)
            self.contact_count -= 1
            if self.by_ctid.get(contact.ctid) is contact:
                del self.by_ctid[contact.ctid]
            self.discard_if_empty(aor)

    def discard_if_empty(self, aor: Aor) -> None:
        if not aor.contacts and aor.pending == 0 and aor.upstream is None:
            if self.aors.get(aor.key) is aor:
                del self.aors[aor.key]

    def contacts(self) -> Iterator[Contact]:
        for aor in self.aors.values():
            yield from aor.contacts
