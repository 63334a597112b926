"""A real local Asterisk 22 for development and tests, built and run by the project itself.

Debian 12 ships no Asterisk; Debian sid has 22.x. So the first `up` builds a minimal Debian sid
chroot with `debootstrap` (once, cached outside the repository), and every `up` then installs
the project's `asterisk/` configuration and generated ARI credentials into it, mounts proc and
/dev, starts Asterisk in the chroot and waits for ARI. `down` stops it by its recorded pid and
unmounts what `up` mounted, and only that. The chroot shares the host's network: ARI is on
http://127.0.0.1:8088, PJSIP on 127.0.0.1:5060 (see asterisk/pjsip.conf for the peers' ports).
`up --nodes N` runs N Asterisk processes (nodes) from the one chroot, each with its own ports,
directories and name; node 1 is the one above (nodes.py has the numbering).

The parts, one job each:

  common.py   the error type, settings (c2c_ari/config.py), paths, small file helpers
  image.py    the chroot: host checks and packages, Debian mirror, debootstrap build, mounts
  ids.py      the chroot's asterisk user and group get ids no one on the host has
  install.py  the configuration and ARI credentials installed into the chroot at each start
  nodes.py    each node's ports, names and directories; AriInfo, how to reach its ARI
  process.py  one node's process: launch, wait for ARI, `asterisk -rx`, stop by pid
  control.py  up, down, status of the nodes, and the locks (one up/down, one test session)
  cli.py      `c2c-ari asterisk up | down | status | rx`

Only the standard library is used, so this runs before the project's dependencies are.
"""

from c2c_ari.localasterisk.cli import main
from c2c_ari.localasterisk.common import (
    APP,
    DEFAULT_HOST,
    DEFAULT_HTTP_PORT,
    DEFAULT_SIP_PORT,
    DEFAULT_USER,
    LocalAsteriskError,
    base_url,
    cache_dir,
    chroot_dir,
    config_source_dir,
    configure,
    http_port,
    settings,
    sip_port,
    state_dir,
    swagger_dir,
)
from c2c_ari.localasterisk.control import (
    NodeStatus,
    Status,
    down,
    ensure_nodes,
    ensure_running,
    exclusive_use,
    read_nodes,
    status,
    stop,
    up,
)
from c2c_ari.localasterisk.image import (
    BUILD_REVISION,
    PACKAGES,
    SUITE,
    build_chroot,
    check_host,
    chroot_ready,
    debian_mirror,
    ensure_host_packages,
    host_supported,
    mirror_candidates,
)
from c2c_ari.localasterisk.install import credentials_file, install_config, read_credentials
from c2c_ari.localasterisk.nodes import MAX_NODES, AriInfo, Node
from c2c_ari.localasterisk.process import asterisk_log_file, asterisk_rx, running_pid

__all__ = [
    "APP",
    "BUILD_REVISION",
    "DEFAULT_HOST",
    "DEFAULT_HTTP_PORT",
    "DEFAULT_SIP_PORT",
    "DEFAULT_USER",
    "MAX_NODES",
    "PACKAGES",
    "SUITE",
    "AriInfo",
    "LocalAsteriskError",
    "Node",
    "NodeStatus",
    "Status",
    "asterisk_log_file",
    "asterisk_rx",
    "base_url",
    "build_chroot",
    "cache_dir",
    "check_host",
    "chroot_dir",
    "chroot_ready",
    "config_source_dir",
    "configure",
    "credentials_file",
    "debian_mirror",
    "down",
    "ensure_host_packages",
    "ensure_nodes",
    "ensure_running",
    "exclusive_use",
    "host_supported",
    "http_port",
    "install_config",
    "main",
    "mirror_candidates",
    "read_credentials",
    "read_nodes",
    "running_pid",
    "settings",
    "sip_port",
    "state_dir",
    "status",
    "stop",
    "swagger_dir",
    "up",
]
