"""`c2c-ari accounts ...` as an operator runs it: real processes, beside a running service
on the same SQLite file. A rotated key's old tokens and a disabled account are refused by
that service at its very next request; delete removes one account and nothing else, and
refuses to run without --yes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.test_service_process import CLI, _http, running_service


def _accounts(data_dir: Path, *args: str, check: bool = True,
              ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*CLI, "accounts", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=60)
    if check:
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
    return done


def _json(data_dir: Path, *args: str) -> Any:
    return json.loads(_accounts(data_dir, *args).stdout)


def _create(data_dir: Path, name: str) -> dict[str, str]:
    return _json(data_dir, "create", "--name", name, "--realm", f"{name.lower()}.example")


def _token(url: str, api_key: str) -> str:
    status, body = _http("PUT", url + "/v2/api_auth", {"api_key": api_key})
    assert status == 201, body
    return str(body["auth_token"])


def _base(url: str, account: dict[str, str]) -> str:
    return f"{url}/v2/accounts/{account['account_id']}/clicktocall"


def test_list_and_show(tmp_path: Path) -> None:
    acme, other = _create(tmp_path, "Acme"), _create(tmp_path, "Other")
    with running_service(tmp_path) as url:
        token = _token(url, acme["api_key"])
        ids = [_http("PUT", _base(url, acme), {"name": f"S{n}", "extension": "1001"},
                     token)[1]["data"]["id"] for n in range(3)]
        _http("DELETE", f"{_base(url, acme)}/{ids[2]}", token=token)
        listed = [json.loads(line) for line in _accounts(tmp_path, "list").stdout.splitlines()]
        shown = _json(tmp_path, "show", acme["account_id"])
    assert sorted(a["id"] for a in listed) == sorted([acme["account_id"], other["account_id"]])
    row = next(a for a in listed if a["id"] == acme["account_id"])
    assert row == {"id": acme["account_id"], "name": "Acme", "realm": "acme.example",
                   "created": row["created"], "disabled": False, "deleting": False,
                   "live_clicktocalls": 2}
    assert row["created"].endswith("Z")
    assert shown == {**row, "clicktocall_ids": sorted(ids[:2])}
    missing = _accounts(tmp_path, "show", "f" * 32, check=False)
    assert missing.returncode == 1
    assert "no account" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_rotate_key_refuses_old_tokens_in_the_running_service_at_once(tmp_path: Path) -> None:
    acme, other = _create(tmp_path, "Acme"), _create(tmp_path, "Other")
    with running_service(tmp_path) as url:
        old_token = _token(url, acme["api_key"])
        other_token = _token(url, other["api_key"])
        # Used once, so the service has it in its token cache.
        assert _http("GET", _base(url, acme), token=old_token)[0] == 200

        rotated = _json(tmp_path, "rotate-key", acme["account_id"])
        assert rotated["account_id"] == acme["account_id"]
        assert rotated["api_key"] != acme["api_key"]

        # The very next requests: the old token and the old key are refused.
        status, body = _http("GET", _base(url, acme), token=old_token)
        assert status == 401, body
        assert _http("PUT", url + "/v2/api_auth", {"api_key": acme["api_key"]})[0] == 401
        new_token = _token(url, rotated["api_key"])
        assert _http("GET", _base(url, acme), token=new_token)[0] == 200
        # The other account is untouched.
        assert _http("GET", _base(url, other), token=other_token)[0] == 200
        assert _token(url, other["api_key"])


def test_disable_and_enable_beside_the_running_service(tmp_path: Path) -> None:
    acme, other = _create(tmp_path, "Acme"), _create(tmp_path, "Other")
    with running_service(tmp_path) as url:
        token, other_token = _token(url, acme["api_key"]), _token(url, other["api_key"])
        status, body = _http("PUT", _base(url, acme),
                             {"name": "Web", "extension": "1001", "auth_required": False},
                             token)
        public = f"{_base(url, acme)}/{body['data']['id']}"
        assert _http("GET", public, token=token)[0] == 200
        unknown = _http("POST", f"{_base(url, acme)}/{'f' * 32}/connect",
                        {"contact": "+4930123456"})
        assert unknown[0] == 401

        assert _json(tmp_path, "disable", acme["account_id"])["disabled"] is True
        assert _http("GET", public, token=token)[0] == 401
        assert _http("PUT", url + "/v2/api_auth", {"api_key": acme["api_key"]})[0] == 401
        status, body = _http("POST", f"{public}/connect", {"contact": "+4930123456"})
        assert (status, body["data"]) == (unknown[0], unknown[1]["data"])
        assert _http("GET", _base(url, other), token=other_token)[0] == 200

        assert _json(tmp_path, "enable", acme["account_id"])["disabled"] is False
        status, body = _http("GET", public, token=token)  # nothing was deleted
        assert status == 200
        assert body["data"]["name"] == "Web"
        # Without an Asterisk a connect that passes every check answers 503.
        assert _http("POST", f"{public}/connect", {"contact": "+4930123456"})[0] == 503


def test_delete_needs_yes_and_removes_one_account_only(tmp_path: Path) -> None:
    acme, other = _create(tmp_path, "Acme"), _create(tmp_path, "Other")
    with running_service(tmp_path) as url:
        token, other_token = _token(url, acme["api_key"]), _token(url, other["api_key"])
        doc = _http("PUT", _base(url, acme), {"name": "S", "extension": "1001"},
                    token)[1]["data"]
        other_doc = _http("PUT", _base(url, other), {"name": "O", "extension": "1002"},
                          other_token)[1]["data"]

        refused = _accounts(tmp_path, "delete", acme["account_id"], check=False)
        assert refused.returncode == 2
        assert "--yes" in refused.stderr
        assert refused.stdout == ""
        assert _http("GET", f"{_base(url, acme)}/{doc['id']}", token=token)[0] == 200

        deleted = _json(tmp_path, "delete", acme["account_id"], "--yes")
        assert deleted == {"account_id": acme["account_id"], "deleted": True,
                           "removed": {"history": 0, "auth_tokens": 1, "clicktocalls": 1}}
        assert _http("GET", f"{_base(url, acme)}/{doc['id']}", token=token)[0] == 401
        assert _http("PUT", url + "/v2/api_auth", {"api_key": acme["api_key"]})[0] == 401
        status, body = _http("GET", f"{_base(url, other)}/{other_doc['id']}",
                             token=other_token)
        assert status == 200
        assert body["data"]["name"] == "O"
        listed = _accounts(tmp_path, "list").stdout.splitlines()
        assert [json.loads(line)["id"] for line in listed] == [other["account_id"]]
        again = _accounts(tmp_path, "delete", acme["account_id"], "--yes", check=False)
        assert again.returncode == 1
        assert "no account" in again.stderr
