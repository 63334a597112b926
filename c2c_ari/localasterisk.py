"""A real local Asterisk 22 for development and tests, built and run by the project itself.

Debian 12 ships no Asterisk; Debian sid has 22.x. So the first `up` builds a minimal Debian sid
chroot with `debootstrap` (once, cached outside the repository), and every `up` then:

1. installs the project's `asterisk/` configuration fresh into ROOT/etc/asterisk, plus a
   generated `ari_users.conf` with the ARI user and password (never a fixed secret);
2. copies the host's /etc/hosts and resolv.conf into the chroot: without them Asterisk waits
   for a DNS timeout on every RTP stream when it looks up the host name;
3. mounts proc and binds /dev into the chroot (only what is not mounted yet, and remembers it);
4. starts `chroot ROOT asterisk -f -U asterisk -G asterisk` in the background, records its pid,
   and waits until ARI answers `GET /ari/asterisk/info` with 200 (503 while booting).

`down` stops that Asterisk by its recorded pid and unmounts what `up` mounted, and only that.
The chroot shares the host's network: ARI is on http://127.0.0.1:8088, PJSIP on
127.0.0.1:5060 (see asterisk/pjsip.conf for the peers' ports).

Only the standard library is used, so this runs before the project's dependencies are.

Environment:
  C2C_ARI_CACHE_DIR        where the chroot and the state live
                           (default $XDG_CACHE_HOME/c2c-ari or ~/.cache/c2c-ari)
  C2C_ARI_USER             ARI user (default c2c)
  C2C_ARI_PASSWORD         ARI password (default: generated once, kept in the state dir)
  C2C_ARI_HTTP_PORT        ARI/HTTP port (default 8088)
  C2C_ARI_SIP_PORT         PJSIP UDP port (default 5060)
  C2C_ARI_DEBIAN_MIRROR    Debian mirror for debootstrap (default: the host's apt sources)
  C2C_ARI_ASTERISK_CONFIG  the configuration folder to install (default: the repo's asterisk/)
  C2C_ARI_START_TIMEOUT    seconds to wait for ARI after start (default 90)
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8088
DEFAULT_SIP_PORT = 5060
DEFAULT_USER = "c2c"
APP = "c2c-ari"

# What debootstrap installs into the chroot. Changing this list rebuilds the chroot.
# asterisk-moh-opsound-gsm: music on hold that works offline (small; codec_gsm plays it).
PACKAGES = (
    "asterisk",
    "asterisk-modules",
    "asterisk-moh-opsound-gsm",
    "ca-certificates",
)
SUITE = "sid"
# Bump to force a rebuild when the build steps (not only the package list) change.
BUILD_REVISION = 1

_STAMP = ".c2c-ari-chroot.json"
_LOG_NAME = "messages.log"  # as named in asterisk/logger.conf


class LocalAsteriskError(RuntimeError):
    """A failure with a one-line message meant for the user."""


@dataclass(frozen=True)
class AriInfo:
    """How to reach ARI. `url` is the HTTP base without `/ari`, e.g. http://127.0.0.1:8088."""

    url: str
    user: str
    password: str
    app: str = APP
    # True when this call started Asterisk (so the caller should stop it).
    started: bool = False

    @property
    def ari_url(self) -> str:
        return self.url.rstrip("/") + "/ari"

    @property
    def events_url(self) -> str:
        ws = "ws" + self.url[len("http"):] if self.url.startswith("http") else self.url
        return ws.rstrip("/") + f"/ari/events?app={self.app}&subscribeAll=false"


# --------------------------------------------------------------------------- paths


def cache_dir() -> Path:
    explicit = os.environ.get("C2C_ARI_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "c2c-ari"


def chroot_dir() -> Path:
    """ROOT: the Debian sid chroot that holds Asterisk."""
    return cache_dir() / "chroot"


def state_dir() -> Path:
    """Pid, mounts, credentials and logs of the running instance."""
    return cache_dir() / "state"


def swagger_dir() -> Path:
    """Asterisk's own ARI Swagger documents (resources.json, channels.json, ...)."""
    return chroot_dir() / "usr/share/asterisk/rest-api"


def config_source_dir() -> Path:
    explicit = os.environ.get("C2C_ARI_ASTERISK_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    return Path(__file__).resolve().parent.parent / "asterisk"


def asterisk_log_file() -> Path:
    return chroot_dir() / "var/log/asterisk" / _LOG_NAME


def credentials_file() -> Path:
    """JSON {url, user, password, app}, mode 0600: what the service reads to reach ARI."""
    return state_dir() / "ari.json"


def http_port() -> int:
    return _env_port("C2C_ARI_HTTP_PORT", DEFAULT_HTTP_PORT)


def sip_port() -> int:
    return _env_port("C2C_ARI_SIP_PORT", DEFAULT_SIP_PORT)


def base_url() -> str:
    return f"http://{DEFAULT_HOST}:{http_port()}"


def _env_port(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise LocalAsteriskError(f"{name}={raw!r} is not a port number")
    return int(raw)


# --------------------------------------------------------------------------- host checks


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
    _say(f"installing host packages: {' '.join(missing)}")
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
    """The mirror debootstrap uses: C2C_ARI_DEBIAN_MIRROR, else the host's own apt sources."""
    explicit = os.environ.get("C2C_ARI_DEBIAN_MIRROR", "").strip()
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


# --------------------------------------------------------------------------- locking


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One up/down at a time (two concurrent `up`s must not both build or both start)."""
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / "lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say("waiting for another c2c-ari asterisk command to finish...")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


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
    _write_atomic(_mounts_file(), json.dumps(points) + "\n")


def _mount_chroot_fs(root: Path) -> None:
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


def _unmount_recorded() -> list[str]:
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
        _say(f"removing an interrupted build: {stale}")
        _safe_rmtree(stale)
    ensure_host_packages({"debootstrap": "debootstrap"})
    mirror = debian_mirror()
    tmp = Path(tempfile.mkdtemp(prefix="build-", dir=cache))
    target = tmp / "root"
    cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
           SUITE, str(target), mirror]
    log = tmp / "debootstrap.log"
    _say(f"building a Debian {SUITE} chroot with Asterisk (once; about a minute): "
         f"{' '.join(cmd)}")
    started = time.monotonic()
    with open(log, "w") as out:
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=_apt_proxy_env()).returncode
    if rc != 0:
        tail = _tail(log, 15)
        _safe_rmtree(tmp)
        raise LocalAsteriskError(f"debootstrap failed (exit {rc}); last lines:\n{tail}")
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
    _say(f"chroot ready in {spec['seconds']} s: {root}")
    return root


# --------------------------------------------------------------------------- credentials


def _credentials() -> tuple[str, str]:
    user = os.environ.get("C2C_ARI_USER") or DEFAULT_USER
    password = os.environ.get("C2C_ARI_PASSWORD") or ""
    if not password:
        with contextlib.suppress(OSError, ValueError, KeyError):
            stored = json.loads(credentials_file().read_text())
            if stored["user"] == user:
                password = stored["password"]
    if not password:
        password = secrets.token_urlsafe(24)
    # Asterisk's config syntax: `;` starts a comment, `[`/`]` a section, no line breaks.
    for label, value in (("C2C_ARI_USER", user), ("C2C_ARI_PASSWORD", password)):
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


# --------------------------------------------------------------------------- install


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


def _write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    tmp.replace(path)


# --------------------------------------------------------------------------- process


# Asterisk processes this Python process started, so stop() can reap them (no zombies).
_children: dict[int, subprocess.Popen] = {}


def _pid_file() -> Path:
    return state_dir() / "asterisk.pid"


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _is_ours(pid: int) -> bool:
    """The pid is alive and is an asterisk whose root is our chroot (pids get reused)."""
    if not _alive(pid):
        return False
    try:
        root = os.readlink(f"/proc/{pid}/root")
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return False
    return comm in ("asterisk", "chroot") and Path(root) == chroot_dir().resolve()


def running_pid() -> int | None:
    """The pid of the Asterisk `up` started, if it still runs."""
    try:
        pid = int(_pid_file().read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _is_ours(pid) else None


def _ari_get(url: str, user: str, password: str, timeout: float = 3.0) -> tuple[int, bytes]:
    """GET with Basic auth; (status, body), or (0, b"") when nothing answers."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    req = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read() if exc.fp else b""
    except (urllib.error.URLError, OSError):
        return 0, b""


def _wait_for_ari(pid: int, info: AriInfo, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    url = info.ari_url + "/asterisk/info"
    status = 0
    while time.monotonic() < deadline:
        status, body = _ari_get(url, info.user, info.password)
        if status == 200:
            return json.loads(body)
        if status in (401, 404) and _fully_booted():
            # Booted now; ask again, as the first answer may predate res_ari.
            status, body = _ari_get(url, info.user, info.password)
            if status == 200:
                return json.loads(body)
            if status == 401:
                raise LocalAsteriskError(f"ARI at {info.url} refuses user {info.user!r} (401)")
            if status == 404:
                raise LocalAsteriskError(
                    f"Asterisk booted but ARI is not there (404 for {url}); did a module fail"
                    f" to load? last log lines:\n{_log_tail()}")
        if not _alive(pid):
            raise LocalAsteriskError(
                f"Asterisk (pid {pid}) exited while starting; last log lines:\n{_log_tail()}")
        time.sleep(0.2)
    raise LocalAsteriskError(
        f"ARI at {url} did not answer 200 within {timeout:.0f} s (last status "
        f"{status or 'no answer'}); last log lines:\n{_log_tail()}")


def _fully_booted() -> bool:
    # Unauthenticated api-docs answer once the HTTP server runs; 401 then is a real refusal.
    try:
        out = asterisk_rx("core waitfullybooted", timeout=2)
    except LocalAsteriskError:
        return False
    return "fully booted" in out


def _log_tail(lines: int = 25) -> str:
    parts = []
    for path in (asterisk_log_file(), state_dir() / "asterisk.out"):
        tail = _tail(path, lines)
        if tail:
            parts.append(f"--- {path}\n{tail}")
    return "\n".join(parts) or "(no log)"


def _tail(path: Path, lines: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            return "\n".join(fh.read().decode(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def asterisk_rx(command: str, timeout: float = 15.0) -> str:
    """Run an Asterisk CLI command in the running instance (`asterisk -rx`); its output."""
    root = chroot_dir()
    try:
        done = subprocess.run(["chroot", str(root), "asterisk", "-rx", command],
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise LocalAsteriskError(f"asterisk -rx {command!r} timed out") from None
    except OSError as exc:
        raise LocalAsteriskError(f"asterisk -rx {command!r}: {exc}") from None
    if done.returncode != 0:
        msg = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        raise LocalAsteriskError(f"asterisk -rx {command!r}: {msg[0]}")
    return done.stdout


def _port_taken(port: int, proto: str = "tcp") -> bool:
    """Is a TCP port listened on, or a UDP port bound, by anything on this host?"""
    needle = f":{port:04X}"
    for table in (f"/proc/net/{proto}", f"/proc/net/{proto}6"):
        try:
            with open(table) as fh:
                next(fh)
                for line in fh:
                    cols = line.split()
                    if cols[1].endswith(needle) and (proto == "udp" or cols[3] == "0A"):
                        return True
        except OSError:
            continue
    return False


# --------------------------------------------------------------------------- up / down / status


@contextlib.contextmanager
def exclusive_use(on_wait: Callable[[str], object] = print) -> Iterator[None]:
    """Hold the local Asterisk for one user at a time: test sessions and benchmarks share its
    Stasis app name and the SIPp ports, so a second one waits instead of stealing calls."""
    path = cache_dir() / "test-session.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait(f"waiting for another user of the local Asterisk ({path})")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_running(timeout: float | None = None, restart: bool = False) -> AriInfo:
    """Build if needed, start if not running, wait for ARI; returns how to reach ARI.

    `started` in the result is True when this call started Asterisk: the caller should stop()
    it when done. An already running instance is left as it is (its configuration too) unless
    `restart` is set.
    """
    check_host()
    if timeout is None:
        timeout = float(os.environ.get("C2C_ARI_START_TIMEOUT") or 90)
    with _locked():
        pid = running_pid()
        if pid is not None and restart:
            _stop_locked()
            pid = None
        if pid is not None:
            info = read_credentials()
            if info is None:
                raise LocalAsteriskError("Asterisk runs but its ARI credentials file is gone;"
                                         " run `c2c-ari asterisk down` then `up`")
            _wait_for_ari(pid, info, timeout)
            return info
        return _start_locked(timeout)


def _start_locked(timeout: float) -> AriInfo:
    root = build_chroot()
    for port, proto, env in ((http_port(), "tcp", "C2C_ARI_HTTP_PORT"),
                             (sip_port(), "udp", "C2C_ARI_SIP_PORT")):
        # An Asterisk that was just killed can hold its sockets for a moment after its pid
        # is gone (its other threads are still exiting): give the port a few seconds.
        deadline = time.monotonic() + 5
        while _port_taken(port, proto) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _port_taken(port, proto):
            raise LocalAsteriskError(
                f"{proto.upper()} port {port} is already in use by another program (not an "
                f"Asterisk this command started); stop it or set {env}")
    state_dir().mkdir(parents=True, exist_ok=True)
    os.chmod(state_dir(), 0o700)
    user, password = _credentials()
    info = AriInfo(url=base_url(), user=user, password=password, started=True)
    install_config(root, user, password)
    _write_atomic(credentials_file(), json.dumps(
        {"url": info.url, "user": user, "password": password, "app": APP,
         "sip": f"{DEFAULT_HOST}:{sip_port()}"}, indent=1) + "\n", mode=0o600)
    _mount_chroot_fs(root)
    log = asterisk_log_file()
    if log.exists():
        log.replace(log.with_name(log.name + ".1"))
    out = open(state_dir() / "asterisk.out", "wb")  # noqa: SIM115 - handed to the child
    try:
        child = subprocess.Popen(
            ["chroot", str(root), "asterisk", "-f", "-n", "-U", "asterisk", "-G", "asterisk"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal must not kill it
            close_fds=True)
    finally:
        out.close()
    _children[child.pid] = child
    _write_atomic(_pid_file(), f"{child.pid}\n")
    try:
        _wait_for_ari(child.pid, info, timeout)
    except BaseException:
        _stop_locked()
        raise
    return info


def up(restart: bool = False, timeout: float | None = None, quiet: bool = False) -> AriInfo:
    """`c2c-ari asterisk up`: ensure_running() plus a report on stdout."""
    started = time.monotonic()
    info = ensure_running(timeout=timeout, restart=restart)
    if not quiet:
        verb = "started" if info.started else "already running"
        print(f"Asterisk {verb} (pid {running_pid()}) in {time.monotonic() - started:.1f} s")
        print(f"ARI: {info.ari_url}  user {info.user}  app {info.app}")
        print(f"SIP: udp {DEFAULT_HOST}:{sip_port()}")
        print(f"credentials: {credentials_file()}")
    return info


def stop() -> bool:
    """Stop the Asterisk `up` started and unmount what it mounted. True if one was running."""
    check_host()
    with _locked():
        return _stop_locked()


def _stop_locked(grace: float = 10.0) -> bool:
    pid = running_pid()
    if pid is not None:
        with contextlib.suppress(LocalAsteriskError):
            asterisk_rx("core stop now", timeout=grace)
        if not _wait_exit(pid, grace):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not _wait_exit(pid, 5):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _wait_exit(pid, 5)
    _pid_file().unlink(missing_ok=True)
    _unmount_recorded()
    return pid is not None


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    child = _children.get(pid)
    while time.monotonic() < deadline:
        if child is not None:
            if child.poll() is not None:
                _children.pop(pid, None)
                return True
        elif not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def down(quiet: bool = False) -> bool:
    """`c2c-ari asterisk down`."""
    was = stop()
    if not quiet:
        print("Asterisk stopped" if was else "Asterisk was not running")
    return was


@dataclass(frozen=True)
class Status:
    running: bool
    pid: int | None
    version: str | None
    url: str | None
    chroot: Path
    chroot_built: bool


def status(quiet: bool = False) -> Status:
    """`c2c-ari asterisk status`: running or not, version, ARI URL."""
    pid = running_pid()
    info = read_credentials()
    version = None
    if pid is not None and info is not None:
        code, body = _ari_get(info.ari_url + "/asterisk/info", info.user, info.password)
        if code == 200:
            with contextlib.suppress(ValueError, KeyError):
                version = json.loads(body)["system"]["version"]
    result = Status(running=pid is not None, pid=pid, version=version,
                    url=info.ari_url if info and pid else None,
                    chroot=chroot_dir(), chroot_built=chroot_ready())
    if not quiet:
        if result.running:
            print(f"Asterisk {version or '(ARI not answering yet)'} running, pid {pid}")
            print(f"ARI: {result.url}  user {info.user if info else '?'}")
        else:
            print("Asterisk is not running")
        built = "built" if result.chroot_built else "not built yet"
        print(f"chroot: {result.chroot} ({built})")
    return result


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="c2c-ari asterisk",
        description="A local Asterisk 22 (Debian sid chroot) for development and tests.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="build once, start, wait for ARI")
    p_up.add_argument("--restart", action="store_true",
                      help="restart a running instance (to apply configuration changes)")
    p_up.add_argument("--timeout", type=float, default=None,
                      help="seconds to wait for ARI (default 90)")
    sub.add_parser("down", help="stop it and unmount what up mounted")
    sub.add_parser("status", help="running?, version, ARI URL")
    p_rx = sub.add_parser("rx", help="run an Asterisk CLI command (asterisk -rx)")
    p_rx.add_argument("cli", nargs="+")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            up(restart=args.restart, timeout=args.timeout)
        elif args.command == "down":
            down()
        elif args.command == "status":
            return 0 if status().running else 3
        elif args.command == "rx":
            print(asterisk_rx(" ".join(args.cli)), end="")
    except LocalAsteriskError as exc:
        print(f"c2c-ari asterisk {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
