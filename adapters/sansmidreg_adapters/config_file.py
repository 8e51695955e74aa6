# The TOML config file of `sansmidreg serve` (examples/sansmidreg.toml): read with tomllib,
# checked key by key, every error naming the file, the table and the key.
#
#   [server]      how we run: listen, backend, limits, logging, recording (SERVER_KEYS)
#   [registrar]   the core's Config fields by name (mode, upstream, outgoing_expires ...), given
#                 as TOML strings, numbers, booleans or lists; Config validates the values.
from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from sansmidreg import Config, UsageError

__all__ = ["SERVER_KEYS", "ConfigFileError", "FileSettings", "load_config_file"]

SERVER_KEYS: Final[Mapping[str, str]] = {
    "listen": "list",  # of "[udp:|tcp:|tls:]HOST:PORT"
    "backend": "str",
    "max_connections": "int",
    "tcp_idle_timeout": "float",
    "stats_interval": "float",
    "log_level": "str",
    "record": "str",
    "tls_cert": "str",
    "tls_key": "str",
    "seed": "int",
}
REGISTRAR_KEYS: Final = frozenset(
    f.name for f in dataclasses.fields(Config) if f.name not in ("local", "extra"))


class ConfigFileError(Exception):
    """The config file cannot be used; the message says which file, table and key."""


@dataclass(frozen=True, slots=True)
class FileSettings:
    path: Path
    server: dict[str, object] = field(default_factory=dict)
    registrar: dict[str, str] = field(default_factory=dict)
    """Config fields as text, ready for ``Config.from_mapping``."""


def load_config_file(path: str | Path) -> FileSettings:
    """Read and check a TOML config file. Raises ConfigFileError."""
    where = Path(path)
    try:
        data = tomllib.loads(where.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigFileError(f"{where}: cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigFileError(f"{where}: not UTF-8 text: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"{where}: not valid TOML: {exc}") from None
    settings = FileSettings(where)
    for table, values in data.items():
        if table not in ("server", "registrar"):
            raise ConfigFileError(f"{where}: unknown table [{table}] (use [server] and "
                                  "[registrar])")
        if not isinstance(values, dict):
            raise ConfigFileError(f"{where}: {table} must be a table: [{table}]")
        for raw_key, value in values.items():
            key = raw_key.replace("-", "_")
            if table == "server":
                settings.server[key] = _server_value(where, raw_key, key, value)
            else:
                settings.registrar[key] = _registrar_value(where, raw_key, key, value)
    return settings


def _server_value(where: Path, raw_key: str, key: str, value: object) -> object:
    kind = SERVER_KEYS.get(key)
    if kind is None:
        raise ConfigFileError(f"{where}: [server] unknown key {raw_key!r} (known: "
                              f"{', '.join(SERVER_KEYS)})")
    if kind == "list":
        items = [value] if isinstance(value, str) else value
        if isinstance(items, list) and all(isinstance(v, str) for v in items):
            return [str(v) for v in items]
        return _wrong(where, "server", raw_key, "a list of strings", value)
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "float" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind == "str" and isinstance(value, str):
        return value
    return _wrong(where, "server", raw_key, {"int": "an integer", "float": "a number",
                                             "str": "a string"}[kind], value)


def _registrar_value(where: Path, raw_key: str, key: str, value: object) -> str:
    if key == "local":
        raise ConfigFileError(f"{where}: [registrar] {raw_key}: use listen in [server]")
    if key not in REGISTRAR_KEYS:
        raise ConfigFileError(f"{where}: [registrar] unknown key {raw_key!r} (known: "
                              f"{', '.join(sorted(REGISTRAR_KEYS))})")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    return _wrong(where, "registrar", raw_key, "a string, number, boolean or list of strings",
                  value)


def _wrong(where: Path, table: str, key: str, expected: str, value: object) -> str:
    raise ConfigFileError(f"{where}: [{table}] {key} must be {expected}, not "
                          f"{type(value).__name__} {value!r}")


def check_registrar(settings: FileSettings) -> None:
    """Validate the [registrar] values alone, so that an error names this file."""
    try:
        Config.from_mapping(settings.registrar)
    except UsageError as exc:
        raise ConfigFileError(f"{settings.path}: [registrar] {exc}") from None
