"""The Debian sid chroot that holds Asterisk: host checks and packages, the Debian mirror,
the one-time debootstrap build (cached), and the proc and /dev mounts a running Asterisk needs.

Debian 12 ships no Asterisk; Debian sid has 22.x. So the first `up` builds a minimal sid
chroot with `debootstrap` into a temporary directory and renames it into place once complete;
later starts reuse it. Mounts are recorded, so that `down` unmounts what `up` mounted and only
that.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from c2c_ari.localasterisk.common import (
    LocalAsteriskError,
    cache_dir,
    chroot_dir,
    say,
    settings,
    state_dir,
    tail,
    write_atomic,
)
from c2c_ari.localasterisk.ids import ensure_own_ids

# What debootstrap installs into the chroot. Changing this list rebuilds the chroot.
# asterisk-moh-opsound-gsm: music on hold that works offline (small; codec_gsm plays it).
PACKAGES = (
    "asterisk",
    "asterisk-modules",
    "asterisk-moh-opsound-gsm",
    "ca-certificates",
)
SUITE = "sid"
# Bump to force a rebuild when the build steps (not only the package list) change. The
# chroot is shared by every checkout on the machine that uses the same cache dir, so a bump
# makes checkouts with different revisions rebuild it back and forth: prefer steps that fix
# an existing chroot in place (see ids.py).
BUILD_REVISION = 1

_STAMP = ".c2c-ari-chroot.json"


# --------------------------------------------------------------------------- host


def check_host() -> None:
    """Root on a Debian-like host (apt-get and dpkg): what building the chroot needs."""
    if sys.platform != "linux":
        raise LocalAsteriskError("a local Asterisk needs Linux (a Debian-like host)")
    if os.geteuid() != 0:
        raise LocalAsteriskError(
            "a local Asterisk needs root (debootstrap, chroot and mount); run it as root")
    if not (shutil.which("apt-get") and shutil.which("dpkg")):
        raise LocalAsteriskError(
            "a local Asterisk needs a Debian-like host (apt-get and dpkg not found)")


def host_supported() -> tuple[bool, str]:
    """(True, "") when check_host() would pass, else (False, why)."""
    try:
        check_host()
    except LocalAsteriskError as exc:
        return False, str(exc)
    return True, ""


def ensure_host_packages(packages: dict[str, str] | None = None) -> None:
    """apt-get install what is missing among {command: package}: sipp and debootstrap."""
    check_host()
    wanted = packages or {"sipp": "sip-tester", "debootstrap": "debootstrap"}
    missing = sorted({pkg for cmd, pkg in wanted.items() if not shutil.which(cmd)})
    if not missing:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    say(f"installing host packages: {' '.join(missing)}")
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        # Usually an empty or stale package list: refresh once and retry.
        subprocess.run(["apt-get", "update"], env=env, stdout=subprocess.DEVNULL, check=False)
        done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["?"]
            raise LocalAsteriskError(f"apt-get install {' '.join(missing)} failed: {tail[0]}")


# --------------------------------------------------------------------------- mirror


def _apt_source_entries() -> Iterator[tuple[str, list[str], list[str]]]:
    """(uri, suites, components) of every `deb` source in the host's apt configuration."""
    files: list[Path] = []
    main = Path("/etc/apt/sources.list")
    if main.is_file():
        files.append(main)
    parts = Path("/etc/apt/sources.list.d")
    if parts.is_dir():
        files.extend(sorted(parts.glob("*.list")))
        files.extend(sorted(parts.glob("*.sources")))
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if path.suffix == ".sources":
            yield from _parse_deb822(text)
        else:
            yield from _parse_one_line(text)


def _parse_one_line(text: str) -> Iterator[tuple[str, list[str], list[str]]]:
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        line = re.sub(r"\[[^\]]*\]", " ", line[4:])  # drop [signed-by=... arch=...]
        words = line.split()
        if len(words) >= 2:
            yield words[0], [words[1]], words[2:]


def _parse_deb822(text: str) -> Iterator[tuple[str, list[str], list[str]]]:
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t") and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        suites = fields.get("suites", "").split()
        components = fields.get("components", "").split()
        for uri in fields.get("uris", "").split():
            yield uri, suites, components


def mirror_candidates() -> list[str]:
    """Mirrors of Debian's main archive named by the host's apt sources, best first."""
    seen: list[str] = []
    later: list[str] = []
    for uri, suites, components in _apt_source_entries():
        uri = uri.rstrip("/")
        if not uri.startswith(("http://", "https://")) or uri in seen or uri in later:
            continue
        # debian-security, debian-debug, ports... serve no sid main archive.
        if re.search(r"security|debug|ports|backports|updates", uri):
            continue
        plain_suite = any("-" not in s for s in suites)  # bookworm, not bookworm-updates
        if plain_suite and "main" in components and uri.endswith("/debian"):
            seen.append(uri)
        elif plain_suite and "main" in components:
            later.append(uri)
    return seen + later


def _apt_proxy_env() -> dict[str, str]:
    """The environment for downloads, with apt's own HTTP proxy setting if it has one."""
    env = dict(os.environ)
    if env.get("http_proxy") or env.get("HTTP_PROXY") or not shutil.which("apt-config"):
        return env
    done = subprocess.run(["apt-config", "shell", "PROXY", "Acquire::http::Proxy"],
                          capture_output=True, text=True, check=False)
    m = re.search(r"PROXY='([^']+)'", done.stdout)
    if m and m.group(1) not in ("DIRECT", "false"):
        env["http_proxy"] = m.group(1)
    return env


def _url_ok(url: str, timeout: float = 10.0) -> bool:
    proxy = _apt_proxy_env().get("http_proxy")
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": proxy, "https": proxy} if proxy else None))
    try:
        with opener.open(urllib.request.Request(url, method="HEAD"), timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def debian_mirror() -> str:
    """The mirror debootstrap uses: the setting (C2C_ARI_DEBIAN_MIRROR), else the first of the
    host's own apt sources that serves sid."""
    explicit = settings().debian_mirror.strip()
    if explicit:
        return explicit.rstrip("/")
    candidates = mirror_candidates()
    for uri in candidates:
        if _url_ok(f"{uri}/dists/{SUITE}/InRelease") or _url_ok(f"{uri}/dists/{SUITE}/Release"):
            return uri
    if candidates:
        raise LocalAsteriskError(
            f"none of the host's apt sources serves Debian {SUITE} ({', '.join(candidates)});"
            " set C2C_ARI_DEBIAN_MIRROR")
    raise LocalAsteriskError(
        "no Debian mirror found in /etc/apt/sources.list{,.d}; set C2C_ARI_DEBIAN_MIRROR")


# --------------------------------------------------------------------------- mounts


def _mount_points() -> set[str]:
    points = set()
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            field = line.split()[4]
            points.add(field.replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\"))
    return points


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    return sorted((p for p in _mount_points() if p == prefix or p.startswith(prefix + "/")),
                  key=len, reverse=True)


def _umount(point: str) -> bool:
    if subprocess.run(["umount", point], stderr=subprocess.DEVNULL).returncode == 0:
        return True
    # Still busy (a process keeps a file open): detach now, the kernel finishes later.
    return subprocess.run(["umount", "-l", point], stderr=subprocess.DEVNULL).returncode == 0


def _safe_rmtree(path: Path) -> None:
    """Remove a chroot, never through a mount (a bound /dev would take the host's devices)."""
    for point in _mounts_under(path):
        _umount(point)
    left = _mounts_under(path)
    if left:
        raise LocalAsteriskError(f"cannot remove {path}: still mounted: {', '.join(left)}")
    shutil.rmtree(path, ignore_errors=True)


def _mounts_file() -> Path:
    return state_dir() / "mounts.json"


def _recorded_mounts() -> list[str]:
    try:
        return list(json.loads(_mounts_file().read_text()))
    except (OSError, ValueError):
        return []


def _record_mounts(points: list[str]) -> None:
    state_dir().mkdir(parents=True, exist_ok=True)
    write_atomic(_mounts_file(), json.dumps(points) + "\n")


def mount_chroot_fs(root: Path) -> None:
    mounted = _mount_points()
    recorded = [p for p in _recorded_mounts() if p in mounted]
    for target, cmd in (
        (root / "proc", ["mount", "-t", "proc", "proc"]),
        (root / "dev", ["mount", "--bind", "/dev"]),
    ):
        point = str(target.resolve())
        if point in mounted:
            continue
        target.mkdir(exist_ok=True)
        done = subprocess.run([*cmd, point], stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise LocalAsteriskError(f"{' '.join(cmd)} {point} failed: {done.stderr.strip()}")
        recorded.append(point)
        _record_mounts(recorded)
    _record_mounts(recorded)


def unmount_recorded() -> list[str]:
    """Unmount what `up` mounted (innermost first); returns what was unmounted."""
    mounted = _mount_points()
    left, done = [], []
    for point in sorted(_recorded_mounts(), key=len, reverse=True):
        if point not in mounted:
            continue
        if _umount(point):
            done.append(point)
        else:
            left.append(point)
    if left:
        _record_mounts(left)
    else:
        _mounts_file().unlink(missing_ok=True)
    return done


# --------------------------------------------------------------------------- build


def _build_spec() -> dict:
    return {"suite": SUITE, "packages": sorted(PACKAGES), "revision": BUILD_REVISION}


def chroot_ready() -> bool:
    try:
        stamp = json.loads((chroot_dir() / _STAMP).read_text())
    except (OSError, ValueError):
        return False
    return all(stamp.get(k) == v for k, v in _build_spec().items())


def build_chroot(force: bool = False) -> Path:
    """Build ROOT once (debootstrap into a temp dir, then rename it into place atomically).

    Call with the lock held. An interrupted build leaves only a `build-*` temp dir, which the
    next build removes; ROOT exists only once complete.
    """
    root = chroot_dir()
    if chroot_ready() and not force:
        return root
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    for stale in cache.glob("build-*"):
        say(f"removing an interrupted build: {stale}")
        _safe_rmtree(stale)
    ensure_host_packages({"debootstrap": "debootstrap"})
    mirror = debian_mirror()
    tmp = Path(tempfile.mkdtemp(prefix="build-", dir=cache))
    target = tmp / "root"
    cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
           SUITE, str(target), mirror]
    log = tmp / "debootstrap.log"
    say(f"building a Debian {SUITE} chroot with Asterisk (once; about a minute): "
         f"{' '.join(cmd)}")
    started = time.monotonic()
    with open(log, "w") as out:
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=_apt_proxy_env()).returncode
    if rc != 0:
        last = tail(log, 15)
        _safe_rmtree(tmp)
        raise LocalAsteriskError(f"debootstrap failed (exit {rc}); last lines:\n{last}")
    # Before anything runs in it: give the asterisk user ids no one on the host has.
    ensure_own_ids(target)
    # Keep Debian's sample configuration aside for reference; `up` installs the project's.
    etc = target / "etc/asterisk"
    if etc.is_dir():
        etc.rename(target / "etc/asterisk.dist")
    for deb in (target / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    spec = dict(_build_spec(), mirror=mirror, built_at=int(time.time()),
                seconds=round(time.monotonic() - started, 1))
    (target / _STAMP).write_text(json.dumps(spec, indent=1) + "\n")
    if root.exists():
        old = cache / f"build-old-{os.getpid()}"
        root.rename(old)
        target.rename(root)
        _safe_rmtree(old)
    else:
        target.rename(root)
    _safe_rmtree(tmp)
    say(f"chroot ready in {spec['seconds']} s: {root}")
    return root
