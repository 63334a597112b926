"""What every part of the local Asterisk shares: its error, its settings, where its files live,
and a few small file helpers."""

from __future__ import annotations

import os
import sys
from pathlib import Path, PurePosixPath

from c2c_ari.config import LocalAsteriskSettings

DEFAULT_HOST = "127.0.0.1"
# The defaults of LocalAsteriskSettings, named here for the code and tests that need them.
DEFAULT_HTTP_PORT: int = LocalAsteriskSettings.http_port
DEFAULT_SIP_PORT: int = LocalAsteriskSettings.sip_port
DEFAULT_USER: str = LocalAsteriskSettings.ari_user
APP = "c2c-ari"


class LocalAsteriskError(RuntimeError):
    """A failure with a one-line message meant for the user."""


# --------------------------------------------------------------------------- settings

# Settings given explicitly (the command line's --config); None: loaded at each use, so that
# a changed environment (tests, a long-lived caller) is seen.
_configured: LocalAsteriskSettings | None = None


def configure(settings: LocalAsteriskSettings | None) -> None:
    """Use these settings from now on; None goes back to loading them at each use."""
    global _configured
    _configured = settings


def settings() -> LocalAsteriskSettings:
    """The settings in use: see LocalAsteriskSettings in c2c_ari/config.py."""
    if _configured is not None:
        return _configured
    try:
        return LocalAsteriskSettings.load()
    except (OSError, ValueError) as exc:
        raise LocalAsteriskError(str(exc)) from None


# --------------------------------------------------------------------------- paths


def cache_dir() -> Path:
    return settings().cache_dir


def chroot_dir() -> Path:
    """ROOT: the Debian sid chroot that holds Asterisk."""
    return cache_dir() / "chroot"


def state_dir() -> Path:
    """Pids, mounts, credentials and output of the running nodes (node 1's in it, node k's in
    its nodeK/ subdirectory)."""
    return cache_dir() / "state"


def swagger_dir() -> Path:
    """Asterisk's own ARI Swagger documents (resources.json, channels.json, ...)."""
    return chroot_dir() / "usr/share/asterisk/rest-api"


def config_source_dir() -> Path:
    """The configuration folder `up` installs: the setting, else the repository's asterisk/."""
    return settings().asterisk_config or Path(__file__).resolve().parents[2] / "asterisk"


def http_port() -> int:
    return settings().http_port


def sip_port() -> int:
    return settings().sip_port


def base_url() -> str:
    """Node 1's ARI base URL."""
    return f"http://{DEFAULT_HOST}:{http_port()}"


# --------------------------------------------------------------------------- small helpers


def inside(root: Path, path: str) -> Path:
    """The host path of `path` as the chroot at `root` sees it.

    Symlinks are followed the way the chroot follows them: an absolute target starts again
    at `root`. Plain `root / path` would follow Debian's `var/run -> /run` to the host's own
    /run.
    """
    current = root
    parts = list(PurePosixPath(path).parts)
    hops = 0
    while parts:
        part = parts.pop(0)
        if part in ("/", "", "."):
            continue
        if part == "..":
            current = current.parent if current != root else root
            continue
        candidate = current / part
        if not candidate.is_symlink():
            current = candidate
            continue
        hops += 1
        if hops > 40:
            raise LocalAsteriskError(f"too many symlinks in {path} inside {root}")
        target = PurePosixPath(os.readlink(candidate))
        if target.is_absolute():
            current = root
        parts = list(target.parts) + parts
    return current


def say(msg: str) -> None:
    """Progress for the user, on stderr (stdout carries the commands' results)."""
    print(msg, file=sys.stderr, flush=True)


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Replace `path` in one step, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    tmp.replace(path)


def tail(path: Path, lines: int) -> str:
    """The last lines of a (log) file, read from its end; "" when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            return "\n".join(fh.read().decode(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
