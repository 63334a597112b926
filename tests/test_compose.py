"""compose.yaml and the two Dockerfiles, checked without a Docker engine.

The file is validated against the Compose Specification's JSON Schema (check-jsonschema ships
it); every path it names must exist; each image is built on paper (its COPY instructions
applied to its build context as .dockerignore filters it) to show that what the image needs
gets in; the service's environment names real settings; and the Asterisk entrypoint is run
against a copy of the shipped configuration.
"""

from __future__ import annotations

import dataclasses
import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from c2c_ari import localasterisk
from c2c_ari.config import ENV_PREFIX, Settings, env_name

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose.yaml"
ENTRYPOINT = ROOT / "asterisk" / "docker-entrypoint.sh"
SERVICE = "c2c-ari"
ASTERISK = "asterisk"


def load_compose(path: Path = COMPOSE) -> dict:
    return YAML(typ="safe").load(path.read_text())


def services() -> dict[str, dict]:
    return load_compose()["services"]


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(path)],
        capture_output=True, text=True, timeout=120,
    )


# --------------------------------------------------------------------------- interpolation

_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?error} (the forms compose.yaml uses)."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m["name"], m["op"], m["arg"]
        current = env.get(name)
        unset = current is None or (current == "" and op is not None and op.startswith(":"))
        if op is not None and op.endswith("?") and unset:
            raise LookupError(f"{name}: {arg}")
        if op is not None and op.endswith("-") and unset:
            return arg
        return current or ""

    return _VAR.sub(one, value.replace("$$", "\0")).replace("\0", "$")


def environment(service: dict, env: dict[str, str]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {key: interpolate(str(value), env) for key, value in raw.items()}


# --------------------------------------------------------------------------- .dockerignore


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore pattern -> regex (moby/patternmatcher's translation)."""
    out, i = "^", 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*" and pattern[i + 1:i + 2] == "*":
            i += 2
            if pattern[i:i + 1] == "/":
                i += 1
            out += ".*" if i >= len(pattern) else "(.*/)?"
            continue
        if ch == "*":
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        elif ch in ".+()|{}$^":
            out += "\\" + ch
        else:
            out += ch
        i += 1
    return re.compile(out + "$")


@dataclasses.dataclass
class DockerIgnore:
    """The patterns of one .dockerignore; excluded() answers as `docker build` does."""

    rules: list[tuple[bool, re.Pattern[str]]]

    @classmethod
    def parse(cls, text: str) -> DockerIgnore:
        rules = []
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            line = line.strip()
            if not line:
                continue
            negate = line.startswith("!")
            if negate:
                line = line[1:].strip()
            line = posixpath.normpath(line)
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
            rules.append((negate, _pattern_regex(line)))
        return cls(rules)

    @classmethod
    def for_build(cls, context: Path, dockerfile: Path) -> DockerIgnore:
        """<Dockerfile>.dockerignore beside the Dockerfile wins, else <context>/.dockerignore."""
        for candidate in (dockerfile.with_name(dockerfile.name + ".dockerignore"),
                          context / ".dockerignore"):
            if candidate.is_file():
                return cls.parse(candidate.read_text())
        return cls([])

    def excluded(self, rel: str) -> bool:
        parts = rel.split("/")
        candidates = ["/".join(parts[:n]) for n in range(len(parts), 0, -1)]
        excluded = False
        for negate, regex in self.rules:
            if any(regex.match(c) for c in candidates):
                excluded = not negate
        return excluded


# --------------------------------------------------------------------------- Dockerfiles


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, with continuation lines joined."""
    result, pending = [], ""
    for line in dockerfile.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if pending and line.lstrip().startswith("#"):
            continue  # comments inside a continued instruction are dropped
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1]
            continue
        full = (pending + line).strip()
        pending = ""
        word, _, rest = full.partition(" ")
        result.append((word.upper(), rest.strip()))
    assert not pending, f"{dockerfile}: ends inside a continued line"
    return result


def exec_form(args: str) -> list[str] | None:
    return json.loads(args) if args.startswith("[") else None


@dataclasses.dataclass
class Build:
    name: str
    context: Path
    dockerfile: Path

    @property
    def ignore(self) -> DockerIgnore:
        return DockerIgnore.for_build(self.context, self.dockerfile)

    def copies(self) -> Iterator[tuple[list[str], str, str]]:
        """(sources, destination, WORKDIR then) of each COPY/ADD from the build context."""
        workdir = "/"
        for word, args in instructions(self.dockerfile):
            if word == "WORKDIR":
                workdir = posixpath.join(workdir, args)
            if word not in ("COPY", "ADD"):
                continue
            words = exec_form(args) or args.split()
            if any(w.startswith("--from") for w in words):
                continue
            words = [w for w in words if not w.startswith("--")]
            assert len(words) >= 2, f"{self.dockerfile}: {word} {args}"
            yield words[:-1], words[-1], workdir

    def sources(self, pattern: str) -> list[Path]:
        """What one COPY source names in the context, less what .dockerignore drops."""
        assert not Path(pattern).is_absolute() and ".." not in Path(pattern).parts, pattern
        matched = sorted(self.context.glob(pattern)) if re.search(r"[*?\[]", pattern) else (
            [self.context / pattern] if (self.context / pattern).exists() else [])
        return [p for p in matched if not self.ignore.excluded(self.rel(p))]

    def rel(self, path: Path) -> str:
        return path.relative_to(self.context).as_posix()

    def tree(self, path: Path) -> Iterator[Path]:
        """A copied directory's entries that the context keeps (symlinks are not followed)."""
        for dirpath, dirnames, filenames in os.walk(path):
            base = Path(dirpath)
            dirnames[:] = [d for d in dirnames if not self.ignore.excluded(self.rel(base / d))
                           or (base / d).is_symlink()]
            for name in [*filenames, *(d for d in dirnames if (base / d).is_symlink())]:
                if not self.ignore.excluded(self.rel(base / name)):
                    yield base / name

    def image(self, root: Path) -> Path:
        """Apply the COPY instructions to an empty folder standing for the image's filesystem."""
        for sources, dest, workdir in self.copies():
            target = posixpath.join(workdir, dest)
            for pattern in sources:
                matched = self.sources(pattern)
                assert matched, f"{self.dockerfile}: COPY {pattern}: nothing in the build " \
                                f"context {self.context} (missing, or .dockerignore drops it)"
                for src in matched:
                    into_dir = dest.endswith("/") or len(sources) > 1 or \
                        any(ch in pattern for ch in "*?[")
                    if src.is_dir() and not src.is_symlink():
                        for item in self.tree(src):
                            _place(item, root / target.lstrip("/") / item.relative_to(src))
                    else:
                        where = root / target.lstrip("/")
                        _place(src, where / src.name if into_dir else where)
        return root

    def final(self, word: str) -> list[str] | None:
        found = [args for w, args in instructions(self.dockerfile) if w == word]
        return exec_form(found[-1]) if found else None


def _place(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.is_symlink():
        os.symlink(os.readlink(src), dest)
    else:
        shutil.copyfile(src, dest)


def builds() -> dict[str, Build]:
    found = {}
    for name, service in services().items():
        build = service.get("build")
        if build is None:
            continue
        if isinstance(build, str):
            build = {"context": build}
        context = (ROOT / build.get("context", ".")).resolve()
        found[name] = Build(name, context, context / build.get("dockerfile", "Dockerfile"))
    return found


# --------------------------------------------------------------------------- the file itself


def test_compose_matches_the_compose_specification() -> None:
    done = check_jsonschema(COMPOSE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_schema_check_refuses_a_broken_file(tmp_path: Path) -> None:
    # The same check on a copy with a misspelt key must fail: the validator really runs.
    text = COMPOSE.read_text()
    assert "    depends_on:\n" in text
    broken = tmp_path / "compose.yaml"
    broken.write_text(text.replace("    depends_on:\n", "    depends_onn:\n", 1))
    done = check_jsonschema(broken)
    assert done.returncode != 0, done.stdout


def test_the_two_services_are_built_from_the_project() -> None:
    found = builds()
    assert set(found) == {ASTERISK, SERVICE}
    assert found[SERVICE].dockerfile == ROOT / "Dockerfile"
    assert found[ASTERISK].dockerfile == ROOT / "asterisk" / "Dockerfile"


def test_every_referenced_path_exists() -> None:
    for name, build in builds().items():
        assert build.context.is_dir(), f"{name}: no build context {build.context}"
        assert ROOT in (build.context, *build.context.parents), f"{name}: context outside repo"
        assert build.dockerfile.is_file(), f"{name}: no Dockerfile {build.dockerfile}"
    for name, service in services().items():
        for volume in service.get("volumes", []):
            if isinstance(volume, str):
                source = volume.split(":", 1)[0]
                is_bind = source.startswith((".", "/", "~"))
            else:
                source, is_bind = volume.get("source", ""), volume.get("type") == "bind"
            if is_bind:
                assert (ROOT / source).exists(), f"{name}: bind mount of missing {source}"
        for env_file in service.get("env_file", []):
            path = env_file if isinstance(env_file, str) else env_file["path"]
            assert (ROOT / path).is_file(), f"{name}: missing env_file {path}"


def test_named_volumes_are_declared() -> None:
    declared = set(load_compose().get("volumes") or {})
    for service in services().values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source")
            if source and not source.startswith((".", "/", "~")):
                assert source in declared, source


# --------------------------------------------------------------------------- the images


@pytest.mark.parametrize("name", [ASTERISK, SERVICE])
def test_every_copied_file_is_in_the_build_context(name: str) -> None:
    build = builds()[name]
    copies = list(build.copies())
    assert copies, f"{build.dockerfile}: no COPY"
    for sources, _dest, _workdir in copies:
        for pattern in sources:
            matched = build.sources(pattern)
            assert matched, f"{build.dockerfile}: COPY {pattern}: missing or .dockerignore'd"
            for path in matched:
                if path.is_dir():
                    assert any(p.is_file() for p in build.tree(path)), \
                        f"{build.dockerfile}: COPY {pattern}: .dockerignore leaves it empty"


def pip_install_dir(build: Build, image: Path) -> Path:
    """Where, in the image on paper, the Dockerfile runs `pip install .`."""
    workdir = "/"
    for word, args in instructions(build.dockerfile):
        if word == "WORKDIR":
            workdir = posixpath.join(workdir, args)
        elif word == "RUN" and re.search(r"\bpip install (\S+ )*\.(\s|$)", args):
            return image / workdir.lstrip("/")
    raise AssertionError(f"no `pip install .` in {build.dockerfile}")


def python_checks(dockerfile: Path) -> list[tuple[str, dict[str, str]]]:
    """The code of every `python -c "..."` of the RUN lines, with the ENV of its stage."""
    found: list[tuple[str, dict[str, str]]] = []
    env: dict[str, str] = {}
    for word, args in instructions(dockerfile):
        if word == "FROM":
            env = {}
        elif word == "ENV":
            words = shlex.split(args)
            if "=" in words[0]:
                env.update(w.split("=", 1) for w in words)
            else:
                env[words[0]] = args.split(None, 1)[1]
        elif word == "RUN":
            words = exec_form(args) or shlex.split(args)
            for i, w in enumerate(words[:-2]):
                if re.fullmatch(r"python3?(\.\d+)?", posixpath.basename(w)) and \
                        words[i + 1] == "-c":
                    found.append((words[i + 2], dict(env)))
    return found


def web_stage_output(static: Path) -> None:
    """Stand-ins for what the web stage copies into the image: the files web/build.mjs
    writes, named as it names them (their contents matter to no check)."""
    names = re.findall(r"new URL\('([^'/]+)', out\)", (ROOT / "web/build.mjs").read_text())
    assert names, "web/build.mjs names no output file"
    static.mkdir(parents=True, exist_ok=True)
    for name in names:
        (static / name).write_text(f"stand-in for the web build's {name}\n")


def test_service_image_gets_the_package_and_its_schemas(tmp_path: Path) -> None:
    build = builds()[SERVICE]
    image = build.image(tmp_path)
    src = pip_install_dir(build, image)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert (src / "pyproject.toml").read_text() == (ROOT / "pyproject.toml").read_text()
    assert (src / project["project"]["readme"]).is_file()
    # Every module of the package, and each package-data file through the schemas symlink.
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "c2c_ari").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert modules
    assert modules <= {p.relative_to(src).as_posix() for p in (src / "c2c_ari").rglob("*.py")}
    package_data = project["tool"]["setuptools"]["package-data"]
    for package, globs in package_data.items():
        for pattern in globs:
            if pattern == "static/*":
                # Built by the web stage, never taken from a local build.
                assert not list((src / package / "static").glob("*"))
                assert any(w == "COPY" and "--from=web" in a and a.endswith(
                    f"./{package}/static") for w, a in instructions(build.dockerfile))
                continue
            wanted = sorted(p.name for p in (ROOT / package).glob(pattern))
            assert wanted, f"{package}/{pattern} matches nothing in the repository"
            got = sorted(p.name for p in (src / package).glob(pattern))
            assert got == wanted, f"{package}/{pattern} in the image: {got}"
            for name in wanted:
                ours = (ROOT / package / pattern).parent / name
                assert ((src / package / pattern).parent / name).read_bytes() == \
                    ours.read_bytes()


def test_the_python_checks_of_the_service_image_pass(tmp_path: Path) -> None:
    # What the build runs after `pip install .`, run here on the package as the image holds
    # it, from a folder outside the source tree: a check naming a module or function that no
    # longer exists would fail the real build.
    build = builds()[SERVICE]
    checks = python_checks(build.dockerfile)
    assert checks, f"no `python -c` check in {build.dockerfile}"
    installed = pip_install_dir(build, build.image(tmp_path / "image"))
    web_stage_output(installed / "c2c_ari" / "static")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("C2C_", "PYTHON"))} | {"PYTHONPATH": str(installed)}
    where = subprocess.run([sys.executable, "-c", "import c2c_ari; print(c2c_ari.__file__)"],
                           cwd=elsewhere, env=base, capture_output=True, text=True, timeout=60)
    assert Path(where.stdout.strip()).is_relative_to(installed), where.stdout + where.stderr
    for code, env in checks:
        # The shell would expand these; the code is run here as written.
        assert "$" not in code and "`" not in code, code
        done = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=base | env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"python -c {code!r}:\n{done.stderr}"


def test_symlinks_in_the_images_resolve(tmp_path: Path) -> None:
    for name, build in builds().items():
        image = build.image(tmp_path / name)
        links = [p for p in image.rglob("*") if p.is_symlink()]
        for link in links:
            target = os.readlink(link)
            assert not target.startswith("/"), f"{name}: absolute link {link} -> {target}"
            assert link.resolve().exists(), f"{name}: {link} -> {target} dangles in the image"
        if name == SERVICE:
            assert links, "c2c_ari/schema_files is a symlink: the image should carry it"


def test_asterisk_image_carries_the_shipped_configuration(tmp_path: Path) -> None:
    build = builds()[ASTERISK]
    image = build.image(tmp_path)
    shipped = sorted(p.name for p in (ROOT / "asterisk").glob("*.conf"))
    assert "ari.conf" in shipped and "modules.conf" in shipped
    for conf in shipped:
        copied = image / "etc/asterisk" / conf
        assert copied.is_file(), f"{conf} is not copied into /etc/asterisk"
        assert copied.read_text() == (ROOT / "asterisk" / conf).read_text()
    assert not (image / "etc/asterisk/ari_users.conf").exists(), "no credentials in the image"
    entrypoint = build.final("ENTRYPOINT")
    assert entrypoint, "the entrypoint writes ari_users.conf: it must be the ENTRYPOINT"
    script = image / entrypoint[0].lstrip("/")
    assert script.read_bytes() == ENTRYPOINT.read_bytes()
    assert build.final("CMD") == ["asterisk", "-f", "-U", "asterisk", "-G", "asterisk"]


def test_asterisk_image_installs_what_the_local_asterisk_has() -> None:
    build = builds()[ASTERISK]
    froms = [args for word, args in instructions(build.dockerfile) if word == "FROM"]
    assert froms == [f"debian:{localasterisk.SUITE}"]
    installs = [args for word, args in instructions(build.dockerfile)
                if word == "RUN" and "apt-get install" in args]
    assert installs
    words = set(re.split(r"\s+", " ".join(installs)))
    missing = set(localasterisk.PACKAGES) - words
    assert not missing, f"asterisk/Dockerfile does not install {sorted(missing)}"
    # musiconhold.conf plays files from Debian's music-on-hold package.
    moh = (ROOT / "asterisk" / "musiconhold.conf").read_text()
    if re.search(r"(?m)^mode\s*=\s*files", moh):
        assert any(w.startswith("asterisk-moh-opsound") for w in words)


@pytest.mark.parametrize(("path", "kept"), [
    ("pyproject.toml", True),
    ("c2c_ari/app.py", True),
    ("schemas/connect.json", True),
    ("c2c_ari/__pycache__/app.cpython-311.pyc", False),
    (".venv/bin/python", False),
    (".git/config", False),
    (".env", False),
    ("tests/test_compose.py", False),
    ("data/c2c-ari.sqlite3", False),
])
def test_dockerignore_keeps_only_what_the_service_image_needs(path: str, kept: bool) -> None:
    ignore = DockerIgnore.parse((ROOT / ".dockerignore").read_text())
    assert ignore.excluded(path) is not kept


def test_dockerignore_matcher_follows_docker_rules() -> None:
    ignore = DockerIgnore.parse("*\n!keep\n**/junk\n/abs/*.txt\n!abs/ok.txt\n")
    assert ignore.excluded("other")
    assert ignore.excluded("other/deep/file")  # a parent matches
    assert not ignore.excluded("keep/file")
    assert ignore.excluded("keep/a/junk/file")
    assert ignore.excluded("abs/x.txt")
    assert not ignore.excluded("abs/ok.txt")
    assert not DockerIgnore.parse("").excluded("anything")


# --------------------------------------------------------------------------- the environment


def known_env_names() -> set[str]:
    return {env_name(f.name) for f in dataclasses.fields(Settings)} | {f"{ENV_PREFIX}CONFIG"}


def test_service_environment_names_real_settings() -> None:
    names = set(services()[SERVICE].get("environment") or {})
    assert names, "the service sets no environment"
    unknown = names - known_env_names()
    assert not unknown, f"not settings of c2c_ari.config.Settings: {sorted(unknown)}"
    assert {env_name("ari_url"), env_name("ari_user"), env_name("ari_password"),
            env_name("data_dir")} <= names


def test_service_settings_load_from_that_environment() -> None:
    env = environment(services()[SERVICE], {"C2C_ARI_PASSWORD": "s3cret"})
    settings = Settings.load(env=env)
    assert settings.ari_password == "s3cret"
    assert settings.ari_user == "c2c"
    mounts = [v.split(":")[1] if isinstance(v, str) else v["target"]
              for v in services()[SERVICE].get("volumes", [])]
    assert str(settings.data_dir) in mounts, "the SQLite folder must be a volume"


def test_the_password_is_required_and_never_in_the_file() -> None:
    for name in (SERVICE, ASTERISK):
        raw = services()[name]["environment"][env_name("ari_password")]
        assert re.fullmatch(r"\$\{C2C_ARI_PASSWORD:\?[^}]+\}", raw), raw
        with pytest.raises(LookupError):
            environment(services()[name], {})


def test_both_services_share_the_ari_credentials() -> None:
    env = {"C2C_ARI_PASSWORD": "s3cret", "C2C_ARI_USER": "ops"}
    service = environment(services()[SERVICE], env)
    asterisk = environment(services()[ASTERISK], env)
    for setting in ("ari_user", "ari_password"):
        name = env_name(setting)
        assert service[name] == asterisk[name] == env[name]
        assert name in ENTRYPOINT.read_text(), f"the entrypoint does not read {name}"


def test_service_reaches_ari_on_the_compose_network() -> None:
    all_services = services()
    url = environment(all_services[SERVICE], {"C2C_ARI_PASSWORD": "x"})[env_name("ari_url")]
    m = re.fullmatch(r"http://(?P<host>[^:/]+):(?P<port>\d+)", url)
    assert m, url
    assert m["host"] in all_services, f"{url}: no service named {m['host']}"
    http = (ROOT / "asterisk" / "http.conf").read_text()
    assert re.search(rf"(?m)^bindport\s*=\s*{m['port']}\s*$", http), "ARI port differs"
    asterisk = all_services[m["host"]]
    # Reachable from the other container, never published on the host.
    assert str(m["port"]) in [str(p) for p in asterisk.get("expose", [])]
    assert not asterisk.get("ports"), "ARI (and the test SIP setup) must not be published"
    assert asterisk["environment"].get("ASTERISK_HTTP_BIND") == "0.0.0.0"
    assert asterisk.get("healthcheck", {}).get("test"), "the service waits for its health"
    assert all_services[SERVICE]["depends_on"][m["host"]]["condition"] == "service_healthy"


def test_service_command_listens_where_it_is_published() -> None:
    service = services()[SERVICE]
    command = service["command"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert command[0] in project["project"]["scripts"]
    assert command[1] == "serve"
    flags = dict(zip(command[2::2], command[3::2], strict=True))
    assert flags["--host"] == "0.0.0.0"
    published = [interpolate(p, {}) for p in service["ports"]]
    assert [p.rsplit(":", 1)[1] for p in published] == [flags["--port"]]
    # Loopback unless the operator says otherwise (plain HTTP).
    assert published == [f"127.0.0.1:8000:{flags['--port']}"]


# --------------------------------------------------------------------------- the entrypoint


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    """A folder standing for the container's /: the shipped config and a fake `asterisk`."""
    etc = tmp_path / "root/etc/asterisk"
    etc.mkdir(parents=True)
    for conf in (ROOT / "asterisk").glob("*.conf"):
        shutil.copyfile(conf, etc / conf.name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "asterisk"
    fake.write_text('#!/bin/sh\necho "started: $*"\n')
    fake.chmod(0o755)
    return tmp_path


def run_entrypoint(fake_root: Path, env: dict[str, str], *command: str,
                   ) -> subprocess.CompletedProcess[str]:
    full_env = {"PATH": f"{fake_root / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
                "ASTERISK_ROOT": str(fake_root / "root"), **env}
    return subprocess.run(
        ["/bin/sh", str(ENTRYPOINT), *(command or
                                       ("asterisk", "-f", "-U", "asterisk", "-G", "asterisk"))],
        env=full_env, capture_output=True, text=True, timeout=30,
    )


# Every character ari.conf can hold.
CREDENTIALS = {"C2C_ARI_USER": "ops", "C2C_ARI_PASSWORD": "Pw-1.~!@%^*+=:/"}


def test_entrypoint_writes_the_ari_user_and_opens_ari_to_the_network(fake_root: Path) -> None:
    done = run_entrypoint(fake_root, CREDENTIALS)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "started: -f -U asterisk -G asterisk\n"
    etc = fake_root / "root/etc/asterisk"
    users = (etc / "ari_users.conf").read_text()
    assert "\n[ops]\ntype = user\n" in users
    assert "\npassword_format = plain\npassword = Pw-1.~!@%^*+=:/\n" in users
    assert (etc / "ari_users.conf").stat().st_mode & 0o777 == 0o640
    http = (etc / "http.conf").read_text()
    assert re.findall(r"(?m)^bindaddr.*$", http) == ["bindaddr = 0.0.0.0"]
    shipped = (ROOT / "asterisk/http.conf").read_text()
    assert http == shipped.replace("bindaddr = 127.0.0.1", "bindaddr = 0.0.0.0")
    assert (etc / "http.conf").stat().st_mode & 0o777 == 0o644
    assert "pjsip.conf is the shipped test configuration" in done.stderr
    # No ASTERISK_SYSTEMNAME: asterisk.conf as shipped.
    assert (etc / "asterisk.conf").read_text() == (ROOT / "asterisk/asterisk.conf").read_text()
    for sub in ("var/run/asterisk", "var/log/asterisk", "var/lib/asterisk", "var/spool/asterisk"):
        assert (fake_root / "root" / sub).is_dir()
    assert not list(etc.glob(".*")), "temporary files left behind"
    # A second start (container restart) gives the same files.
    again = run_entrypoint(fake_root, CREDENTIALS)
    assert again.returncode == 0, again.stderr
    assert (etc / "http.conf").read_text() == http
    assert (etc / "ari_users.conf").read_text() == users


def test_entrypoint_keeps_ari_on_loopback_when_asked(fake_root: Path) -> None:
    done = run_entrypoint(fake_root, {"C2C_ARI_PASSWORD": "x", "ASTERISK_HTTP_BIND": "127.0.0.1"})
    assert done.returncode == 0, done.stderr
    etc = fake_root / "root/etc/asterisk"
    assert (etc / "http.conf").read_text() == (ROOT / "asterisk/http.conf").read_text()
    assert "\n[c2c]\n" in (etc / "ari_users.conf").read_text()


def test_entrypoint_sets_the_systemname_at_every_start(fake_root: Path) -> None:
    etc = fake_root / "root/etc/asterisk"
    shipped = (ROOT / "asterisk/asterisk.conf").read_text()
    assert "\n[options]\n" in shipped and not re.search(r"(?m)^\s*systemname", shipped)
    done = run_entrypoint(fake_root, {**CREDENTIALS, "ASTERISK_SYSTEMNAME": "node-1.a_b"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("started")
    written = (etc / "asterisk.conf").read_text()
    assert written == shipped.replace("\n[options]\n", "\n[options]\nsystemname = node-1.a_b\n")
    assert (etc / "asterisk.conf").stat().st_mode & 0o777 == 0o644
    again = run_entrypoint(fake_root, {**CREDENTIALS, "ASTERISK_SYSTEMNAME": "node-1.a_b"})
    assert again.returncode == 0, again.stderr
    assert (etc / "asterisk.conf").read_text() == written
    # Another name replaces it: still one line.
    renamed = run_entrypoint(fake_root, {**CREDENTIALS, "ASTERISK_SYSTEMNAME": "node2"})
    assert renamed.returncode == 0, renamed.stderr
    assert (etc / "asterisk.conf").read_text() == written.replace("node-1.a_b", "node2")
    assert not list(etc.glob(".*")), "temporary files left behind"


@pytest.mark.parametrize(("before", "after"), [
    # A systemname line of [options] is replaced where it is, duplicates dropped.
    ("[options]\nverbose = 3\nsystemname = old\n\n[compat]\npbx_realtime = 1.6\n",
     "[options]\nverbose = 3\nsystemname = NEW\n\n[compat]\npbx_realtime = 1.6\n"),
    ("[options] ; main\n  systemname=old\nsystemname = older\nverbose = 3\n",
     "[options] ; main\nsystemname = NEW\nverbose = 3\n"),
    # One in another section is not [options]'s.
    ("[compat]\nsystemname = other\n[options]\nverbose = 3\n",
     "[compat]\nsystemname = other\n[options]\nsystemname = NEW\nverbose = 3\n"),
    # No [options] section at all: one is added.
    ("[directories]\nastetcdir => /etc/asterisk\n",
     "[directories]\nastetcdir => /etc/asterisk\n\n[options]\nsystemname = NEW\n"),
])
def test_entrypoint_systemname_in_an_operators_asterisk_conf(
        fake_root: Path, before: str, after: str) -> None:
    conf = fake_root / "root/etc/asterisk/asterisk.conf"
    conf.write_text(before)
    for _ in range(2):
        done = run_entrypoint(fake_root, {**CREDENTIALS, "ASTERISK_SYSTEMNAME": "NEW"})
        assert done.returncode == 0, done.stderr
        assert conf.read_text() == after


def test_entrypoint_refuses_a_systemname_without_asterisk_conf(fake_root: Path) -> None:
    (fake_root / "root/etc/asterisk/asterisk.conf").unlink()
    done = run_entrypoint(fake_root, {**CREDENTIALS, "ASTERISK_SYSTEMNAME": "node1"})
    assert done.returncode != 0
    assert "asterisk.conf is missing" in done.stderr
    assert not (fake_root / "root/etc/asterisk/ari_users.conf").exists()
    # Without a systemname to write, asterisk.conf is none of the entrypoint's business.
    assert run_entrypoint(fake_root, CREDENTIALS).returncode == 0


@pytest.mark.parametrize(("env", "message"), [
    ({}, "C2C_ARI_PASSWORD is not set"),
    ({"C2C_ARI_PASSWORD": ""}, "C2C_ARI_PASSWORD is not set"),
    ({"C2C_ARI_PASSWORD": "semi;colon"}, "C2C_ARI_PASSWORD has characters"),
    ({"C2C_ARI_PASSWORD": "two words"}, "C2C_ARI_PASSWORD has characters"),
    ({"C2C_ARI_PASSWORD": "line\nbreak"}, "C2C_ARI_PASSWORD has characters"),
    ({"C2C_ARI_PASSWORD": "[section]"}, "C2C_ARI_PASSWORD has characters"),
    ({"C2C_ARI_PASSWORD": "dollar$x"}, "C2C_ARI_PASSWORD has characters"),
    ({"C2C_ARI_PASSWORD": "mot-de-passé"}, "C2C_ARI_PASSWORD has characters"),
    ({"C2C_ARI_PASSWORD": "ok", "C2C_ARI_USER": "a:b"}, "C2C_ARI_USER"),
    ({"C2C_ARI_PASSWORD": "ok", "ASTERISK_HTTP_BIND": "0.0.0.0/8"}, "ASTERISK_HTTP_BIND"),
    ({"C2C_ARI_PASSWORD": "ok", "ASTERISK_SYSTEMNAME": "node 1"}, "ASTERISK_SYSTEMNAME"),
    ({"C2C_ARI_PASSWORD": "ok", "ASTERISK_SYSTEMNAME": "node;1"}, "ASTERISK_SYSTEMNAME"),
    ({"C2C_ARI_PASSWORD": "ok", "ASTERISK_SYSTEMNAME": "node/1"}, "ASTERISK_SYSTEMNAME"),
    ({"C2C_ARI_PASSWORD": "ok", "ASTERISK_SYSTEMNAME": "nœud"}, "ASTERISK_SYSTEMNAME"),
    ({"C2C_ARI_PASSWORD": "ok", "ASTERISK_SYSTEMNAME": "n\n[x]"}, "ASTERISK_SYSTEMNAME"),
    # Channels with ids starting c2c- are the service's own: it would hang up the phones' calls.
    ({"C2C_ARI_PASSWORD": "ok", "ASTERISK_SYSTEMNAME": "c2c-node1"}, "c2c-ari's own"),
])
def test_entrypoint_refuses_to_start(fake_root: Path, env: dict[str, str], message: str) -> None:
    done = run_entrypoint(fake_root, env)
    assert done.returncode != 0
    assert "started" not in done.stdout
    assert message in done.stderr
    etc = fake_root / "root/etc/asterisk"
    assert not (etc / "ari_users.conf").exists()
    assert (etc / "http.conf").read_text() == (ROOT / "asterisk/http.conf").read_text()
    assert (etc / "asterisk.conf").read_text() == (ROOT / "asterisk/asterisk.conf").read_text()


def test_entrypoint_runs_other_commands_as_they_are(fake_root: Path) -> None:
    done = run_entrypoint(fake_root, {}, "echo", "hello")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello\n"
    assert not (fake_root / "root/etc/asterisk/ari_users.conf").exists()
