"""compose.yaml and the two Dockerfiles, checked without a Docker engine.

The deployment: PostgreSQL, two Asterisk nodes built from asterisk/Dockerfile, and two
replicas of the service sharing both. The file is validated against the Compose
Specification's JSON Schema (check-jsonschema ships it); every path it names must exist; each
image is built on paper (its COPY instructions applied to its build context as .dockerignore
filters it) to show that what the image needs gets in, and the service image's build-time
checks are run on that; the service's environment names real settings and loads; and the
Asterisk entrypoint is run against a copy of the shipped configuration.
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
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from aiohttp import web
from ruamel.yaml import YAML

from c2c_ari import localasterisk
from c2c_ari.api import operations
from c2c_ari.config import ENV_PREFIX, Settings, env_name

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose.yaml"
ENTRYPOINT = ROOT / "asterisk" / "docker-entrypoint.sh"
ASTERISK_DOCKERFILE = ROOT / "asterisk" / "Dockerfile"
SERVICE = "c2c-ari"
POSTGRES = "postgres"
# What the tests give compose for the variables it requires.
SECRETS = {"C2C_ARI_PASSWORD": "s3cret", "C2C_DB_PASSWORD": "db-s3cret"}


def load_compose(path: Path = COMPOSE) -> dict:
    return YAML(typ="safe").load(path.read_text())


def services() -> dict[str, dict]:
    return load_compose()["services"]


def asterisk_services() -> list[str]:
    """The Asterisk nodes: the services built from asterisk/Dockerfile."""
    return [name for name, build in builds().items() if build.dockerfile == ASTERISK_DOCKERFILE]


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


@pytest.mark.parametrize("block", [*services(), "x-asterisk"])
def test_schema_check_covers_every_service(tmp_path: Path, block: str) -> None:
    # A key no service may have, put in each service (and in the definition the Asterisk
    # nodes share), must be refused: every service goes through the validator.
    text = COMPOSE.read_text()
    header = re.search(rf"(?m)^ *{re.escape(block)}:( &[\w-]+)?\n", text)
    assert header, block
    indent = " " * (len(header[0]) - len(header[0].lstrip()) + 2)
    broken = tmp_path / "compose.yaml"
    broken.write_text(text[:header.end()] + f"{indent}not_a_compose_key: 1\n"
                      + text[header.end():])
    assert load_compose(broken)  # still YAML
    done = check_jsonschema(broken)
    assert done.returncode != 0, done.stdout
    assert "not_a_compose_key" in done.stdout + done.stderr


def test_the_deployment_is_postgres_two_nodes_and_the_service() -> None:
    assert set(services()) == {POSTGRES, "asterisk-1", "asterisk-2", SERVICE}
    found = builds()
    assert set(found) == {"asterisk-1", "asterisk-2", SERVICE}
    assert found[SERVICE].dockerfile == ROOT / "Dockerfile"
    assert sorted(asterisk_services()) == ["asterisk-1", "asterisk-2"]
    # The nodes share one definition: they differ in their systemname alone.
    one, two = (dict(services()[name]) for name in asterisk_services())
    env_one, env_two = one.pop("environment"), two.pop("environment")
    assert one == two
    assert {k: v for k, v in env_one.items() if k != "ASTERISK_SYSTEMNAME"} == \
        {k: v for k, v in env_two.items() if k != "ASTERISK_SYSTEMNAME"}
    # The database: the official image of PostgreSQL 16 or 17 (PGDATA as tested below).
    assert re.fullmatch(r"postgres:1[67](\.\d+)*-bookworm", services()[POSTGRES]["image"])


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


def image_build(dockerfile: Path) -> Build:
    """The build of the services built from that Dockerfile (the same for each of them)."""
    found = {(b.context, b.dockerfile) for b in builds().values() if b.dockerfile == dockerfile}
    assert len(found) == 1, f"{dockerfile}: built {len(found)} ways"
    context, dockerfile = found.pop()
    return Build(dockerfile.parent.name, context, dockerfile)


@pytest.mark.parametrize("dockerfile", [ASTERISK_DOCKERFILE, ROOT / "Dockerfile"],
                         ids=["asterisk", "service"])
def test_every_copied_file_is_in_the_build_context(dockerfile: Path) -> None:
    build = image_build(dockerfile)
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
    build = image_build(ASTERISK_DOCKERFILE)
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
    build = image_build(ASTERISK_DOCKERFILE)
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


# Not settings of the service: libpq's own variables, which psycopg reads.
LIBPQ_ENV = {"PGPASSWORD"}


def known_env_names() -> set[str]:
    return {env_name(f.name) for f in dataclasses.fields(Settings)} | {f"{ENV_PREFIX}CONFIG"}


def service_settings(env: dict[str, str] = SECRETS) -> Settings:
    return Settings.load(env=environment(services()[SERVICE], env))


def test_service_environment_names_real_settings() -> None:
    names = set(services()[SERVICE].get("environment") or {})
    assert names, "the service sets no environment"
    unknown = names - known_env_names() - LIBPQ_ENV
    assert not unknown, f"not settings of c2c_ari.config.Settings: {sorted(unknown)}"
    assert {env_name("ari_user"), env_name("ari_password"), env_name("database"),
            env_name("nodes"), env_name("metrics_listen")} <= names
    # Both replicas get this environment: a fixed node name or instance id would give them
    # the same instance id, and each would take the other's calls for its own.
    assert not names & {env_name("node"), env_name("instance_id")}


def test_service_settings_load_from_that_environment() -> None:
    settings = service_settings()
    assert settings.ari_password == "s3cret"
    assert settings.ari_user == "c2c"
    assert settings.database_target.startswith("postgresql://")
    # Each replica's instance id comes from its own container's host name.
    assert settings.instance_id == ""
    assert settings.node == Settings().node
    assert [node.name for node in settings.nodes] == ["node1", "node2"]
    # No node carries credentials of its own: all take C2C_ARI_USER / C2C_ARI_PASSWORD.
    assert all(node.user == node.password == "" for node in settings.nodes)


def test_replicas_share_a_database_server_not_a_file() -> None:
    service = services()[SERVICE]
    replicas = service["deploy"]["replicas"]
    assert replicas == 2
    # Two processes cannot share a SQLite file (the store locks it): PostgreSQL, always.
    settings = service_settings()
    assert urlsplit(settings.database_target).scheme == "postgresql"
    # So nothing of the service's needs a volume.
    assert not service.get("volumes")


def test_the_passwords_are_required_and_never_in_the_file() -> None:
    required = {"C2C_ARI_PASSWORD": [(name, env_name("ari_password"))
                                     for name in (SERVICE, *asterisk_services())],
                "C2C_DB_PASSWORD": [(SERVICE, "PGPASSWORD"), (POSTGRES, "POSTGRES_PASSWORD")]}
    for variable, uses in required.items():
        for name, key in uses:
            raw = services()[name]["environment"][key]
            assert re.fullmatch(rf"\$\{{{variable}:\?[^}}]+\}}", raw), f"{name}: {key}={raw}"
            with pytest.raises(LookupError, match=variable):
                environment(services()[name], {k: v for k, v in SECRETS.items()
                                               if k != variable})
    # Nor inside the database URL.
    assert urlsplit(service_settings().database_target).password is None
    text = COMPOSE.read_text()
    for value in SECRETS.values():
        assert value not in text


def test_the_nodes_and_the_service_share_the_ari_credentials() -> None:
    env = {**SECRETS, "C2C_ARI_USER": "ops"}
    service = environment(services()[SERVICE], env)
    for node in asterisk_services():
        asterisk = environment(services()[node], env)
        for setting in ("ari_user", "ari_password"):
            name = env_name(setting)
            assert service[name] == asterisk[name] == env[name], node
            assert name in ENTRYPOINT.read_text(), f"the entrypoint does not read {name}"


def test_the_service_and_postgres_share_the_database() -> None:
    service = environment(services()[SERVICE], SECRETS)
    postgres = environment(services()[POSTGRES], SECRETS)
    assert service["PGPASSWORD"] == postgres["POSTGRES_PASSWORD"] == SECRETS["C2C_DB_PASSWORD"]
    url = urlsplit(service_settings().database_target)
    assert url.hostname == POSTGRES
    assert url.port == 5432  # the image's
    assert url.username == postgres["POSTGRES_USER"]
    assert url.path == "/" + postgres["POSTGRES_DB"]
    assert services()[SERVICE]["depends_on"][POSTGRES]["condition"] == "service_healthy"


def test_libpq_takes_the_password_from_pgpassword(monkeypatch: pytest.MonkeyPatch) -> None:
    # What makes PGPASSWORD the password of the service's connections: libpq's defaults.
    password = environment(services()[SERVICE], SECRETS)["PGPASSWORD"]
    monkeypatch.setenv("PGPASSWORD", password)
    defaults = {d.keyword: d.val for d in psycopg.pq.Conninfo.get_defaults()}
    assert defaults[b"password"] == password.encode()


def test_postgres_keeps_its_data_and_stays_private() -> None:
    postgres = services()[POSTGRES]
    assert not postgres.get("ports"), "the database must not be published on the host"
    assert not postgres.get("expose"), "its image already exposes 5432 to the network"
    volumes = [v.split(":") for v in postgres["volumes"]]
    # The official image's PGDATA (up to 17): a named volume, declared.
    assert ["c2c-postgres", "/var/lib/postgresql/data"] in volumes
    assert "c2c-postgres" in (load_compose().get("volumes") or {})
    test = postgres["healthcheck"]["test"]
    env = environment(postgres, SECRETS)
    assert test[:2] == ["CMD", "pg_isready"]
    flags = dict(zip(test[2::2], test[3::2], strict=True))
    assert flags == {"--host": "127.0.0.1", "--username": env["POSTGRES_USER"],
                     "--dbname": env["POSTGRES_DB"]}


def test_service_reaches_every_node_on_the_compose_network() -> None:
    all_services = services()
    http = (ROOT / "asterisk" / "http.conf").read_text()
    bindport = re.search(r"(?m)^bindport\s*=\s*(\d+)\s*$", http)
    assert bindport
    hosts = []
    for node in service_settings().nodes:
        url = urlsplit(node.url)
        assert url.scheme == "http" and url.path in ("", "/"), node.url
        assert url.hostname in asterisk_services(), f"{node.url}: no Asterisk service there"
        assert str(url.port) == bindport[1], f"{node.url}: ARI listens on {bindport[1]}"
        hosts.append(url.hostname)
        condition = all_services[SERVICE]["depends_on"][url.hostname]["condition"]
        assert condition == "service_healthy"
    # Every node once, and no Asterisk service left out.
    assert sorted(hosts) == sorted(set(hosts)) == sorted(asterisk_services())
    for name in asterisk_services():
        asterisk = all_services[name]
        # Reachable from the other containers, never published on the host.
        assert bindport[1] in [str(p) for p in asterisk.get("expose", [])], name
        assert not asterisk.get("ports"), f"{name}: ARI (and the test SIP setup) published"
        assert asterisk["environment"].get("ASTERISK_HTTP_BIND") == "0.0.0.0", name
        assert asterisk.get("healthcheck", {}).get("test"), f"{name}: no health to wait for"


def test_each_node_has_its_own_systemname() -> None:
    names = [environment(services()[name], SECRETS).get("ASTERISK_SYSTEMNAME")
             for name in asterisk_services()]
    assert all(names), "a node without a systemname"
    assert len(set(names)) == len(names), f"channel ids of the nodes could collide: {names}"
    assert "ASTERISK_SYSTEMNAME" in ENTRYPOINT.read_text()


def test_service_warns_of_no_missing_asterisk(tmp_path: Path) -> None:
    # In its container there is no local Asterisk: the nodes are what it calls through.
    from c2c_ari import cli
    from c2c_ari.config import LocalAsteriskSettings

    localasterisk.configure(LocalAsteriskSettings(cache_dir=tmp_path))
    try:
        assert localasterisk.read_credentials() is None
        assert cli._no_asterisk_warning(service_settings()) is None
        # The same settings without their nodes would be warned about.
        no_nodes = dataclasses.replace(service_settings(), nodes=())
        assert cli._no_asterisk_warning(no_nodes)
    finally:
        localasterisk.configure(None)


def api_port() -> str:
    command = services()[SERVICE]["command"]
    flags = dict(zip(command[2::2], command[3::2], strict=True))
    return flags["--port"]


def test_service_command_listens_where_it_is_published() -> None:
    service = services()[SERVICE]
    command = service["command"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert command[0] in project["project"]["scripts"]
    assert command[1] == "serve"
    flags = dict(zip(command[2::2], command[3::2], strict=True))
    assert flags["--host"] == "0.0.0.0"
    published = [interpolate(p, {}) for p in service["ports"]]
    assert len(published) == 1
    host, port = published[0].rsplit(":", 1)
    assert port == flags["--port"]
    # Loopback unless the operator says otherwise (plain HTTP).
    address, ports = host.rsplit(":", 1)
    assert address == "127.0.0.1"
    # Each replica takes a port of the range: at least as many ports as replicas.
    first, _, last = ports.partition("-")
    assert int(last or first) - int(first) + 1 >= service["deploy"]["replicas"]
    assert ports == "8000-8001"


def healthcheck_code() -> str:
    test = services()[SERVICE]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"] and len(test) == 4, test
    return test[3]


def test_healthcheck_asks_readiness_on_the_port_served() -> None:
    urls = re.findall(r"'(http://[^']+)'", healthcheck_code())
    assert len(urls) == 1, healthcheck_code()
    url = urlsplit(urls[0])
    assert (url.hostname, str(url.port), url.path) == ("127.0.0.1", api_port(), "/readyz")
    # The API serves /readyz (not only the metrics listener).
    app = web.Application()
    operations.add_routes(app, metrics_token=None)
    assert "/readyz" in {r.resource.canonical for r in app.router.routes() if r.resource}


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_fails_while_not_ready(status: int, healthy: bool) -> None:
    # The healthcheck's own code, pointed at a stand-in answering `status`.
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == "/readyz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        code = healthcheck_code().replace(f"127.0.0.1:{api_port()}",
                                          f"127.0.0.1:{server.server_address[1]}")
        assert code != healthcheck_code()
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    assert (done.returncode == 0) is healthy, done.stderr


def test_metrics_are_served_apart_and_not_published() -> None:
    service = services()[SERVICE]
    listen = service_settings().metrics_listen
    host, _, port = listen.rpartition(":")
    assert host == "0.0.0.0", "the metrics listener must face the compose network"
    assert port != api_port()
    assert port in [str(p) for p in service.get("expose", [])]
    published = [interpolate(p, {}).rsplit(":", 1)[1] for p in service["ports"]]
    assert port not in published, "metrics carry no token: never on the host"


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


@pytest.mark.parametrize("node", asterisk_services())
def test_entrypoint_starts_each_node_with_its_compose_environment(fake_root: Path,
                                                                  node: str) -> None:
    env = environment(services()[node], SECRETS)
    done = run_entrypoint(fake_root, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("started")
    etc = fake_root / "root/etc/asterisk"
    conf = (etc / "asterisk.conf").read_text()
    assert re.findall(r"(?m)^systemname.*$", conf) == [f"systemname = {env['ASTERISK_SYSTEMNAME']}"]
    assert re.findall(r"(?m)^bindaddr.*$", (etc / "http.conf").read_text()) == \
        ["bindaddr = 0.0.0.0"]
    assert f"password = {SECRETS['C2C_ARI_PASSWORD']}\n" in (etc / "ari_users.conf").read_text()


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
