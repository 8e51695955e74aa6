# The `sansmidreg` command: `serve` (run the mid-registrar on a backend) and `conformance`
# (delegated to sansmidreg.conformance.cli_main). Settings come from a TOML file (--config), then
# flags; the core's Config validates the result and every error says what and where (exit 2).
# A listening address that cannot be bound is exit 1 with the address and the reason. SIGINT and
# SIGTERM stop gracefully (exit 0); SIGUSR1 logs the statistics, as --stats-interval does.
from __future__ import annotations

import argparse
import logging
import re
import signal
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sansmidreg import Config, Endpoint, MidRegistrar, SeededIds, SystemIds, UsageError
from sansmidreg import __version__, parse_endpoint

from ._common import LOG, ListenError, ServerOptions, format_stats
from .config_file import ConfigFileError, FileSettings, check_registrar, load_config_file
from .record import TraceRecorder

__all__ = ["main"]

BACKENDS: Final = ("sockets", "anyio", "trio")
DEFAULT_LISTEN: Final = ("udp:127.0.0.1:5060", "tcp:127.0.0.1:5060")
_EPILOG: Final = """\
config file (TOML, --config): a [server] table with listen (list), backend, max_connections,
tcp_idle_timeout, stats_interval, log_level, record, tls_cert, tls_key, seed; and a [registrar]
table with any field of sansmidreg.Config by name (mode, upstream, upstream_uri, advertised,
outgoing_expires, min_expires, max_expires, default_expires, max_contacts, trusted, domains,
use_domain, nat, compat, max_message_size, ...). Flags override the file. See
examples/sansmidreg.toml.

signals: SIGINT/SIGTERM stop gracefully (queued TCP output is flushed, sockets closed, exit 0);
SIGUSR1 logs the statistics.

exit status: 0 stopped by a signal; 1 cannot listen (address in use, no permission); 2 bad
command line or config (the message names the flag, or the file, table and key).
"""


_FLAGS: Final = {"mode": "--mode", "upstream": "--upstream", "upstream_uri": "--upstream-uri",
                  "advertised": "--advertise", "outgoing_expires": "--outgoing-expires",
                  "min_expires": "--min-expires", "max_expires": "--max-expires",
                  "default_expires": "--default-expires", "max_contacts": "--max-contacts",
                  "trusted": "--trusted"}


class CliError(Exception):
    """A bad command line or config: the message says what and where."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sansmidreg", description="sansmidreg, a SIP mid-registrar")
    p.add_argument("--version", action="version", version=f"sansmidreg {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("conformance", help="run, record and import conformance traces "
                   "(sansmidreg conformance --help)", add_help=False)
    s = sub.add_parser("serve", help="run the mid-registrar", epilog=_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Run the mid-registrar between SIP devices and the main "
                       "registrar (loopback defaults; flags override --config).")
    s.add_argument("--config", metavar="FILE", help="TOML config file ([server], [registrar])")
    g = s.add_argument_group("addresses")
    g.add_argument("--listen", metavar="ADDR", action="append",
                   help="[udp:|tcp:|tls:]HOST:PORT to listen on; repeat for more (default: "
                   f"{' and '.join(DEFAULT_LISTEN)}); the first is advertised unless --advertise")
    g.add_argument("--advertise", metavar="HOST:PORT",
                   help="address written in our Via, Contact and Record-Route (behind NAT)")
    g.add_argument("--upstream", metavar="ADDR",
                   help="the main registrar, [udp:|tcp:|tls:]HOST:PORT (default 127.0.0.1:5080)")
    g.add_argument("--upstream-uri", metavar="URI",
                   help="Request-URI of relayed REGISTERs (default: keep the device's)")
    g.add_argument("--trusted", metavar="HOST", action="append",
                   help="host besides the upstream allowed to send requests toward registered "
                   "devices; repeat for more")
    r = s.add_argument_group("registration")
    r.add_argument("--mode", help="mirror, contact-throttling or aor-throttling (default mirror)")
    for flag, what in (("outgoing-expires", "lifetime of our upstream bindings in the "
                        "throttling modes (default 3600)"),
                       ("min-expires", "shortest lifetime accepted from devices; shorter gets "
                        "423 (default 10)"),
                       ("max-expires", "longest lifetime granted to devices (default 3600)"),
                       ("default-expires", "lifetime when a device asks for none (default "
                        "3600)"),
                       ("max-contacts", "contacts per AOR, 0 = no limit (default 0)")):
        r.add_argument(f"--{flag}", metavar="N" if "contacts" in flag else "SECONDS", type=int,
                       help=what)
    r.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                   help="any other sansmidreg.Config field (e.g. nat=always, use_domain=true); "
                   "repeat for more")
    o = s.add_argument_group("server")
    o.add_argument("--backend", choices=BACKENDS,
                   help="sockets (stdlib, default, UDP+TCP), anyio (asyncio) or trio; TLS needs "
                   "anyio or trio")
    o.add_argument("--tls-cert", metavar="FILE", help="certificate chain (PEM) for tls: listeners")
    o.add_argument("--tls-key", metavar="FILE", help="private key (PEM) for --tls-cert")
    o.add_argument("--max-connections", metavar="N", type=int,
                   help="TCP/TLS connections open at once (default 1024)")
    o.add_argument("--tcp-idle-timeout", metavar="SECONDS", type=float,
                   help="close a connection that sent no complete message for this long "
                   "(default 300)")
    o.add_argument("--record", metavar="FILE",
                   help="write every message in and out to FILE as a conformance trace")
    o.add_argument("--stats-interval", metavar="SECONDS", type=float,
                   help="log the statistics every SECONDS (default 0: only on SIGUSR1)")
    o.add_argument("--log-level", metavar="LEVEL",
                   help="debug (one line per REGISTER), info (default), warning or error")
    o.add_argument("--seed", metavar="N", type=int,
                   help="deterministic branches, tags and contact ids (tests, recordings); "
                   "default: the OS's randomness")
    return p


@dataclass(frozen=True, slots=True)
class Settings:
    config: Config
    backend: str
    options: ServerOptions
    log_level: int
    seed: int | None
    record: str | None


def _pick(flag: object, file: FileSettings | None, key: str, default: object) -> object:
    if flag is not None:
        return flag
    if file is not None and key in file.server:
        return file.server[key]
    return default


def settings_from(args: argparse.Namespace) -> Settings:
    """Merge defaults < config file < flags; raise CliError/ConfigFileError on a bad value."""
    file = load_config_file(args.config) if args.config else None
    if file is not None:
        check_registrar(file)
    values = dict(file.registrar) if file is not None else {}
    flags = {"mode": args.mode, "upstream": args.upstream, "upstream_uri": args.upstream_uri,
             "advertised": args.advertise, "outgoing_expires": args.outgoing_expires,
             "min_expires": args.min_expires, "max_expires": args.max_expires,
             "default_expires": args.default_expires, "max_contacts": args.max_contacts,
             "trusted": ",".join(args.trusted) if args.trusted else None}
    values |= {k: str(v) for k, v in flags.items() if v is not None}
    for item in args.set:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise CliError(f"--set {item!r}: write it as KEY=VALUE")
        values[key.strip()] = value
    listen_text = _pick(args.listen, file, "listen", list(DEFAULT_LISTEN))
    assert isinstance(listen_text, list)
    try:
        listen = tuple(parse_endpoint(str(text)) for text in listen_text)
    except UsageError as exc:
        raise CliError(f"--listen: {exc}") from None
    try:
        config = Config.from_mapping(values, local=listen)
    except UsageError as exc:  # the file was checked alone: this comes from a flag
        key = re.match(r"config key (\w+)=", str(exc))
        flag = _FLAGS.get(key.group(1), f"--set {key.group(1)}") if key else "command line"
        raise CliError(f"{flag}: {exc}") from None
    if config.advertised is None and listen[0].host in ("0.0.0.0", "::"):
        raise CliError(f"--listen {listen[0]} is a wildcard: give --advertise HOST:PORT, the "
                       "address devices and the main registrar reach us at")
    if not any(e.transport == config.upstream.transport for e in listen):
        raise CliError(f"--upstream {config.upstream}: listen on {config.upstream.transport} too"
                       " (its answers come back to our address on that transport)")
    unknown = [key for key, _ in config.extra]
    if unknown:
        raise CliError(f"--set: unknown Config field(s) {', '.join(unknown)}")
    backend = str(_pick(args.backend, file, "backend", "sockets"))
    if backend not in BACKENDS:
        raise CliError(f"backend {backend!r}: use one of {', '.join(BACKENDS)}")
    level_name = str(_pick(args.log_level, file, "log_level", "info")).upper()
    level = logging.getLevelName(level_name)
    if not isinstance(level, int):
        raise CliError(f"log level {level_name.lower()!r}: use debug, info, warning or error")
    return Settings(config, backend, _options(args, file, listen), level,
                    _int_or_none(_pick(args.seed, file, "seed", None)),
                    _str_or_none(_pick(args.record, file, "record", None)))


def _options(args: argparse.Namespace, file: FileSettings | None,
             listen: tuple[Endpoint, ...]) -> ServerOptions:
    cert = _str_or_none(_pick(args.tls_cert, file, "tls_cert", None))
    key = _str_or_none(_pick(args.tls_key, file, "tls_key", None))
    tls: ssl.SSLContext | None = None
    if any(e.transport == "tls" for e in listen):
        if cert is None:
            raise CliError("a tls: listener needs --tls-cert (and --tls-key)")
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            tls.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise CliError(f"--tls-cert {cert} / --tls-key {key}: {exc}") from None
    numbers = {name: _pick(getattr(args, name), file, name, None)
               for name in ("max_connections", "tcp_idle_timeout", "stats_interval")}
    for name, value in numbers.items():
        if value is not None and float(str(value)) < 0:
            raise CliError(f"{name.replace('_', '-')} must be >= 0")
    return ServerOptions(
        listen=listen, tls_server=tls, tls_client=ssl.create_default_context(),
        max_connections=int(str(numbers["max_connections"] or 1024)),
        idle_timeout=float(str(numbers["tcp_idle_timeout"] or 300.0)),
        stats_interval=float(str(numbers["stats_interval"] or 0.0)))


def _int_or_none(value: object) -> int | None:
    return None if value is None else int(str(value))


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def main(argv: Sequence[str] | None = None) -> int:
    """The console script. Returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["conformance"]:
        return _conformance(args_list[1:])
    args = _parser().parse_args(args_list)
    try:
        settings = settings_from(args)
    except (CliError, ConfigFileError) as exc:
        print(f"sansmidreg serve: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=max(settings.log_level, logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    LOG.setLevel(settings.log_level)  # DEBUG for us only, not for asyncio & co.
    from ._run import run

    return run(settings)


def _conformance(argv: list[str]) -> int:
    try:
        from sansmidreg.conformance import cli_main
    except ImportError:
        print("sansmidreg conformance: not available in this installation "
              "(sansmidreg.conformance.cli_main is missing)", file=sys.stderr)
        return 2
    return int(cli_main(argv) or 0)


def describe(settings: Settings) -> str:
    c = settings.config
    throttle = "" if c.mode.value == "mirror" else f", outgoing_expires {c.outgoing_expires} s"
    return (f"sansmidreg {__version__} serving {', '.join(str(e) for e in c.local)} -> upstream "
            f"{c.upstream} (mode {c.mode.value}{throttle}; backend {settings.backend})")


def stop_message(signum: int) -> str:
    return f"stopping ({signal.Signals(signum).name})"


def final_stats(core: MidRegistrar) -> None:
    LOG.info("%s", format_stats(core.stats()))


def make_core(settings: Settings) -> MidRegistrar:
    ids = SeededIds(settings.seed) if settings.seed is not None else SystemIds()
    return MidRegistrar(settings.config, ids=ids)


def make_recorder(settings: Settings) -> TraceRecorder | None:
    if settings.record is None:
        return None
    try:
        stream = open(settings.record, "w", encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise ListenError(exc.errno or 0, f"--record {settings.record}: {exc.strerror}") from None
    return TraceRecorder(stream, settings.config, settings.config.local, seed=settings.seed)


if __name__ == "__main__":
    sys.exit(main())
