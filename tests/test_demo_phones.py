"""The README's quick start with demo phones, as a user runs it: `c2c-ari serve
--local-asterisk --demo-phones` (a real process, a real Asterisk 22, SIPp as extension 1001
and as the carrier), the quick start's requests, a connect that succeeds and its history
item; and the SIPp processes the service started gone once it has stopped, however it
stopped (SIGTERM, Ctrl-C, even SIGKILL)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from c2c_ari import localasterisk
from c2c_ari.localasterisk import LocalAsteriskError
from c2c_ari.localasterisk.demo import PHONES, udp_bound
from tests.test_service_process import CLI, _free_port, _http, wait_serving

pytestmark = pytest.mark.asterisk

_PIDS = re.compile(r"sipp pids (\d+), (\d+)")


@pytest.fixture(scope="module")
def local_asterisk_host() -> Iterator[None]:
    """The local Asterisk and the SIPp ports to ourselves (test sessions and benchmarks take
    turns; a session's integration tests may hold the lock already), sipp and debootstrap
    installed."""
    supported, why = localasterisk.host_supported()
    if not supported:
        pytest.skip(f"no local Asterisk: {why}")
    with localasterisk.exclusive_use():
        try:
            localasterisk.ensure_host_packages()
        except LocalAsteriskError as exc:
            pytest.fail(f"host packages: {exc}", pytrace=False)
        yield


@contextmanager
def serving(data_dir: Path, *flags: str, env: dict[str, str] | None = None,
            ) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """`c2c-ari serve FLAGS` on a free port until its API answers; (url, process, log).
    Stopped by SIGTERM at the end of the block unless the block stopped it."""
    port = _free_port()
    log = data_dir / f"service-{port}.log"
    # The quick start's own Asterisk, whatever C2C_ARI_URL the session may name.
    environ = {k: v for k, v in os.environ.items()
               if k not in ("C2C_ARI_URL", "C2C_ARI_USER", "C2C_ARI_PASSWORD")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*CLI, "serve", *flags, "--port", str(port), "--data-dir", str(data_dir)],
            stdout=out, stderr=subprocess.STDOUT, env={**environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_serving(url, proc, log, timeout=120)  # the first run builds the chroot
        yield url, proc, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _sipp_pids(log: Path) -> list[int]:
    found = _PIDS.search(log.read_text(errors="replace"))
    assert found, log.read_text(errors="replace")
    return [int(pid) for pid in found.groups()]


def _alive(pid: int) -> bool:
    """A process that runs (a zombie waiting for its reaper does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _assert_demo_phones_gone(pids: list[int], wait: float = 0.0) -> None:
    deadline = time.monotonic() + wait
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in pids if _alive(pid)] == []
    assert [p.port for p in PHONES if udp_bound("127.0.0.1", p.port)] == []


def _connect(url: str, token: str, path: str) -> tuple[int, Any]:
    """The quick start's blocking connect; retried while the service answers 503 (its ARI
    websocket still connecting: nothing was dialled then)."""
    deadline = time.monotonic() + 30
    while True:
        status, body = _http("POST", f"{url}{path}/connect",
                             {"contact": "4158867900", "blocking": True}, token)
        if status != 503 or time.monotonic() > deadline:
            return status, body
        time.sleep(0.2)


def test_the_quick_start_ends_with_a_successful_call(tmp_path: Path,
                                                     local_asterisk_host: None) -> None:
    with serving(tmp_path, "--local-asterisk", "--demo-phones") as (url, proc, log):
        pids = _sipp_pids(log)
        assert all(_alive(pid) for pid in pids)
        # The quick start, step by step.
        created = subprocess.run(
            [*CLI, "accounts", "create", "--name", "Acme", "--realm", "acme.example",
             "--data-dir", str(tmp_path)], check=True, capture_output=True, text=True)
        account = json.loads(created.stdout)
        status, body = _http("PUT", url + "/v2/api_auth", {"api_key": account["api_key"]})
        assert status == 201
        token = body["auth_token"]
        collection = f"/v2/accounts/{account['account_id']}/clicktocall"
        status, body = _http("PUT", url + collection,
                             {"name": "Sales", "extension": "1001", "whitelist": ["^\\+1"]},
                             token)
        assert status == 201
        c2c = f"{collection}/{body['data']['id']}"

        status, body = _connect(url, token, c2c)
        assert status == 200, body
        item = body["data"]
        assert item["result"] == "success", item
        assert item["contact"] == "+14158867900"
        assert item["extension"] == "1001"

        # The carrier hangs up after 5 s: the history item is then complete.
        deadline = time.monotonic() + 20
        while True:
            status, body = _http("GET", f"{url}{c2c}/history", token=token)
            assert status == 200
            history = body["data"]
            if (history and "ended_at" in history[0]) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(history) == 1
        assert history[0]["call_id"] == item["call_id"]
        assert history[0]["result"] == "success"
        assert history[0]["hangup_cause"] == "NORMAL_CLEARING"
        assert history[0]["talk_duration"] >= 4
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    _assert_demo_phones_gone(pids)
    assert "Traceback" not in log.read_text(errors="replace")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_the_demo_phones_go_with_the_service(tmp_path: Path, local_asterisk_host: None,
                                             stop: signal.Signals) -> None:
    """Ctrl-C (SIGINT to the service: the phones run in sessions of their own, so only the
    service hears it and stops them), and a service killed outright (the kernel's parent
    death signal ends them). No Asterisk is needed for this."""
    with serving(tmp_path, "--demo-phones", env={"C2C_ARI_URL": "off"}) as (_url, proc, log):
        pids = _sipp_pids(log)
        assert all(_alive(pid) for pid in pids)
        proc.send_signal(stop)
        proc.wait(30)
    _assert_demo_phones_gone(pids, wait=0 if stop == signal.SIGINT else 5)


def test_busy_ports_are_refused_clearly(tmp_path: Path, local_asterisk_host: None) -> None:
    with serving(tmp_path, "--demo-phones", env={"C2C_ARI_URL": "off"}) as (_url, _proc, log):
        pids = _sipp_pids(log)
        second = subprocess.run(
            [*CLI, "serve", "--demo-phones", "--port", str(_free_port()), "--data-dir",
             str(tmp_path / "second")], capture_output=True, text=True, timeout=60,
            env={**os.environ, "C2C_ARI_URL": "off"})
        assert second.returncode == 1
        assert "UDP 127.0.0.1:5071" in second.stderr
        assert "Traceback" not in second.stderr
        assert all(_alive(pid) for pid in pids)  # the first one's phones are left alone
    _assert_demo_phones_gone(pids)
