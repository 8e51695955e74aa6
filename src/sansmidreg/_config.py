# Config: the frozen, validated settings of one MidRegistrar, and the policies of DESIGN.md §5.
#
# Field names follow OpenSIPS's module parameters where one exists (outgoing_expires, min_expires,
# at_escape_str -> at_escape, contact_id_param, use_domain ...), so that the `# config:` line of a
# conformance trace maps onto them (`Config.from_mapping`). `compat="opensips"` switches every
# DESIGN.md §5 policy to OpenSIPS's choice; the defaults are the safe behaviour.
from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from ._actions import Endpoint, Transport
from ._errors import UsageError

__all__ = ["Config", "Mode", "NatPolicy", "parse_endpoint"]

NatPolicy: TypeAlias = Literal["detect", "always", "never"]


class Mode(enum.Enum):
    """The three working modes (OPENSIPS-BEHAVIOUR.md §1.1-§1.3)."""

    MIRROR = "mirror"
    CONTACT_THROTTLING = "contact-throttling"
    AOR_THROTTLING = "aor-throttling"

    @classmethod
    def parse(cls, text: str) -> Mode:
        key = text.strip().lower().replace("_", "-")
        aliases = {"0": "mirror", "1": "contact-throttling", "2": "aor-throttling",
                   "contact": "contact-throttling", "aor": "aor-throttling",
                   "ctthrottle": "contact-throttling", "aorthrottle": "aor-throttling"}
        key = aliases.get(key, key)
        for mode in cls:
            if mode.value == key:
                return mode
        raise UsageError(f"mode {text!r}: use mirror, contact-throttling or aor-throttling")


def parse_endpoint(text: str, default_transport: Transport = "udp") -> Endpoint:
    """``udp:127.0.0.1:5080``, ``127.0.0.1:5080``, ``tcp:[::1]:5080`` -> Endpoint."""
    rest = text.strip()
    transport: str = default_transport
    for prefix in ("udp:", "tcp:", "tls:"):
        if rest.lower().startswith(prefix):
            transport, rest = prefix[:-1], rest[len(prefix):]
            break
    if rest.startswith("["):
        host, sep, port_text = rest[1:].partition("]:")
    else:
        host, sep, port_text = rest.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"address {text!r}: write it as [udp:|tcp:|tls:]HOST:PORT")
    assert transport in ("udp", "tcp", "tls")
    return Endpoint(transport=transport, host=host, port=int(port_text))  # type: ignore[arg-type]


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise UsageError(f"{text!r} is not a boolean: use true or false")


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Everything a MidRegistrar needs to know; validated on construction."""

    # -- topology -----------------------------------------------------------------------------
    mode: Mode = Mode.MIRROR
    upstream: Endpoint = Endpoint(host="127.0.0.1", port=5080)
    """The main registrar: relayed REGISTERs and our de-REGISTERs go there."""
    upstream_uri: str | None = None
    """Request-URI of relayed REGISTERs; None keeps the UA's Request-URI."""
    local: tuple[Endpoint, ...] = (Endpoint(host="127.0.0.1", port=5060),)
    """Our own addresses (the system under test). The first is advertised unless ``advertised``."""
    advertised: Endpoint | None = None
    """Host and port written into our Via, Contacts and Record-Route (NAT'd deployments)."""
    domains: tuple[str, ...] = ()
    """Accepted registration domains (To host); empty accepts every domain."""
    trusted: tuple[str, ...] = ()
    """Hosts besides the upstream one allowed to send requests toward registered devices."""

    # -- registration (OpenSIPS module parameters) ------------------------------------------------
    outgoing_expires: int = 3600
    min_expires: int = 10
    max_expires: int = 3600
    default_expires: int = 3600
    max_contacts: int = 0
    """Per-AOR limit of local contacts (0: no limit beyond ``max_contacts_per_aor``)."""
    force_registration: bool = False
    """Over ``max_contacts``: drop the oldest contact instead of refusing the new one."""
    contact_id_param: str = "ctid"
    contact_id_in_user: bool = False
    """OpenSIPS ``ct-username``: put the contact id in the user part instead of a URI param."""
    at_escape: str = "%40"
    use_domain: bool = False
    """AOR = user@domain (True) or user only (False), as usrloc's ``use_domain``."""
    case_sensitive: bool = True
    """Only the domain of the AOR is lower-cased (True) or the whole AOR (False)."""
    allow_dup_cseq: bool = True
    """Accept an absorbed refresh repeating the last CSeq of its Call-ID (OpenSIPS 3.6 default)."""

    # -- proxy behaviour ---------------------------------------------------------------------------
    record_route: bool = True
    nat: NatPolicy = "detect"
    untrusted: Literal["reject", "drop"] = "reject"
    """A request toward a device from a source not in ``upstream``/``trusted``: answer 403
    (``reject``) or discard it silently (``drop``)."""

    # -- RFC 3261 timers (seconds) --------------------------------------------------------------
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_c: float = 180.0
    """Timer C of every proxied INVITE branch (§16.6 step 11, §16.8). 180 s is the default the
    project asked for; RFC 3261 says it "MUST be larger than 3 minutes", so a strictly
    conforming deployment sets 181 or more."""

    # -- limits -------------------------------------------------------------------------------
    max_message_size: int = 65535
    max_headers: int = 256
    max_aors: int = 1_000_000
    max_contacts_per_aor: int = 64

    # -- DESIGN.md §5 policies (defaults are the safe choice; compat="opensips" flips them) -------
    compat: Literal["sansmidreg", "opensips"] = "sansmidreg"
    conservative_aor_window: bool = True
    """§5.1: AOR mode forwards when *any* contact would outlive the upstream binding."""
    relay_new_devices: bool = True
    """§5.2: AOR mode relays a REGISTER that adds a device unknown to us (so it is authenticated)."""
    pin_absorb_source: bool = True
    """§5.2: absorb only refreshes from the transport/source of the last relayed REGISTER."""
    strip_reply_expires: bool = True
    """§5.4: never let the main registrar's Expires header reach the UA (all modes)."""
    retransmit_deregister: bool = True
    """§5.5: our own de-REGISTERs are retransmitted like any non-INVITE client transaction."""

    extra: tuple[tuple[str, str], ...] = field(default=())
    """Trace/config keys that have no field here (kept, e.g. for reports)."""

    def __post_init__(self) -> None:
        if self.compat == "opensips":
            for name in ("conservative_aor_window", "relay_new_devices", "pin_absorb_source",
                         "strip_reply_expires", "retransmit_deregister"):
                object.__setattr__(self, name, False)
        for name in ("min_expires", "max_expires", "default_expires", "max_contacts"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must be >= 0 (got {getattr(self, name)})")
        if self.outgoing_expires <= 0:
            raise UsageError("outgoing_expires must be > 0 seconds")
        if self.max_expires and self.min_expires > self.max_expires:
            raise UsageError("min_expires must not exceed max_expires")
        if not self.local:
            raise UsageError("local must name at least one address of ours")
        for name in ("t1", "t2", "t4", "timer_c"):
            if getattr(self, name) <= 0:
                raise UsageError(f"{name} must be > 0 seconds")
        if self.t2 < self.t1:
            raise UsageError("t2 must be >= t1 (RFC 3261 §17.1.2.2)")
        if self.max_message_size < 512 or self.max_headers < 8:
            raise UsageError("max_message_size must be >= 512 and max_headers >= 8")
        if self.max_contacts_per_aor < 1 or self.max_aors < 1:
            raise UsageError("max_contacts_per_aor and max_aors must be >= 1")
        if not self.contact_id_param or not all(c.isalnum() or c in "-_.!~*'" for c in
                                                self.contact_id_param):
            raise UsageError("contact_id_param must be a URI parameter token, e.g. ctid")
        if self.nat not in ("detect", "always", "never"):
            raise UsageError("nat must be detect, always or never")
        if self.untrusted not in ("reject", "drop"):
            raise UsageError("untrusted must be reject or drop")
        if self.compat not in ("sansmidreg", "opensips"):
            raise UsageError("compat must be sansmidreg or opensips")
        # OpenSIPS adjusts default_expires into [min, max] at start-up.
        clamped = self.clamp_expires(self.default_expires)
        object.__setattr__(self, "default_expires", clamped or self.default_expires)

    @property
    def advertised_endpoint(self) -> Endpoint:
        return self.advertised or self.local[0]

    def clamp_expires(self, value: int) -> int:
        """e_in: a requested lifetime clamped to [min_expires, max_expires]; 0 stays 0."""
        if value <= 0:
            return 0
        if self.max_expires and value > self.max_expires:
            value = self.max_expires
        if self.min_expires and value < self.min_expires:
            value = self.min_expires
        return value

    @classmethod
    def from_mapping(cls, values: Mapping[str, str], **overrides: object) -> Config:
        """Build a Config from string key/values (a trace's ``# config:`` line, CLI flags).

        Unknown keys are kept in ``extra``; a bad value raises UsageError naming the key.
        """
        kwargs: dict[str, object] = {}
        extra: list[tuple[str, str]] = []
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for raw_key, text in values.items():
            key = raw_key.strip().lower().replace("-", "_")
            key = {"at_escape_str": "at_escape", "mid_registrar": "local",
                   "contact_id_insertion": "contact_id_insertion"}.get(key, key)
            try:
                if key == "contact_id_insertion":
                    kwargs["contact_id_in_user"] = text.strip().lower().startswith("ct-user")
                elif key not in fields or key == "extra":
                    extra.append((raw_key, text))
                elif key == "mode":
                    kwargs[key] = Mode.parse(text)
                elif key in ("upstream", "advertised"):
                    kwargs[key] = parse_endpoint(text)
                elif key == "local":
                    kwargs[key] = tuple(parse_endpoint(t) for t in text.replace(",", " ").split())
                elif key in ("domains", "trusted"):
                    kwargs[key] = tuple(t for t in text.replace(",", " ").split() if t)
                else:
                    kind = fields[key].type
                    if kind == "bool":
                        kwargs[key] = _bool(text)
                    elif kind == "int":
                        kwargs[key] = int(text)
                    elif kind == "float":
                        kwargs[key] = float(text)
                    else:
                        kwargs[key] = text.strip()
            except (ValueError, UsageError) as exc:
                raise UsageError(f"config key {raw_key}={text!r}: {exc}") from None
        kwargs.update(overrides)
        if extra:
            kwargs["extra"] = tuple(extra)
        try:
            return cls(**kwargs)  # type: ignore[arg-type]
        except TypeError as exc:
            raise UsageError(f"config: {exc}") from None
