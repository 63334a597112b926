"""The chroot's `asterisk` user and group get ids that no one else on the host has.

debootstrap numbers the chroot's system users from the chroot's own files, so its `asterisk`
user gets the next free system id of a fresh Debian (101). On the host that id may well be
someone else's (PostgreSQL's, say): `ps` then shows Asterisk as that user, and the chrooted
Asterisk, running with that uid, could signal that user's processes. So after a build, and
once for a chroot built before this existed, the user and its group are moved to one number,
free both on the host and in the chroot, and the chroot's files they owned follow. A marker
in the chroot records it, so it is done once (and again only if the host later takes the id).

Renumbering in place, rather than rebuilding, keeps the cached chroot valid for every checkout
that shares the cache dir.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from c2c_ari.localasterisk.common import LocalAsteriskError, say, write_atomic

USER = "asterisk"
# Ids above 16 bits, below the ranges systemd hands to containers (524288 and up): adduser
# allocates at most 59999 by default and systemd's dynamic users live in 61184-65519, so a
# host rarely has anyone here. The first free id from ID_BASE is taken: the same host and
# chroot always give the same number.
ID_BASE = 200_000
ID_LIMIT = 524_288
MARKER = ".c2c-ari-ids.json"


def ids_in(text: str) -> set[int]:
    """The numeric ids (third field) of an /etc/passwd or /etc/group text."""
    found = set()
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) > 2 and parts[2].strip().isdigit():
            found.add(int(parts[2]))
    return found


def choose_id(passwd_texts: Iterable[str], group_texts: Iterable[str],
              start: int = ID_BASE) -> int:
    """The first number from `start` that no passwd text uses as a uid and no group text as a
    gid: one number for both the user and its group, which makes `ls -n` easy to read."""
    taken = set().union(*(ids_in(t) for t in passwd_texts),
                        *(ids_in(t) for t in group_texts))
    for candidate in range(start, ID_LIMIT):
        if candidate not in taken:
            return candidate
    raise LocalAsteriskError(f"no free user id between {start} and {ID_LIMIT}")


def user_ids(passwd: str, group: str, name: str = USER) -> tuple[int, int]:
    """(uid, gid) of `name`: the uid from passwd, the gid of the group of that name (else the
    user's primary group)."""
    uid = gid = None
    for line in passwd.splitlines():
        parts = line.split(":")
        if len(parts) > 3 and parts[0] == name:
            uid, gid = int(parts[2]), int(parts[3])
    for line in group.splitlines():
        parts = line.split(":")
        if len(parts) > 2 and parts[0] == name:
            gid = int(parts[2])
    if uid is None or gid is None:
        raise LocalAsteriskError(f"no {name} user in the chroot; rebuild it")
    return uid, gid


def renumbered(passwd: str, group: str, old: tuple[int, int], new: tuple[int, int],
               name: str = USER) -> tuple[str, str]:
    """passwd and group texts with `name`'s uid and its group's gid (also as anyone's primary
    group) moved from `old` to `new`."""
    lines = []
    for line in passwd.splitlines(keepends=True):
        parts = line.split(":")
        if len(parts) > 3:
            if parts[0] == name and parts[2] == str(old[0]):
                parts[2] = str(new[0])
            if parts[3] == str(old[1]):
                parts[3] = str(new[1])
            line = ":".join(parts)
        lines.append(line)
    groups = []
    for line in group.splitlines(keepends=True):
        parts = line.split(":")
        if len(parts) > 2 and parts[0] == name and parts[2].strip() == str(old[1]):
            parts[2] = str(new[1])
            line = ":".join(parts)
        groups.append(line)
    return "".join(lines), "".join(groups)


def processes_in(root: Path) -> list[int]:
    """Pids of the processes whose root directory is `root` (an Asterisk of any checkout)."""
    target = str(root.resolve())
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "root") == target:
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _chown_tree(root: Path, old: tuple[int, int], new: tuple[int, int]) -> int:
    """Give everything under `root` that `old` owned to `new`; the number of entries changed.

    Never crosses into another filesystem: a mounted proc or a bound /dev is the host's.
    """
    device = root.lstat().st_dev
    changed = 0
    pending = [str(root)]
    while pending:
        path = pending.pop()
        st = os.lstat(path)
        if st.st_dev != device:
            continue
        uid = new[0] if st.st_uid == old[0] else -1
        gid = new[1] if st.st_gid == old[1] else -1
        if uid != -1 or gid != -1:
            os.chown(path, uid, gid, follow_symlinks=False)
            # chown clears set-user-id and set-group-id bits: put them back.
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                os.chmod(path, stat.S_IMODE(st.st_mode))
            changed += 1
        if stat.S_ISDIR(st.st_mode):
            with os.scandir(path) as entries:
                pending.extend(entry.path for entry in entries)
    return changed


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def read_marker(root: Path) -> dict | None:
    try:
        marker = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def ensure_own_ids(root: Path, host_etc: Path = Path("/etc")) -> bool:
    """Give the chroot's asterisk user and group ids unused on the host and in the chroot,
    once; True when it renumbered now.

    Skipped (with a note) while any process runs inside the chroot: a running Asterisk would
    lose access to its own files. The next start does it then.
    """
    passwd_file, group_file = root / "etc/passwd", root / "etc/group"
    passwd, group = passwd_file.read_text(), group_file.read_text()
    host_passwd, host_group = _read(host_etc / "passwd"), _read(host_etc / "group")
    current = user_ids(passwd, group)
    marker = read_marker(root)
    clash = current[0] in ids_in(host_passwd) or current[1] in ids_in(host_group)
    if marker and marker.get("done") and not clash and current == (
            marker.get("uid"), marker.get("gid")):
        return False
    running = processes_in(root)
    if running:
        say(f"the chroot's {USER} user keeps ids {current} for now: processes run in the "
            f"chroot ({', '.join(map(str, running))}); the next start renumbers it")
        return False
    if marker and not marker.get("done"):
        # An earlier run stopped half way: finish its move rather than start another.
        old = (int(marker["from"][0]), int(marker["from"][1]))
        new = (int(marker["uid"]), int(marker["gid"]))
    else:
        number = choose_id([host_passwd, passwd], [host_group, group])
        old, new = current, (number, number)
    record = {"user": USER, "uid": new[0], "gid": new[1], "from": list(old), "done": False}
    write_atomic(root / MARKER, json.dumps(record) + "\n")
    changed = _chown_tree(root, old, new)
    new_passwd, new_group = renumbered(passwd, group, old, new)
    write_atomic(passwd_file, new_passwd, stat.S_IMODE(passwd_file.stat().st_mode))
    write_atomic(group_file, new_group, stat.S_IMODE(group_file.stat().st_mode))
    write_atomic(root / MARKER, json.dumps(dict(record, done=True, files=changed)) + "\n")
    say(f"the chroot's {USER} user and group: ids {old[0]}/{old[1]} -> {new[0]}/{new[1]} "
        f"({changed} files)")
    return True
