"""The real `c2c-ari` command: accounts from the CLI, the service as its own process, and
data that survives a restart."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib import request as urlrequest
from urllib.error import HTTPError

CLI = [sys.executable, "-m", "c2c_ari"]


def create_account(env: dict[str, str], name: str = "A", realm: str = "a.example",
                   *args: str) -> dict[str, str]:
    """`c2c-ari accounts create` run as a user would: the new account and its API key."""
    return dict(json.loads(subprocess.run(
        [*CLI, "accounts", "create", "--name", name, "--realm", realm, *args], env=env,
        check=True, capture_output=True, text=True).stdout))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _http(method: str, url: str, data: object = None, token: str | None = None):
    body = None if data is None else json.dumps({"data": data}).encode()
    req = urlrequest.Request(url, data=body, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    try:
        with urlrequest.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read())
    except HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_serving(url: str, proc: subprocess.Popen[bytes], log_path: Path,
                 timeout: float = 30.0) -> None:
    """Until the service at `url` answers HTTP; its log as the failure if it exits first or
    takes longer than `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            _http("GET", url + "/v2/schemas")
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log_path.read_text(errors="replace")) from None
            time.sleep(0.1)


@contextmanager
def running_service(data_dir: Path, output: list[str] | None = None) -> Iterator[str]:
    """The service on a free port until the block ends; its output (stdout and stderr) is
    appended to `output` once it has stopped. The output goes to a file, not a pipe: a pipe
    nobody reads would fill up with access log lines and stall the service."""
    port = _free_port()
    log_path = data_dir / f"service-{port}.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [*CLI, "serve", "--port", str(port), "--data-dir", str(data_dir)],
            # No Asterisk for these: whatever runs on the machine, no call may be placed.
            stdout=log_file, stderr=subprocess.STDOUT,
            env={**os.environ, "C2C_ARI_URL": "off"},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_serving(url, proc, log_path)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if output is not None:
            output.append(log_path.read_text(errors="replace"))


def test_cli_account_and_restart_persistence(tmp_path: Path) -> None:
    account = create_account(dict(os.environ), "Acme", "acme.example", "--data-dir",
                             str(tmp_path))
    assert {"account_id", "api_key"} <= set(account)

    with running_service(tmp_path) as url:
        status, body = _http("PUT", url + "/v2/api_auth", {"api_key": account["api_key"]})
        assert status == 201
        token = body["auth_token"]
        base = f"{url}/v2/accounts/{account['account_id']}/clicktocall"
        status, body = _http("PUT", base, {"name": "Sales", "extension": "1001"}, token)
        assert status == 201
        c2c_id = body["data"]["id"]
        revision = body["revision"]

    with running_service(tmp_path) as url:
        base = f"{url}/v2/accounts/{account['account_id']}/clicktocall"
        # The token was stored too: still valid after the restart.
        status, body = _http("GET", f"{base}/{c2c_id}", token=token)
        assert status == 200
        assert body["data"]["name"] == "Sales"
        assert body["revision"] == revision


def test_bad_settings_fail_clearly(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CLI, "serve", "--data-dir", str(tmp_path)], capture_output=True, text=True,
        env={**os.environ, "C2C_ARI_PORT": "eighty"}, timeout=30,
    )
    assert result.returncode == 2
    assert "port" in result.stderr


def test_a_client_hanging_up_mid_upload_leaves_no_error(tmp_path: Path) -> None:
    output: list[str] = []
    with running_service(tmp_path, output) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"PUT /v2/api_auth HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
            # A whole request on another connection: by its answer the upload is being read.
            assert _http("GET", url + "/v2/schemas")[0] == 200
        # the next requests are served as usual
        assert _http("PUT", url + "/v2/api_auth", {"api_key": "0" * 64})[0] == 401
    assert "Traceback" not in output[0]
    assert "unhandled error" not in output[0]
    assert "c2c_ari.access" not in output[0]  # no access log unless asked for


def test_a_second_service_on_the_same_sqlite_file_is_refused(tmp_path: Path) -> None:
    with running_service(tmp_path):
        second = subprocess.run(
            [*CLI, "serve", "--port", str(_free_port()), "--data-dir", str(tmp_path)],
            capture_output=True, text=True, timeout=30, env={**os.environ, "C2C_ARI_URL": "off"},
        )
        assert second.returncode == 1
        assert str(tmp_path / "c2c-ari.sqlite3") in second.stderr
        assert "PostgreSQL" in second.stderr
        assert "Traceback" not in second.stderr
        # while the CLI's account commands still work beside it
        subprocess.run([*CLI, "accounts", "create", "--name", "B", "--realm", "b.example",
                        "--data-dir", str(tmp_path)], check=True, capture_output=True)
