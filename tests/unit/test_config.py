# Config (src/sansmidreg/_config.py): validation with messages that say what to change, the
# trace-header names of the conformance corpus (`Config.from_mapping`), compat=opensips flipping
# every DESIGN.md §5 policy, e_in clamping (OPENSIPS-BEHAVIOUR.md §3.7), endpoints and modes.
from __future__ import annotations

import dataclasses

import pytest

from sansmidreg import (
    Config,
    Endpoint,
    MidRegistrar,
    Mode,
    SeededIds,
    UsageError,
    parse_endpoint,
)

POLICIES = ("conservative_aor_window", "relay_new_devices", "pin_absorb_source",
            "strip_reply_expires", "retransmit_deregister")


def test_defaults_are_the_safe_policies() -> None:
    cfg = Config()
    assert cfg.mode is Mode.MIRROR and cfg.compat == "sansmidreg"
    assert all(getattr(cfg, name) for name in POLICIES)
    assert cfg.advertised_endpoint == Endpoint(host="127.0.0.1", port=5060)


def test_compat_opensips_switches_every_policy_off() -> None:
    cfg = Config(compat="opensips")
    assert not any(getattr(cfg, name) for name in POLICIES)


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().mode = Mode.AOR_THROTTLING  # type: ignore[misc]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"outgoing_expires": 0}, "outgoing_expires"),
    ({"min_expires": -1}, "min_expires"),
    ({"max_contacts": -2}, "max_contacts"),
    ({"min_expires": 100, "max_expires": 50}, "min_expires"),
    ({"local": ()}, "local"),
    ({"t1": 0.0}, "t1"),
    ({"t1": 5.0, "t2": 4.0}, "t2"),
    ({"max_message_size": 100}, "max_message_size"),
    ({"max_contacts_per_aor": 0}, "max_contacts_per_aor"),
    ({"contact_id_param": "ct id"}, "contact_id_param"),
    ({"contact_id_param": ""}, "contact_id_param"),
    ({"nat": "sometimes"}, "nat"),
    ({"compat": "kamailio"}, "compat"),
])
def test_bad_values_raise_usage_error_naming_the_field(kwargs: dict[str, object],
                                                       message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Config(**kwargs)  # type: ignore[arg-type]


def test_clamp_expires_keeps_zero_and_clamps_to_bounds() -> None:
    cfg = Config(min_expires=10, max_expires=3600)
    assert [cfg.clamp_expires(v) for v in (0, -5, 3, 10, 600, 7200)] == [0, 0, 10, 10, 600, 3600]
    unbounded = Config(min_expires=0, max_expires=0)
    assert unbounded.clamp_expires(1) == 1 and unbounded.clamp_expires(10**9) == 10**9


def test_default_expires_is_adjusted_into_the_bounds() -> None:
    assert Config(default_expires=7200, max_expires=3600).default_expires == 3600
    assert Config(default_expires=2, min_expires=5).default_expires == 5


def test_from_mapping_accepts_the_trace_header_keys() -> None:
    # the `# config:` line of ../shared/oracle/traces/refresh-ctthrottle.txt
    line = ("mode=contact-throttling outgoing_expires=600 min_expires=5 max_expires=3600 "
            "default_expires=3600 use_domain=false record_route=true compat=opensips")
    cfg = Config.from_mapping(dict(item.split("=", 1) for item in line.split()))
    assert cfg.mode is Mode.CONTACT_THROTTLING and cfg.outgoing_expires == 600
    assert (cfg.min_expires, cfg.max_expires, cfg.default_expires) == (5, 3600, 3600)
    assert cfg.use_domain is False and cfg.record_route is True and cfg.compat == "opensips"
    assert not cfg.relay_new_devices


def test_from_mapping_addresses_aliases_and_unknown_keys() -> None:
    cfg = Config.from_mapping({
        "mode": "aorthrottle", "upstream": "udp:127.0.0.1:5080", "mid-registrar":
        "udp:127.0.0.1:5060, tcp:127.0.0.1:5060", "at_escape_str": "-at-",
        "contact_id_insertion": "ct-username", "domains": "a.test b.test", "t1": "0.25",
        "label": "kept",
    })
    assert cfg.mode is Mode.AOR_THROTTLING and cfg.at_escape == "-at-"
    assert cfg.upstream == Endpoint(host="127.0.0.1", port=5080)
    assert cfg.local[1] == Endpoint(transport="tcp", host="127.0.0.1", port=5060)
    assert cfg.contact_id_in_user and cfg.domains == ("a.test", "b.test") and cfg.t1 == 0.25
    assert cfg.extra == (("label", "kept"),)


@pytest.mark.parametrize(("key", "value"), [
    ("mode", "4"), ("outgoing_expires", "soon"), ("use_domain", "perhaps"),
    ("upstream", "nowhere"), ("t1", "fast")])
def test_from_mapping_bad_value_names_the_key(key: str, value: str) -> None:
    with pytest.raises(UsageError, match=key):
        Config.from_mapping({key: value})


def test_from_mapping_overrides_win() -> None:
    cfg = Config.from_mapping({"mode": "mirror"}, mode=Mode.AOR_THROTTLING)
    assert cfg.mode is Mode.AOR_THROTTLING


@pytest.mark.parametrize(("text", "mode"), [
    ("0", Mode.MIRROR), ("1", Mode.CONTACT_THROTTLING), ("2", Mode.AOR_THROTTLING),
    ("contact", Mode.CONTACT_THROTTLING), ("AOR_Throttling", Mode.AOR_THROTTLING),
    ("ctthrottle", Mode.CONTACT_THROTTLING)])
def test_mode_parse_aliases(text: str, mode: Mode) -> None:
    assert Mode.parse(text) is mode


@pytest.mark.parametrize(("text", "endpoint"), [
    ("127.0.0.1:5080", Endpoint(host="127.0.0.1", port=5080)),
    ("tcp:[::1]:5080", Endpoint(transport="tcp", host="::1", port=5080)),
    ("TLS:example.test:5061", Endpoint(transport="tls", host="example.test", port=5061)),
])
def test_parse_endpoint(text: str, endpoint: Endpoint) -> None:
    assert parse_endpoint(text) == endpoint


@pytest.mark.parametrize("text", ["127.0.0.1", "h:0", "h:70000", ":5060", "udp:h:x"])
def test_parse_endpoint_rejects_bad_addresses(text: str) -> None:
    with pytest.raises(UsageError, match="HOST:PORT"):
        parse_endpoint(text)


def test_endpoint_str_and_reliability() -> None:
    assert str(Endpoint(host="::1", port=5060, transport="tcp")) == "tcp:[::1]:5060"
    assert not Endpoint(host="h", port=1).is_reliable
    assert Endpoint(host="h", port=1, transport="tls").is_reliable


def test_core_refuses_something_that_is_not_a_config() -> None:
    with pytest.raises(UsageError, match="Config"):
        MidRegistrar({"mode": "mirror"}, ids=SeededIds(1))  # type: ignore[arg-type]
