"""Every setting of the service, its default, and where it can be overridden.

Precedence, lowest first: the defaults below, a TOML file (`--config` or `C2C_ARI_CONFIG`),
environment variables `C2C_ARI_<NAME>`, then command-line flags.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

ENV_PREFIX = "C2C_ARI_"
# The TOML table of the local Asterisk's settings (`c2c-ari asterisk ...`).
LOCAL_ASTERISK_TABLE = "local_asterisk"


def env_name(setting: str) -> str:
    """C2C_ARI_PORT for `port`; the ARI settings read C2C_ARI_URL, C2C_ARI_USER, ... ."""
    return "C2C_" + setting.upper() if setting.startswith("ari_") else ENV_PREFIX + setting.upper()


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "c2c-ari"


@dataclass(frozen=True)
class AsteriskNode:
    """One Asterisk the service places calls on: a name (in history, status and metrics)
    and how to reach its ARI."""

    name: str
    url: str
    user: str = ""
    password: str = ""


_NODE_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def parse_nodes(value: Any) -> tuple[AsteriskNode, ...]:
    """Nodes from TOML (a list of tables: name, url, user, password) or from the environment
    (`name=http://user:password@host:8088,name2=...`)."""
    if isinstance(value, str):
        entries: list[dict[str, str]] = []
        for part in filter(None, (p.strip() for p in value.split(","))):
            name, sep, url = part.partition("=")
            if not sep:
                raise ValueError(f"a node is name=url: {part!r}")
            parsed = urlsplit(url.strip())
            user, password = parsed.username or "", parsed.password or ""
            netloc = parsed.hostname or ""
            if parsed.port:
                netloc += f":{parsed.port}"
            entries.append({"name": name.strip(), "user": unquote(user),
                            "password": unquote(password),
                            "url": urlunsplit((parsed.scheme, netloc, parsed.path, "", ""))})
    else:
        entries = [dict(entry) for entry in value]
    nodes = tuple(AsteriskNode(**{k: str(v) for k, v in entry.items()}) for entry in entries)
    names = [node.name for node in nodes]
    if len(set(names)) != len(names) or not all(_NODE_NAME.fullmatch(n) for n in names):
        raise ValueError("node names must be unique, 1 to 64 of A-Z a-z 0-9 . _ -")
    for node in nodes:
        if not node.url.startswith(("http://", "https://")):
            raise ValueError(f"node {node.name}: its url must be http(s)://host:port")
    return nodes


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = field(default_factory=_default_data_dir)
    # A SQLite file, or a PostgreSQL URL (postgresql://user@host:port/db) for several
    # instances; empty means `<data_dir>/c2c-ari.sqlite3`.
    database: str = ""
    token_ttl: int = 3600
    max_body_bytes: int = 64 * 1024
    default_page_size: int = 50
    max_page_size: int = 1000
    node: str = field(default_factory=socket.gethostname)
    # "uvloop" (faster, the default where it is installed) or "asyncio".
    event_loop: str = "uvloop"
    # "text" or "json" (one object per line, with the request, call and account ids).
    log_format: str = "text"
    # One line per request (method, route template, status, duration, request id). Off by
    # default, as request logging is usually the proxy's in front: measured, the line costs
    # a third of the throughput of a cached GET (Python's logging, ~35 µs a line).
    access_log: bool = False
    # This instance among several sharing a database: the same across its restarts, unique
    # among them; its ARI application is `<ari_app>-<instance_id>`. Empty: `<node>-<port>`.
    instance_id: str = ""
    # ARI: "auto" uses the local Asterisk that `c2c-ari asterisk up` started (its generated
    # credentials), "off" places no calls (connect answers 503), else Asterisk's HTTP base URL
    # such as http://pbx.example:8088 with ari_user / ari_password.
    ari_url: str = "auto"
    ari_user: str = "c2c"
    ari_password: str = ""
    ari_app: str = "c2c-ari"
    # Several Asterisk nodes (each call is placed on the healthy one with the fewest calls in
    # flight): TOML `[[nodes]]` tables with name, url, user, password, or the environment's
    # `name=http://user:password@host:8088,...`. Empty: one node, from ari_url above (with
    # `auto`, every running local node).
    nodes: tuple[AsteriskNode, ...] = ()
    # Dial strings of the two legs; the values put in have passed strict character checks.
    extension_endpoint: str = "PJSIP/{extension}"
    contact_endpoint: str = "PJSIP/{contact}@trunk"
    # The dial string of a whitelisted `sip:user@host[:port]` contact: PJSIP's
    # endpoint/URI form sends it to that URI with the trunk endpoint's settings.
    contact_uri_endpoint: str = "PJSIP/trunk/{contact}"
    # Connects per minute from one client address (an IPv6 /64) to one public click-to-call
    # (auth_required false), on top of its own `throttle`; 0 means no such limit.
    anonymous_throttle: int = 5
    # Proxies whose X-Forwarded-For is believed (addresses or networks, e.g. 10.0.0.0/8):
    # the client address is then the last one in that header that is not such a proxy.
    trusted_proxies: tuple[str, ...] = ()
    # Operations: where Prometheus metrics (and the health checks) are served apart from
    # the API, host:port (e.g. 127.0.0.1:9464; empty: not served apart), and a bearer token
    # that also opens /metrics on the API's port (empty: it is not there).
    metrics_listen: str = ""
    metrics_token: str = ""
    # Admission control: at most this many calls being set up (dialling, not yet bridged) at
    # once by this instance; above it connect answers 503 with Retry-After before dialling.
    # 0: no limit.
    max_calls_in_setup: int = 100
    # Per-account limits and retention (0 days keeps forever).
    max_clicktocalls_per_account: int = 1000
    history_retention_days: int = 365
    deleted_retention_days: int = 30
    # Memory for click-to-call documents kept for reads; one account gets at most an eighth.
    document_cache_bytes: int = 32 * 1024 * 1024

    @property
    def database_target(self) -> str:
        """The database to open: a PostgreSQL URL as given, else a SQLite file path."""
        if not self.database:
            return str(self.data_dir / "c2c-ari.sqlite3")
        if self.database.startswith(("postgresql://", "postgres://")):
            return self.database
        return str(Path(self.database).expanduser())

    def database_label(self) -> str:
        """The database for messages: a URL without its password."""
        target = self.database_target
        if "://" in target and "@" in target:
            scheme, rest = target.split("://", 1)
            credentials, host = rest.rsplit("@", 1)
            user = credentials.split(":", 1)[0]
            return f"{scheme}://{user}@{host}"
        return target

    @classmethod
    def load(
        cls,
        config_file: Path | None = None,
        env: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Build settings from defaults, a TOML file, the environment and explicit overrides."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        config_file = config_file or (Path(env[f"{ENV_PREFIX}CONFIG"]) if env.get(
            f"{ENV_PREFIX}CONFIG") else None)
        if config_file is not None:
            with open(config_file, "rb") as fh:
                values.update(tomllib.load(fh))
            # The local Asterisk's own table is LocalAsteriskSettings' business.
            values.pop(LOCAL_ASTERISK_TABLE, None)
        for f in dataclasses.fields(cls):
            raw = env.get(env_name(f.name))
            if raw is not None and raw != "":
                values[f.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return cls(**{name: _coerce(name, value) for name, value in values.items()})


def _coerce(name: str, value: Any, of: type = Settings) -> Any:
    """Turn strings from the environment or TOML into the field's type, with a clear error."""
    kind = {f.name: f.type for f in dataclasses.fields(of)}[name]
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            word = str(value).strip().lower()
            if word in ("1", "true", "yes", "on"):
                return True
            if word in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind in ("Path", "Path | None"):
            return Path(value).expanduser()
        if kind == "tuple[AsteriskNode, ...]":
            return parse_nodes(value)
        if kind == "tuple[str, ...]":
            items = value.split(",") if isinstance(value, str) else list(value)
            out = tuple(str(item).strip() for item in items if str(item).strip())
            if name == "trusted_proxies":
                for item in out:
                    ipaddress.ip_network(item, strict=False)  # ValueError names it below
            return out
        return str(value)
    except (TypeError, ValueError):
        raise ValueError(f"setting {name!r}: cannot use {value!r} as {kind}") from None


# --------------------------------------------------------------------------- local Asterisk


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "c2c-ari"


# The TOML table of the local Asterisk's own settings; `ari_user` and `ari_password` are read
# from the top level too, since they name the same ARI account as the service's settings.


@dataclass(frozen=True)
class LocalAsteriskSettings:
    """The local Asterisk of `c2c-ari asterisk up` (c2c_ari/localasterisk).

    Same precedence as Settings: these defaults, the TOML file (`[local_asterisk]`, plus the
    top-level `ari_user`/`ari_password`), environment variables `C2C_ARI_<NAME>`, overrides.
    """

    # The chroot, and the state (pids, mounts, credentials) of the running nodes.
    cache_dir: Path = field(default_factory=_default_cache_dir)
    ari_user: str = "c2c"
    # Empty: generated at the first `up` and kept in the state dir.
    ari_password: str = ""
    # Node 1's ports; further nodes' ports are derived from them (localasterisk/nodes.py).
    http_port: int = 8088
    sip_port: int = 5060
    # Empty: the first mirror named by the host's apt sources that serves Debian sid.
    debian_mirror: str = ""
    # The configuration folder to install; None: the repository's asterisk/.
    asterisk_config: Path | None = None
    # Seconds to wait for ARI after a start.
    start_timeout: float = 90.0

    def __post_init__(self) -> None:
        for name in ("http_port", "sip_port"):
            port = getattr(self, name)
            if not 0 < port < 65536:
                raise ValueError(f"setting {name!r}: {port} is not a port number")
        if not self.start_timeout > 0:
            raise ValueError(f"setting 'start_timeout': {self.start_timeout} is not positive")

    @classmethod
    def load(
        cls,
        config_file: Path | None = None,
        env: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> LocalAsteriskSettings:
        """Build settings from defaults, a TOML file, the environment and explicit overrides."""
        env = os.environ if env is None else env
        names = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        config_file = config_file or (Path(env[f"{ENV_PREFIX}CONFIG"]) if env.get(
            f"{ENV_PREFIX}CONFIG") else None)
        if config_file is not None:
            with open(config_file, "rb") as fh:
                document = tomllib.load(fh)
            shared = names & {f.name for f in dataclasses.fields(Settings)}
            values.update({k: v for k, v in document.items() if k in shared})
            table = document.get(LOCAL_ASTERISK_TABLE, {})
            if not isinstance(table, dict):
                raise ValueError(f"{LOCAL_ASTERISK_TABLE!r} in {config_file} is not a table")
            values.update(table)
        for name in names:
            raw = env.get(env_name(name))
            if raw is not None and raw != "":
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown local Asterisk setting(s): {', '.join(sorted(unknown))}")
        return cls(**{name: _coerce(name, value, cls) for name, value in values.items()})
