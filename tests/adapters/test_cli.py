"""`sansmidreg serve` and `sansmidreg conformance`: --help documents every option, config file
and flags merge, bad configs and busy ports are clear errors, SIGUSR1 logs statistics and
SIGTERM/SIGINT stop cleanly on every backend (subprocesses on free loopback ports, stopped by
PID, every wait bounded)."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sansmidreg import Mode
from sansmidreg_adapters.cli import _parser, main, settings_from

from ._support import LOOPBACK, TIMEOUT, Udp, ok_for, register, status

EXAMPLE_TOML = Path(__file__).resolve().parents[2] / "examples" / "sansmidreg.toml"
ALL_FLAGS = ("--config", "--listen", "--advertise", "--upstream", "--upstream-uri", "--trusted",
             "--mode", "--outgoing-expires", "--min-expires", "--max-expires",
             "--default-expires", "--max-contacts", "--set", "--backend", "--tls-cert",
             "--tls-key", "--max-connections", "--tcp-idle-timeout", "--record",
             "--stats-interval", "--log-level", "--seed")


def test_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ALL_FLAGS:
        assert flag in text, flag
    [sub] = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    for action in sub.choices["serve"]._actions:
        if action.option_strings:
            assert action.help, f"{action.option_strings} has no help"
            assert any(flag in text for flag in action.option_strings)
    assert "SIGUSR1" in text and "[registrar]" in text


def test_config_file_then_flags(tmp_path: Path) -> None:
    args = _parser().parse_args(["serve", "--config", str(EXAMPLE_TOML), "--outgoing-expires",
                                 "900", "--set", "use_domain=true", "--trusted", "10.0.0.1"])
    settings = settings_from(args)
    config = settings.config
    assert config.mode is Mode.CONTACT_THROTTLING  # from the file
    assert config.outgoing_expires == 900  # the flag wins
    assert config.use_domain and config.trusted == ("10.0.0.1",)
    assert [str(e) for e in config.local] == ["127.0.0.1:5060", "tcp:127.0.0.1:5060"]
    assert settings.backend == "sockets" and settings.options.stats_interval == 60


@pytest.mark.parametrize(("toml", "message"), [
    ("[registrar]\noutgoing_expire = 5\n", "[registrar] unknown key 'outgoing_expire'"),
    ("[registrar]\nmode = \"sideways\"\n", "[registrar] config key mode='sideways'"),
    ("[registrar]\nmin_expires = 100\nmax_expires = 50\n", "min_expires must not exceed"),
    ("[server]\nlisten = 5060\n", "[server] listen must be a list of strings"),
    ("[server]\nbackend = \"twisted\"\n", "backend 'twisted'"),
    ("[servr]\n", "unknown table [servr]"),
    ("[server\n", "not valid TOML"),
])
def test_bad_config_file_names_file_and_key(tmp_path: Path, toml: str, message: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    assert main(["serve", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err
    if "backend" not in message:
        assert str(path) in err


@pytest.mark.parametrize(("argv", "message"), [
    (["--mode", "bogus"], "--mode: config key mode='bogus'"),
    (["--listen", "127.0.0.1"], "--listen: address '127.0.0.1'"),
    (["--set", "nonsense=1"], "unknown Config field(s) nonsense"),
    (["--listen", "udp:127.0.0.1:5060", "--listen", "tls:127.0.0.1:5061"], "needs --tls-cert"),
    (["--config", "/nonexistent/x.toml"], "/nonexistent/x.toml: cannot read it"),
    (["--listen", "0.0.0.0:5060"], "give --advertise HOST:PORT"),
    (["--listen", "tcp:127.0.0.1:5060"], "listen on udp too"),
])
def test_bad_flags(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", *argv]) == 2
    assert message in capsys.readouterr().err


def test_conformance_is_delegated(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["conformance", "--help"])
    except SystemExit as exc:  # argparse's --help
        code = int(exc.code or 0)
    out = capsys.readouterr()
    assert code == 0 and "conformance" in (out.out + out.err)


# -- the real process ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
    return port


def serve(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "sansmidreg_adapters.cli", "serve", *args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True, env=env)


def stop(proc: subprocess.Popen[str], sig: signal.Signals) -> tuple[int, str]:
    if proc.poll() is None:
        os.kill(proc.pid, sig)
    try:
        out, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, out


@pytest.mark.parametrize("backend", ["sockets", "anyio", "trio"])
def test_serves_logs_stats_on_sigusr1_and_stops_on_sigterm(backend: str) -> None:
    upstream, phone = Udp(), Udp()
    port = free_port()
    proc = serve("--listen", f"udp:{LOOPBACK}:{port}", "--upstream", str(upstream.endpoint),
                 "--mode", "contact-throttling", "--backend", backend, "--log-level", "debug",
                 "--seed", "3")
    try:
        upstream.sock.settimeout(0.2)
        deadline = time.monotonic() + TIMEOUT
        while True:  # until it listens
            phone.send(register("alice", 1, phone.port), (LOOPBACK, port))
            try:
                request, addr = upstream.recv()
                break
            except TimeoutError:
                assert time.monotonic() < deadline and proc.poll() is None, "not serving"
        upstream.send(ok_for(request), addr)
        assert status(phone.recv()[0]) == 200
        os.kill(proc.pid, signal.SIGUSR1)
        time.sleep(0.3)
        code, out = stop(proc, signal.SIGTERM)
    finally:
        stop(proc, signal.SIGKILL)
        upstream.close()
        phone.close()
    assert code == 0, out
    assert "relayed to" in out and "alice" in out  # the DEBUG line of the REGISTER
    assert out.count("stats: REGISTER received=1") >= 2  # SIGUSR1, then at exit
    assert "stopping (SIGTERM)" in out and out.rstrip().endswith("stopped")


def test_sigint_stops_too() -> None:
    port = free_port()
    proc = serve("--listen", f"udp:{LOOPBACK}:{port}")
    try:
        deadline = time.monotonic() + TIMEOUT
        while not _bound(port):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        code, out = stop(proc, signal.SIGINT)
    finally:
        stop(proc, signal.SIGKILL)
    assert code == 0 and "stopping (SIGINT)" in out, out


def _bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return True
    return False


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((LOOPBACK, 0))
        port = taken.getsockname()[1]
        proc = serve("--listen", f"udp:{LOOPBACK}:{port}")
        try:
            out, _ = proc.communicate(timeout=TIMEOUT)
        finally:
            stop(proc, signal.SIGKILL)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in out
