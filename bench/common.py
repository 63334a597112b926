"""What the benchmarks share: logging, a free port, plain HTTP calls to the service, the child
processes they start (the real service among them) and what /proc says about a process."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class BenchError(Exception):
    """A failed request or a setup step that did not work: the run is meaningless."""


def log(message: str) -> None:
    """A progress line on stderr, so stdout holds only the report."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def exit_on_sigterm() -> None:
    """Make SIGTERM end the bench the way Ctrl-C does, through its `finally` blocks, so the
    processes it started are stopped and its temporary files removed."""

    def interrupted(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, interrupted)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(
    method: str, url: str, body: Any = None, token: str | None = None, expect: int = 200
) -> bytes:
    """One request with a JSON body; raises BenchError unless the status is `expect`."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["X-Auth-Token"] = token
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    # Loopback only: never through a proxy named in the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=60) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    if status != expect:
        raise BenchError(f"{method} {url} answered {status}, not {expect}: {raw[:300]!r}")
    return raw


# --- child processes -----------------------------------------------------------------------


def die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the bench dies without cleaning up."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def stop_process(proc: subprocess.Popen[Any] | None) -> None:
    """SIGTERM a process this bench started, by its pid; SIGKILL if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as fh:
        # The command name may hold spaces and parentheses: the fields start after the last ")".
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) in MB, from /proc."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024  # kB -> MB
    return out


def reset_peak(pid: int) -> bool:
    """Reset a process's VmHWM (peak RSS) to its current RSS, so that the next reading is
    the peak since now; False where the kernel does not allow it (Linux < 4.0)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class Server:
    """One server process with its output in a log file, in a session of its own (a Ctrl-C
    in the terminal reaches the bench, which stops it). taskset execs, so when `argv` starts
    with it the pid is still the server's own."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        port: int,
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name, self.port, self.log_path = name, port, log_path
        with open(log_path, "wb") as out:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Return once the server accepts connections; BenchError if it exits or never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            time.sleep(0.1)
        raise BenchError(f"{self.name} did not listen on port {self.port}:\n{self.tail()}")

    def log_lines(self) -> list[str]:
        try:
            return self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_lines()[-lines:])

    def memory(self) -> dict[str, float]:
        return memory_mb(self.pid)

    def stop(self) -> None:
        stop_process(self.proc)


# --- the real service ----------------------------------------------------------------------


@dataclass
class Service:
    """The real service (`python -m c2c_ari serve`) with one account and its token."""

    server: Server
    base: str
    account_id: str
    token: str

    @property
    def collection(self) -> str:
        return f"{self.base}/v2/accounts/{self.account_id}/clicktocall"


def create_account(
    options: list[str],
    *,
    python: str = sys.executable,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    name: str = "Bench",
) -> dict[str, str]:
    """`c2c-ari accounts create` with the service's `options` (--data-dir, --config): the new
    account's `account_id` and `api_key`."""
    created = subprocess.run(
        [python, "-m", "c2c_ari", "accounts", "create", "--name", name,
         "--realm", "bench.example.com", *options],
        capture_output=True, text=True, timeout=60, env=env, cwd=cwd,
    )
    if created.returncode != 0:
        raise BenchError(f"accounts create failed ({created.returncode}): {created.stderr}")
    account: dict[str, str] = json.loads(created.stdout)
    return account


def serve(
    name: str,
    options: list[str],
    log_path: Path,
    *,
    python: str = sys.executable,
    prefix: list[str] | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    started: list[Server] | None = None,
) -> Server:
    """`python -m c2c_ari serve` on a free port with `options`, ready to accept connections.
    Appended to `started` as soon as it exists, so the caller's clean-up stops it even when
    it never gets ready."""
    port = free_port()
    server = Server(
        name,
        [*(prefix or []), python, "-m", "c2c_ari", "serve", "--host", "127.0.0.1",
         "--port", str(port), *options],
        port,
        log_path,
        env,
        cwd,
    )
    if started is not None:
        started.append(server)
    server.wait_ready()
    return server


def issue_token(base: str, api_key: str) -> str:
    """A fresh auth token for an API key (`PUT /v2/api_auth`)."""
    auth = json.loads(http("PUT", f"{base}/v2/api_auth", {"data": {"api_key": api_key}},
                           expect=201))
    token: str = auth["auth_token"]
    return token


def start_service(
    name: str,
    data_dir: Path,
    log_path: Path,
    *,
    prefix: list[str] | None = None,
    config: Path | None = None,
    env: dict[str, str] | None = None,
    started: list[Server] | None = None,
    python: str = sys.executable,
    cwd: Path | None = None,
) -> Service:
    """The real service on a fresh `data_dir`, with a new account and a token for it.
    `prefix` goes before the command (taskset), `config` is passed as --config, `env` replaces
    the environment of both the service and `accounts create`, `python` is the interpreter
    whose installed c2c_ari runs (another checkout's venv), `cwd` where both run (not a
    checkout, or `-m c2c_ari` would import that checkout's code). The server is appended to
    `started` as soon as it exists, so the caller's clean-up stops it even when a later step
    of the start fails."""
    data_dir.mkdir(parents=True, exist_ok=True)
    options = ["--data-dir", str(data_dir)]
    if config is not None:
        options += ["--config", str(config)]
    account = create_account(options, python=python, env=env, cwd=cwd)
    server = serve(name, options, log_path, python=python, prefix=prefix, env=env, cwd=cwd,
                   started=started)
    base = f"http://127.0.0.1:{server.port}"
    return Service(server, base, account["account_id"], issue_token(base, account["api_key"]))
