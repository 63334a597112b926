"""Service instances as real processes (`c2c-ari serve`), several at a time on one database,
for the tests of instances and nodes: started, killed, restarted and stopped by pid."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.test_service_process import CLI, _free_port, _http, create_account

METRICS_TOKEN = "metrics-" + "7" * 24


@dataclass
class Instance:
    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait_ready: bool = True) -> Instance:
        with open(self.log_path, "ab") as log_file:  # a file: an unread pipe would stall it
            self.proc = subprocess.Popen([*CLI, "serve"], env=self.env, stdout=log_file,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _ = _http("GET", self.url + "/readyz")
                if status == 200 or not wait_ready:
                    return self
            except (OSError, ValueError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"instance {self.name} did not become ready:\n"
                                   + self.log_path.read_text(errors="replace")[-3000:])
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no graceful stop, nothing recorded, calls left behind."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def metric(self, name: str) -> float:
        """The sum of a metric's samples, from the instance's /metrics."""
        return sum(sample.value for sample in self._samples() if sample.name == name)

    def metric_labelled(self, name: str, label: str, value: str) -> float:
        """The sum of a metric's samples whose `label` is `value`."""
        return sum(sample.value for sample in self._samples()
                   if sample.name == name and sample.labels.get(label) == value)

    def _samples(self) -> list[Any]:
        request = urllib.request.Request(self.url + "/metrics",
                                         headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
        return [sample for family in text_string_to_metric_families(text)
                for sample in family.samples]

    def api(self, method: str, path: str, data: Any = None,
            token: str | None = None) -> tuple[int, Any]:
        return _http(method, self.url + path, data, token)


@dataclass
class Cluster:
    """Instances sharing `database`, all reaching the same Asterisk nodes."""

    database: str
    base_env: dict[str, str]
    workdir: Path
    instances: list[Instance] = field(default_factory=list)
    account: dict[str, str] = field(default_factory=dict)
    token: str = ""

    def add(self, name: str) -> Instance:
        port = _free_port()
        env = {**self.base_env, "C2C_ARI_DATABASE": self.database,
               "C2C_ARI_INSTANCE_ID": name, "C2C_ARI_PORT": str(port),
               "C2C_ARI_DATA_DIR": str(self.workdir / name),
               "C2C_ARI_METRICS_TOKEN": METRICS_TOKEN}
        instance = Instance(name, port, env, self.workdir / f"{name}.log")
        self.instances.append(instance)
        return instance

    def sign_in(self, via: Instance) -> None:
        self.account = create_account(via.env)
        status, body = via.api("PUT", "/v2/api_auth", {"api_key": self.account["api_key"]})
        assert status == 201, body
        self.token = body["auth_token"]

    @property
    def base(self) -> str:
        return f"/v2/accounts/{self.account['account_id']}/clicktocall"

    def stop(self) -> None:
        for instance in self.instances:
            instance.stop()


def cluster(database: str, ari_env: dict[str, str], workdir: Path) -> Iterator[Cluster]:
    """A Cluster whose instances are all stopped afterwards."""
    found = Cluster(database, {**os.environ, **ari_env}, workdir)
    try:
        yield found
    finally:
        found.stop()


def wait_for(predicate: Any, what: str, timeout: float = 20.0, every: float = 0.1) -> Any:
    """The first truthy value of `predicate()`, or a failure naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)
