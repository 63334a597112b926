"""Schemathesis against the OpenAPI document the service serves: thousands of generated and
mutated requests against the real service process, single ones and sequences that follow
the document's links, none may answer 5xx."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.test_service_process import CLI, _http, running_service


def test_no_generated_request_gets_a_server_error(tmp_path: Path) -> None:
    account = json.loads(subprocess.run(
        [*CLI, "accounts", "create", "--name", "Fuzz", "--realm", "fuzz.example",
         "--data-dir", str(tmp_path)],
        check=True, capture_output=True, text=True,
    ).stdout)
    with running_service(tmp_path) as url:
        token = _http("PUT", url + "/v2/api_auth", {"api_key": account["api_key"]})[1][
            "auth_token"]
        base = f"{url}/v2/accounts/{account['account_id']}/clicktocall"
        c2c_id = _http("PUT", base, {"name": "Fuzz", "extension": "1001",
                                     "auth_required": False}, token)[1]["data"]["id"]
        # Real ids, so that requests get past 404 into the handlers.
        (tmp_path / "schemathesis.toml").write_text(
            f'[parameters]\naccount_id = "{account["account_id"]}"\nc2c_id = "{c2c_id}"\n')
        result = subprocess.run(
            [str(Path(sys.executable).with_name("schemathesis")), "run",
             f"{url}/v2/openapi.json", "-H", f"X-Auth-Token: {token}",
             "--checks", "not_a_server_error", "--max-examples", "80", "--seed", "1",
             "--phases", "examples,coverage,fuzzing,stateful"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600,
        )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
    # the stateful phase follows the document's links (create -> read, patch, connect...)
    assert "✅ Stateful" in result.stdout
