"""Installing the project's `asterisk/` configuration and the generated ARI credentials into
the chroot, fresh at every start.

1. the project's `asterisk/*.conf` go to ROOT/etc/asterisk, with the ports of this instance;
2. a generated `ari_users.conf` holds the ARI user and password (never a fixed secret: the
   password is generated once and kept, mode 0600, in the state dir);
3. the host's /etc/hosts and resolv.conf are copied in: without them Asterisk waits for a DNS
   timeout on every RTP stream when it looks up the host name.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from pathlib import Path

from c2c_ari.localasterisk.common import (
    APP,
    DEFAULT_USER,
    LocalAsteriskError,
    config_source_dir,
    http_port,
    settings,
    sip_port,
    state_dir,
)
from c2c_ari.localasterisk.nodes import AriInfo


def credentials_file() -> Path:
    """JSON {url, user, password, app}, mode 0600: what the service reads to reach ARI."""
    return state_dir() / "ari.json"


def _credentials() -> tuple[str, str]:
    user = settings().ari_user or DEFAULT_USER
    password = settings().ari_password
    if not password:
        with contextlib.suppress(OSError, ValueError, KeyError):
            stored = json.loads(credentials_file().read_text())
            if stored["user"] == user:
                password = stored["password"]
    if not password:
        password = secrets.token_urlsafe(24)
    # Asterisk's config syntax: `;` starts a comment, `[`/`]` a section, no line breaks.
    for label, value in (("ari_user (C2C_ARI_USER)", user),
                         ("ari_password (C2C_ARI_PASSWORD)", password)):
        if not re.fullmatch(r"[A-Za-z0-9._~!@%^*+=:/-]+", value):
            raise LocalAsteriskError(f"{label} has characters Asterisk's ari.conf cannot hold")
    return user, password


def read_credentials() -> AriInfo | None:
    """The ARI URL and credentials the last `up` installed, or None."""
    try:
        data = json.loads(credentials_file().read_text())
        return AriInfo(url=data["url"], user=data["user"], password=data["password"],
                       app=data.get("app", APP))
    except (OSError, ValueError, KeyError):
        return None



def _chroot_ids(root: Path, name: str = "asterisk") -> tuple[int, int]:
    uid = gid = None
    for line in (root / "etc/passwd").read_text().splitlines():
        parts = line.split(":")
        if parts[0] == name:
            uid, gid = int(parts[2]), int(parts[3])
    for line in (root / "etc/group").read_text().splitlines():
        parts = line.split(":")
        if parts[0] == name:
            gid = int(parts[2])
    if uid is None or gid is None:
        raise LocalAsteriskError(f"no {name} user in the chroot {root}; rebuild it")
    return uid, gid


def install_config(root: Path, user: str, password: str) -> None:
    """Install the project's asterisk/ folder fresh into ROOT/etc/asterisk."""
    src = config_source_dir()
    if not (src / "modules.conf").is_file():
        raise LocalAsteriskError(f"no Asterisk configuration in {src}")
    uid, gid = _chroot_ids(root)
    etc = root / "etc/asterisk"
    if etc.is_symlink() or etc.is_file():
        etc.unlink()
    elif etc.exists():
        shutil.rmtree(etc)
    etc.mkdir(mode=0o750)
    os.chown(etc, 0, gid)
    for path in sorted(src.iterdir()):
        if path.suffix != ".conf" or not path.is_file():
            continue
        text = path.read_text()
        if path.name == "http.conf":
            text = re.sub(r"(?m)^bindport\s*=.*$", f"bindport={http_port()}", text)
        elif path.name == "pjsip.conf":
            text = re.sub(r"(?m)^bind\s*=\s*127\.0\.0\.1:\d+",
                          f"bind=127.0.0.1:{sip_port()}", text)
        _write_file(etc / path.name, text, 0o640, gid)
    users = (
        "; Written by `c2c-ari asterisk up`: the ARI user of this local Asterisk.\n"
        "; Rewritten on every up; the password is generated once and kept in the state dir\n"
        "; (unless C2C_ARI_PASSWORD is set). Never commit this file.\n"
        f"[{user}]\ntype=user\nread_only=no\npassword_format=plain\npassword={password}\n"
    )
    _write_file(etc / "ari_users.conf", users, 0o640, gid)
    # The DNS pitfall: the chroot needs the host's name resolution (see module docstring).
    for name in ("hosts", "resolv.conf"):
        host = Path("/etc") / name
        dest = root / "etc" / name
        if dest.is_symlink() or dest.exists():
            dest.unlink()
        if host.exists():
            shutil.copyfile(host, dest)
            dest.chmod(0o644)
    for sub in ("var/run/asterisk", "var/log/asterisk", "var/lib/asterisk",
                "var/spool/asterisk"):
        d = root / sub
        d.mkdir(parents=True, exist_ok=True)
        os.chown(d, uid, gid)


def _write_file(path: Path, text: str, mode: int, gid: int) -> None:
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as fh:
        fh.write(text)
    os.chown(path, 0, gid)
    os.chmod(path, mode)
