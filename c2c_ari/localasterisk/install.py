"""Installing the project's `asterisk/` configuration and the generated ARI credentials into
the chroot, fresh at every start of a node.

1. the project's `asterisk/*.conf` go to the node's configuration directory (ROOT/etc/asterisk
   for node 1), with the node's ports, names and directories (nodes.py);
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
    DEFAULT_HOST,
    DEFAULT_USER,
    LocalAsteriskError,
    config_source_dir,
    inside,
    settings,
    write_atomic,
)
from c2c_ari.localasterisk.ids import user_ids
from c2c_ari.localasterisk.nodes import AriInfo, Node, known_nodes


def credentials_file(node: int = 1) -> Path:
    """JSON {url, user, password, app, sip, node, name}, mode 0600: what the service reads to
    reach ARI (node 1's is the one `C2C_ARI_URL=auto` uses)."""
    return Node(node).credentials_file


def ari_credentials() -> tuple[str, str]:
    """The ARI user and password every node gets: the settings', else the password stored by
    an earlier `up` (of any node) for the same user, else a new random one."""
    user = settings().ari_user or DEFAULT_USER
    password = settings().ari_password
    for node in known_nodes() if not password else []:
        with contextlib.suppress(OSError, ValueError, KeyError):
            stored = json.loads(node.credentials_file.read_text())
            if stored["user"] == user:
                password = stored["password"]
                break
    if not password:
        password = secrets.token_urlsafe(24)
    # Asterisk's config syntax: `;` starts a comment, `[`/`]` a section, no line breaks.
    for label, value in (("ari_user (C2C_ARI_USER)", user),
                         ("ari_password (C2C_ARI_PASSWORD)", password)):
        if not re.fullmatch(r"[A-Za-z0-9._~!@%^*+=:/-]+", value):
            raise LocalAsteriskError(f"{label} has characters Asterisk's ari.conf cannot hold")
    return user, password


def write_credentials(node: Node, user: str, password: str) -> AriInfo:
    """Record how to reach the node's ARI (mode 0600); the AriInfo of a node just started."""
    node.state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(node.state_dir, 0o700)
    write_atomic(node.credentials_file, json.dumps(
        {"url": node.url, "user": user, "password": password, "app": APP,
         "sip": f"{DEFAULT_HOST}:{node.sip_port}", "node": node.number, "name": node.name},
        indent=1) + "\n", mode=0o600)
    return AriInfo(url=node.url, user=user, password=password, started=True,
                   node=node.number, name=node.name)


def read_credentials(node: int = 1) -> AriInfo | None:
    """The ARI URL and credentials the last `up` of that node installed, or None."""
    try:
        data = json.loads(credentials_file(node).read_text())
        return AriInfo(url=data["url"], user=data["user"], password=data["password"],
                       app=data.get("app", APP), node=int(data.get("node", node)),
                       name=data.get("name", ""))
    except (OSError, ValueError, KeyError):
        return None


def _chroot_ids(root: Path) -> tuple[int, int]:
    return user_ids((root / "etc/passwd").read_text(), (root / "etc/group").read_text())


def configure_node(name: str, text: str, node: Node) -> str:
    """A shipped configuration file's text as `node` needs it: only ports, names and
    directories change, so the dialplan and endpoints are the same on every node."""
    if name == "http.conf":
        text = re.sub(r"(?m)^bindport\s*=.*$", f"bindport = {node.http_port}", text)
    elif name == "pjsip.conf":
        text = re.sub(r"(?m)^bind\s*=\s*127\.0\.0\.1:\d+",
                      f"bind = 127.0.0.1:{node.sip_port}", text)
    elif name == "rtp.conf" and node.rtp_range is not None:
        first, last = node.rtp_range
        text = re.sub(r"(?m)^rtpstart\s*=.*$", f"rtpstart = {first}", text)
        text = re.sub(r"(?m)^rtpend\s*=.*$", f"rtpend = {last}", text)
    elif name == "asterisk.conf":
        # Without its own systemname and entityid, a second node would report the first's
        # entity id, and the two could hand out the same channel unique ids.
        options = f"systemname = {node.name}\nentityid = {node.entity_id}\n"
        text, found = re.subn(r"(?m)^\[options\][^\n]*\n", lambda m: m.group(0) + options,
                              text, count=1)
        if not found:
            text += "\n[options]\n" + options
        if node.directories:
            # A plain [directories] section: Debian's sample has `[directories](!)`, a
            # template, which Asterisk ignores.
            text += ("\n; Written by `c2c-ari asterisk up`: this node's own directories.\n"
                     "[directories]\n"
                     + "".join(f"{k} => {v}\n" for k, v in node.directories.items()))
    return text


def install_config(root: Path, user: str, password: str, node: Node | None = None) -> None:
    """Install the project's asterisk/ folder fresh into the node's configuration directory
    (ROOT/etc/asterisk for node 1), and make the directories it writes to."""
    node = node or Node(1)
    src = config_source_dir()
    if not (src / "modules.conf").is_file():
        raise LocalAsteriskError(f"no Asterisk configuration in {src}")
    uid, gid = _chroot_ids(root)
    etc = inside(root, node.etc_dir)
    if etc.is_symlink() or etc.is_file():
        etc.unlink()
    elif etc.exists():
        shutil.rmtree(etc)
    etc.mkdir(mode=0o750)
    os.chown(etc, 0, gid)
    for path in sorted(src.iterdir()):
        if path.suffix != ".conf" or not path.is_file():
            continue
        _write_file(etc / path.name, configure_node(path.name, path.read_text(), node),
                    0o640, gid)
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
    for sub in node.writable_dirs:
        # inside(): var/run is a symlink to /run, which must be the chroot's, not the host's.
        d = inside(root, sub)
        d.mkdir(parents=True, exist_ok=True)
        os.chown(d, uid, gid)


def _write_file(path: Path, text: str, mode: int, gid: int) -> None:
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as fh:
        fh.write(text)
    os.chown(path, 0, gid)
    os.chmod(path, mode)
