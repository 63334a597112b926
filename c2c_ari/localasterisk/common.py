"""What every part of the local Asterisk shares: its error, its settings, where its files live,
and a few small file helpers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8088
DEFAULT_SIP_PORT = 5060
DEFAULT_USER = "c2c"
APP = "c2c-ari"


class LocalAsteriskError(RuntimeError):
    """A failure with a one-line message meant for the user."""


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
    return Path(__file__).resolve().parents[2] / "asterisk"


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


# --------------------------------------------------------------------------- small helpers


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
