"""The local-Asterisk builder's pure parts: apt sources, mirror choice, shipped configuration."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from c2c_ari import localasterisk as la
from c2c_ari.config import LocalAsteriskSettings
from c2c_ari.localasterisk import ids, image, install

CONFIG = Path(__file__).resolve().parents[2] / "asterisk"

DEB822 = """\
Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
Components: main

Types: deb
URIs: https://vendor.example/apt
Suites: nodistro
Components: main
"""

ONE_LINE = """\
# deb http://commented.example/debian bookworm main
deb [signed-by=/usr/share/keyrings/x.gpg arch=amd64] http://other.example/debian bookworm main
deb http://other.example/debian-security bookworm-security main
deb https://cloud.example/apt cloud-sdk main
"""


def test_deb822_and_one_line_sources_are_parsed() -> None:
    assert list(image._parse_deb822(DEB822)) == [
        ("http://mirror.example/debian", ["bookworm", "bookworm-updates"], ["main"]),
        ("http://mirror.example/debian-security", ["bookworm-security"], ["main"]),
        ("https://vendor.example/apt", ["nodistro"], ["main"]),
    ]
    assert next(iter(image._parse_one_line(ONE_LINE))) == (
        "http://other.example/debian", ["bookworm"], ["main"])


def test_mirror_candidates_keep_debian_main_archives_only(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = [*image._parse_deb822(DEB822), *image._parse_one_line(ONE_LINE)]
    monkeypatch.setattr(image, "_apt_source_entries", lambda: iter(entries))
    assert la.mirror_candidates() == [
        "http://mirror.example/debian", "http://other.example/debian",
        "https://vendor.example/apt"]
    # The first one that serves sid wins; security and vendor archives never do.
    monkeypatch.setattr(image, "_url_ok", lambda url, timeout=10.0: "other.example" in url)
    monkeypatch.delenv("C2C_ARI_DEBIAN_MIRROR", raising=False)
    assert la.debian_mirror() == "http://other.example/debian"
    monkeypatch.setenv("C2C_ARI_DEBIAN_MIRROR", "http://chosen.example/debian/")
    assert la.debian_mirror() == "http://chosen.example/debian"


def test_no_mirror_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("C2C_ARI_DEBIAN_MIRROR", raising=False)
    monkeypatch.setattr(image, "_apt_source_entries", lambda: iter([]))
    with pytest.raises(la.LocalAsteriskError, match="C2C_ARI_DEBIAN_MIRROR"):
        la.debian_mirror()


def test_cache_dir_is_outside_the_repo_and_overridable(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("C2C_ARI_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert la.cache_dir() == tmp_path / "xdg" / "c2c-ari"
    monkeypatch.setenv("C2C_ARI_CACHE_DIR", str(tmp_path / "mine"))
    assert la.chroot_dir() == tmp_path / "mine" / "chroot"
    assert la.swagger_dir() == tmp_path / "mine" / "chroot/usr/share/asterisk/rest-api"


def test_ports_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("C2C_ARI_HTTP_PORT", raising=False)
    assert la.base_url() == "http://127.0.0.1:8088"
    monkeypatch.setenv("C2C_ARI_HTTP_PORT", "9099")
    assert la.base_url() == "http://127.0.0.1:9099"
    monkeypatch.setenv("C2C_ARI_HTTP_PORT", "http")
    with pytest.raises(la.LocalAsteriskError):
        la.http_port()


def test_generated_password_and_unsafe_overrides(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("C2C_ARI_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("C2C_ARI_USER", raising=False)
    monkeypatch.delenv("C2C_ARI_PASSWORD", raising=False)
    user, password = install.ari_credentials()
    assert user == "c2c" and len(password) >= 24
    assert install.ari_credentials()[1] != password  # nothing stored yet: a new one each time
    monkeypatch.setenv("C2C_ARI_PASSWORD", "x;y")  # `;` starts a comment in Asterisk's files
    with pytest.raises(la.LocalAsteriskError):
        install.ari_credentials()


def _conf(name: str) -> str:
    return (CONFIG / name).read_text()


def test_shipped_defaults_match_the_module() -> None:
    assert re.search(r"(?m)^bindaddr = 127\.0\.0\.1$", _conf("http.conf"))
    assert re.search(rf"(?m)^bindport = {la.DEFAULT_HTTP_PORT}$", _conf("http.conf"))
    assert re.search(rf"(?m)^bind = 127\.0\.0\.1:{la.DEFAULT_SIP_PORT}$", _conf("pjsip.conf"))
    # install_config rewrites exactly these lines when ports are overridden
    assert re.search(r"(?m)^bindport\s*=", _conf("http.conf"))
    assert re.search(r"(?m)^bind\s*=\s*127\.0\.0\.1:\d+", _conf("pjsip.conf"))


def test_no_secret_is_shipped() -> None:
    for path in CONFIG.glob("*.conf"):
        assert not re.search(r"(?mi)^\s*password\s*=", path.read_text()), path.name
    assert "#tryinclude ari_users.conf" in _conf("ari.conf")


def test_required_modules_are_required_and_not_noloaded() -> None:
    modules = _conf("modules.conf")
    required = set(re.findall(r"(?m)^require = (\S+)$", modules))
    noload = set(re.findall(r"(?m)^noload = (\S+)$", modules))
    for name in ("res_ari.so", "res_stasis.so", "res_pjsip.so", "chan_pjsip.so", "app_stasis.so",
                 "res_http_websocket.so", "bridge_simple.so", "bridge_softmix.so",
                 "bridge_native_rtp.so", "res_musiconhold.so", "res_pjsip_header_funcs.so",
                 "res_rtp_asterisk.so", "codec_ulaw.so", "codec_alaw.so"):
        assert name in required, name
    assert not required & noload


def test_dialplan_feature_code_and_stasis_context() -> None:
    dialplan = _conf("extensions.conf")
    assert "exten => _*77*.,1," in dialplan
    assert "Stasis(c2c-ari,dialplan,${C2C_ID},${NUMBER})" in dialplan
    assert re.search(r"(?m)^\[c2c\]$", dialplan)
    rtp = _conf("rtp.conf")
    assert re.search(r"(?m)^icesupport = no$", rtp)
    assert not re.search(r"(?m)^stunaddr", rtp)


def test_settings_precedence_defaults_toml_environment(tmp_path: Path) -> None:
    defaults = LocalAsteriskSettings.load(env={})
    assert (defaults.http_port, defaults.sip_port, defaults.ari_user) == (8088, 5060, "c2c")
    assert defaults.start_timeout == 90 and defaults.asterisk_config is None
    toml = tmp_path / "c2c.toml"
    # The service's own keys are the service's business; ari_user names the same account.
    toml.write_text('port = 8001\nari_user = "ops"\n[local_asterisk]\nhttp_port = 9088\n'
                    'start_timeout = 2.5\ncache_dir = "~/elsewhere"\n')
    from_file = LocalAsteriskSettings.load(env={"C2C_ARI_CONFIG": str(toml)})
    assert (from_file.http_port, from_file.ari_user, from_file.start_timeout) == (
        9088, "ops", 2.5)
    assert from_file.cache_dir == Path("~/elsewhere").expanduser()
    env = {"C2C_ARI_CONFIG": str(toml), "C2C_ARI_HTTP_PORT": "9188", "C2C_ARI_USER": "env",
           "C2C_ARI_ASTERISK_CONFIG": str(tmp_path), "C2C_ARI_START_TIMEOUT": "7"}
    from_env = LocalAsteriskSettings.load(env=env)
    assert (from_env.http_port, from_env.ari_user, from_env.start_timeout) == (9188, "env", 7.0)
    assert from_env.asterisk_config == tmp_path
    assert LocalAsteriskSettings.load(env=env, http_port=9288).http_port == 9288
    toml.write_text("[local_asterisk]\nhttp_prot = 1\n")
    with pytest.raises(ValueError, match="http_prot"):
        LocalAsteriskSettings.load(config_file=toml, env={})
    with pytest.raises(ValueError, match="port number"):
        LocalAsteriskSettings.load(env={"C2C_ARI_SIP_PORT": "70000"})


def test_explicit_settings_win_until_reset(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("C2C_ARI_CACHE_DIR", str(tmp_path / "env"))
    la.configure(LocalAsteriskSettings(cache_dir=tmp_path / "given", http_port=9000))
    try:
        assert la.chroot_dir() == tmp_path / "given" / "chroot"
        assert la.base_url() == "http://127.0.0.1:9000"
    finally:
        la.configure(None)
    assert la.chroot_dir() == tmp_path / "env" / "chroot"


HOST_PASSWD = """\
root:x:0:0:root:/root:/bin/bash
postgres:x:101:104:PostgreSQL administrator:/var/lib/postgresql:/bin/bash
someone:x:200000:200000::/home/someone:/bin/bash
"""
HOST_GROUP = """\
root:x:0:
_ssh:x:101:
postgres:x:104:
big:x:200001:
"""
CHROOT_PASSWD = """\
root:x:0:0:root:/root:/bin/bash
asterisk:x:101:101:Asterisk PBX daemon:/var/lib/asterisk:/usr/sbin/nologin
"""
CHROOT_GROUP = """\
root:x:0:
dialout:x:20:asterisk
asterisk:x:101:
"""


def test_the_asterisk_ids_are_free_on_the_host_and_in_the_chroot() -> None:
    # 200000 is a host user's uid, 200001 a host group's gid: the first number free as both.
    assert ids.choose_id([HOST_PASSWD, CHROOT_PASSWD], [HOST_GROUP, CHROOT_GROUP]) == 200_002
    # Deterministic: the same files give the same number.
    assert ids.choose_id([HOST_PASSWD], [HOST_GROUP]) == 200_002
    assert ids.choose_id([], [], start=300) == 300
    assert ids.choose_id(["a:x:7:7::/:/bin/sh\n"], ["g:x:8:\n"], start=7) == 9
    assert ids.user_ids(CHROOT_PASSWD, CHROOT_GROUP) == (101, 101)
    passwd, group = ids.renumbered(CHROOT_PASSWD, CHROOT_GROUP, (101, 101), (200_002, 200_002))
    assert ids.user_ids(passwd, group) == (200_002, 200_002)
    assert "root:x:0:0:" in passwd and "dialout:x:20:asterisk" in group


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_renumbering_moves_the_files_once(tmp_path: Path) -> None:
    host, root = tmp_path / "host", tmp_path / "root"
    (host).mkdir()
    (host / "passwd").write_text(HOST_PASSWD)
    (host / "group").write_text(HOST_GROUP)
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text(CHROOT_PASSWD)
    (root / "etc/group").write_text(CHROOT_GROUP)
    spool = root / "var/spool/asterisk"
    spool.mkdir(parents=True)
    (spool / "outgoing").write_text("")
    os.chown(spool, 101, 101)
    os.chown(spool / "outgoing", 101, 0)
    spool.chmod(0o2750)  # set-group-id, which chown would clear
    (root / "etc/other").write_text("")
    os.chown(root / "etc/other", 0, 0)

    assert ids.ensure_own_ids(root, host_etc=host) is True
    assert ids.user_ids((root / "etc/passwd").read_text(), (root / "etc/group").read_text()) \
        == (200_002, 200_002)
    assert (spool.stat().st_uid, spool.stat().st_gid) == (200_002, 200_002)
    assert spool.stat().st_mode & 0o7777 == 0o2750
    assert ((spool / "outgoing").stat().st_uid, (spool / "outgoing").stat().st_gid) == (
        200_002, 0)
    assert (root / "etc/other").stat().st_uid == 0
    assert ids.read_marker(root) == {"user": "asterisk", "uid": 200_002, "gid": 200_002,
                                     "from": [101, 101], "done": True, "files": 2}
    # Recorded: the next start leaves it alone, unless the host takes the id meanwhile.
    assert ids.ensure_own_ids(root, host_etc=host) is False
    (host / "passwd").write_text(HOST_PASSWD + "late:x:200002:200002::/:/bin/sh\n")
    assert ids.ensure_own_ids(root, host_etc=host) is True
    assert spool.stat().st_uid == 200_003


@pytest.fixture
def default_ports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("C2C_ARI_CACHE_DIR", str(tmp_path))
    for name in ("C2C_ARI_HTTP_PORT", "C2C_ARI_SIP_PORT", "C2C_ARI_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_node_one_keeps_the_ports_and_paths_of_before(default_ports: Path) -> None:
    one = la.Node(1)
    assert (one.http_port, one.sip_port, one.rtp_range) == (8088, 5060, None)
    assert (one.etc_dir, one.directories, one.asterisk_args) == ("/etc/asterisk", {}, [])
    assert one.credentials_file == la.credentials_file() == default_ports / "state/ari.json"
    assert one.pid_file == default_ports / "state/asterisk.pid"
    assert la.asterisk_log_file() == default_ports / "chroot/var/log/asterisk/messages.log"
    assert re.search(r"(?m)^rtpstart = 10000$", _conf("rtp.conf"))
    assert re.search(r"(?m)^rtpend = 11999$", _conf("rtp.conf"))


def test_nodes_never_share_a_port_a_directory_or_a_name(default_ports: Path) -> None:
    nodes = [la.Node(k) for k in range(1, la.MAX_NODES + 1)]
    two = nodes[1]
    assert (two.http_port, two.sip_port, two.rtp_range) == (8188, 5160, (12000, 12999))
    assert two.url == "http://127.0.0.1:8188"
    sip = {n.sip_port for n in nodes}
    http = {n.http_port for n in nodes}
    assert len(sip) == len(http) == len(nodes) and not sip & http
    # The tests' SIPp peers (agents, trunk, phones) and their media ports stay free.
    assert not sip & set(range(5071, 5100))
    rtp = [range(10000, 12000)] + [range(a, b + 1) for a, b in
                                   (n.rtp_range for n in nodes[1:] if n.rtp_range)]
    assert sum(len(r) for r in rtp) == len(set().union(*rtp))
    assert max(r.stop for r in rtp) <= 20000
    names = {n.name for n in nodes}
    entity_ids = {n.entity_id for n in nodes}
    assert len(names) == len(entity_ids) == len(nodes)
    # The service takes channels whose ids start with c2c- for its own.
    assert not any(name.startswith("c2c-") for name in names)
    assert all(re.fullmatch(r"02(:[0-9a-f]{2}){5}", e) for e in entity_ids)
    own = [set(n.directories.values()) for n in nodes[1:]]
    assert all(own) and sum(map(len, own)) == len(set().union(*own))
    assert two.directories["astetcdir"] == two.etc_dir == "/etc/asterisk-node2"
    assert two.asterisk_args == ["-C", "/etc/asterisk-node2/asterisk.conf"]
    assert two.state_dir == default_ports / "state/node2"
    assert two.log_file == default_ports / "chroot/var/log/asterisk-node2/messages.log"
    for bad in (0, la.MAX_NODES + 1):
        with pytest.raises(la.LocalAsteriskError):
            la.Node(bad)


def test_node_ports_follow_node_one(
        default_ports: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C2C_ARI_HTTP_PORT", "9000")
    monkeypatch.setenv("C2C_ARI_SIP_PORT", "6000")
    assert (la.Node(3).http_port, la.Node(3).sip_port) == (9200, 6200)


def test_each_node_gets_the_shipped_configuration_with_its_own_ports_and_names(
        default_ports: Path) -> None:
    one, two = la.Node(1), la.Node(2)
    for path in sorted(CONFIG.glob("*.conf")):
        if path.name not in ("http.conf", "pjsip.conf", "rtp.conf", "asterisk.conf"):
            # The dialplan, endpoints' other settings, modules...: the same on every node.
            assert install.configure_node(path.name, path.read_text(), two) == path.read_text()
    http = install.configure_node("http.conf", _conf("http.conf"), two)
    assert re.search(r"(?m)^bindport = 8188$", http)
    pjsip = install.configure_node("pjsip.conf", _conf("pjsip.conf"), two)
    assert re.search(r"(?m)^bind = 127\.0\.0\.1:5160$", pjsip)
    assert "contact = sip:1001@127.0.0.1:5071" in pjsip  # the same peers
    rtp = install.configure_node("rtp.conf", _conf("rtp.conf"), two)
    assert re.search(r"(?m)^rtpstart = 12000$", rtp) and re.search(r"(?m)^rtpend = 12999$", rtp)
    assert install.configure_node("rtp.conf", _conf("rtp.conf"), one) == _conf("rtp.conf")

    first = install.configure_node("asterisk.conf", _conf("asterisk.conf"), one)
    assert re.search(r"(?m)^\[options\]\nsystemname = node1\nentityid = 02:", first)
    assert not re.search(r"(?m)^\[directories", first)
    second = install.configure_node("asterisk.conf", _conf("asterisk.conf"), two)
    assert re.search(r"(?m)^systemname = node2$", second)
    assert f"entityid = {two.entity_id}\n" in second
    # A real section: `[directories](!)` would be a template, which Asterisk ignores.
    assert re.search(r"(?m)^\[directories\]$", second)
    assert re.search(r"(?m)^astetcdir => /etc/asterisk-node2$", second)
    assert re.search(r"(?m)^astrundir => /var/run/asterisk-node2$", second)


def test_paths_inside_the_chroot_never_lead_to_the_host(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "var").mkdir(parents=True)
    (root / "run").mkdir()
    (root / "var/run").symlink_to("/run")  # as Debian has it
    (root / "var/lock").symlink_to("../run/lock")
    assert la.common.inside(root, "/var/run/asterisk-node2") == root / "run/asterisk-node2"
    assert la.common.inside(root, "/var/lock") == root / "run/lock"
    assert la.common.inside(root, "/var/lib/asterisk") == root / "var/lib/asterisk"
    assert la.common.inside(root, "/../../etc") == root / "etc"


def test_every_node_gets_the_one_stored_password(
        default_ports: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("C2C_ARI_USER", raising=False)
    monkeypatch.delenv("C2C_ARI_PASSWORD", raising=False)
    # Node 2 was started alone once: node 1 reuses its password rather than make another.
    install.write_credentials(la.Node(2), "c2c", "stored-once")
    assert install.ari_credentials() == ("c2c", "stored-once")
    info = la.read_credentials(2)
    assert info is not None and (info.node, info.name, info.url) == (
        2, "node2", "http://127.0.0.1:8188")
    assert (default_ports / "state/node2/ari.json").stat().st_mode & 0o777 == 0o600
    assert la.read_credentials(1) is None


def test_one_toml_file_serves_the_service_and_the_local_asterisk(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from c2c_ari.config import LocalAsteriskSettings, Settings

    path = tmp_path / "c2c.toml"
    path.write_text('port = 8100\n\n[local_asterisk]\nhttp_port = 8188\n')
    assert Settings.load(path, env={}).port == 8100
    assert LocalAsteriskSettings.load(path, env={}).http_port == 8188
