"""The `c2c-ari` command: `serve`, `accounts create|list|show|rotate-key|disable|enable|
delete`, `db migrate|copy`, and `asterisk up|down|status|rx`."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from c2c_ari.config import LocalAsteriskSettings, Settings

if TYPE_CHECKING:
    from c2c_ari.store import AccountSummary, Store


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.load(
        args.config,
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        log_format=getattr(args, "log_format", None),
        data_dir=args.data_dir,
        database=args.database,
    )


def _serve(args: argparse.Namespace) -> int:
    from c2c_ari import localasterisk, logs
    from c2c_ari.app import create_app
    from c2c_ari.logs import AccessLogger
    from c2c_ari.store.sqlite import FileInUse

    settings = _settings(args)
    logs.configure(settings.log_format)
    local = None
    if args.local_asterisk:
        try:
            # The same --config file may set the local Asterisk's own settings.
            localasterisk.configure(LocalAsteriskSettings.load(args.config))
            local = localasterisk.up()
        except localasterisk.LocalAsteriskError as exc:
            print(f"c2c-ari: local Asterisk: {exc}", file=sys.stderr)
            return 1
        settings = dataclasses.replace(settings, ari_url="auto")
    demo = None
    if args.demo_phones:
        from c2c_ari.localasterisk.demo import DemoPhones

        try:
            # Before any thread of the service starts (see demo.py).
            demo = DemoPhones().start()
        except localasterisk.LocalAsteriskError as exc:
            print(f"c2c-ari: {exc}", file=sys.stderr)
            if local is not None and local.started:
                localasterisk.down()
            return 1
        print(demo.describe(), flush=True)
    url = f"http://{settings.host}:{settings.port}"
    print(
        f"c2c-ari listening on {url} (database {settings.database_label()}); "
        f"console {url}/console/, API docs {url}/v2/docs",
        flush=True,
    )
    if settings.metrics_listen:
        print(f"metrics and health checks on http://{settings.metrics_listen}/metrics",
              flush=True)
    warning = _no_asterisk_warning(settings)
    if warning:
        print(f"c2c-ari: warning: {warning}", file=sys.stderr, flush=True)
    app = create_app(settings)
    app.on_shutdown.append(_hold_further_sigterms)
    try:
        web.run_app(app, host=settings.host, port=settings.port, print=None,
                    loop=_event_loop(settings.event_loop), access_log_class=AccessLogger,
                    access_log=logging.getLogger("c2c_ari.access") if settings.access_log
                    else None)
    except FileInUse as exc:
        print(f"c2c-ari: {exc}", file=sys.stderr)
        return 1
    finally:
        # After the service's graceful stop (it hands over or hangs up calls in flight, and
        # the phones answer those BYEs), however it ended: Ctrl-C, SIGTERM or an error.
        if demo is not None:
            demo.stop()
        if local is not None and local.started:
            localasterisk.down()
    return 0


async def _hold_further_sigterms(_app: web.Application) -> None:
    """The graceful stop has begun; it takes seconds when calls are handed over. Another
    SIGTERM (a supervisor's or a script's second try) must not cut it short and leave calls
    that were let go unfollowed: only SIGKILL, or a second Ctrl-C, does."""
    asyncio.get_running_loop().add_signal_handler(
        signal.SIGTERM, lambda: print("c2c-ari: stopping already (SIGKILL to force)",
                                      file=sys.stderr, flush=True))


def _no_asterisk_warning(settings: Settings) -> str | None:
    """Why no call could be placed, said at start rather than at the first 503."""
    from c2c_ari import localasterisk

    if settings.nodes:
        # The nodes are used whatever ari_url says (see app.ari_nodes).
        return None
    if settings.ari_url == "off":
        return "calls are off (ari_url = off): every connect answers 503"
    if settings.ari_url == "auto" and localasterisk.read_credentials() is None:
        return ("no Asterisk is configured: `--local-asterisk` starts the project's own, or "
                "set C2C_ARI_URL, C2C_ARI_USER and C2C_ARI_PASSWORD; until then every connect "
                "answers 503 (and /readyz says why)")
    return None


def _event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """uvloop cuts the service's CPU per call (measured in bench/calls.py); asyncio's own
    loop is there for where uvloop is not."""
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    elif kind != "asyncio":
        raise ValueError(f"setting 'event_loop': {kind!r} is neither uvloop nor asyncio")
    return asyncio.new_event_loop()


def _create_account(args: argparse.Namespace) -> int:
    from c2c_ari.domain.accounts import AccountService

    settings = _settings(args)

    async def create(store: Store) -> int:
        account, api_key = await AccountService(
            store.accounts, settings.token_ttl).create(args.name, args.realm)
        _print({"account_id": account.id, "api_key": api_key, "name": account.name,
                "realm": account.realm})
        return 0

    return _with_store(settings, create)


def _with_store(settings: Settings, run: Callable[[Store], Awaitable[int]]) -> int:
    """Run an account command on the store, beside a running service: the account commands
    never take a SQLite file for themselves (serving=False). An operator's refusal (an
    unknown account, calls in flight...) is one line on stderr and exit status 1."""
    from c2c_ari.domain.account_admin import AdminError
    from c2c_ari.store import open_store

    async def main() -> int:
        store = await open_store(settings.database_target, serving=False)
        try:
            return await run(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except AdminError as exc:
        print(f"c2c-ari: {exc}", file=sys.stderr)
        return 1


def _print(obj: object) -> None:
    print(json.dumps(obj), flush=True)


def _account_json(summary: AccountSummary) -> dict[str, object]:
    account = summary.account
    return {
        "id": account.id, "name": account.name, "realm": account.realm,
        "created": datetime.fromtimestamp(account.created, UTC).isoformat(
            timespec="seconds").replace("+00:00", "Z"),
        "disabled": account.disabled, "deleting": account.deleting,
        "live_clicktocalls": summary.live_clicktocalls,
    }


def _list_accounts(args: argparse.Namespace) -> int:
    from c2c_ari.domain.account_admin import AccountAdmin

    async def run(store: Store) -> int:
        # One JSON object a line, as the pages are read: any number of accounts in bounded
        # memory.
        async for summary in AccountAdmin(store).summaries():
            _print(_account_json(summary))
        return 0

    return _with_store(_settings(args), run)


def _show_account(args: argparse.Namespace) -> int:
    from c2c_ari.domain.account_admin import AccountAdmin

    async def run(store: Store) -> int:
        admin = AccountAdmin(store)
        summary = await admin.summary(args.account_id)
        _print({**_account_json(summary),
                "clicktocall_ids": await admin.clicktocall_ids(args.account_id)})
        return 0

    return _with_store(_settings(args), run)


def _rotate_key(args: argparse.Namespace) -> int:
    from c2c_ari.domain.account_admin import AccountAdmin

    async def run(store: Store) -> int:
        account, api_key = await AccountAdmin(store).rotate_key(args.account_id)
        _print({"account_id": account.id, "api_key": api_key, "name": account.name,
                "realm": account.realm})
        return 0

    return _with_store(_settings(args), run)


def _set_account_state(args: argparse.Namespace) -> int:
    from c2c_ari.domain.account_admin import AccountAdmin

    async def run(store: Store) -> int:
        admin = AccountAdmin(store)
        if args.accounts_command == "disable":
            await admin.disable(args.account_id)
        else:
            await admin.enable(args.account_id)
        _print(_account_json(await admin.summary(args.account_id)))
        return 0

    return _with_store(_settings(args), run)


def _delete_account(args: argparse.Namespace) -> int:
    from c2c_ari.domain.account_admin import AccountAdmin

    if not args.yes:
        print(f"c2c-ari: `accounts delete` removes account {args.account_id} for good, with "
              "its API key, tokens, click-to-calls and history; add --yes to do it",
              file=sys.stderr)
        return 2
    if args.batch < 1:
        raise ValueError("--batch must be at least 1")

    async def run(store: Store) -> int:
        deleted = await AccountAdmin(store, batch=args.batch).delete(args.account_id)
        _print({"account_id": deleted.account_id, "deleted": True,
                "removed": deleted.removed})
        return 0

    return _with_store(_settings(args), run)


def _migrate(args: argparse.Namespace) -> int:
    from c2c_ari.store import open_store

    settings = _settings(args)

    async def migrate() -> None:
        # Opening migrates (and, on PostgreSQL, makes the coming months' history
        # partitions); serving=False: beside a running service on the same SQLite file.
        store = await open_store(settings.database_target, serving=False)
        await store.close()

    asyncio.run(migrate())
    print(f"c2c-ari: database {settings.database_label()} is up to date")
    return 0


def _copy(args: argparse.Namespace) -> int:
    from c2c_ari.store import is_postgres_url
    from c2c_ari.store.copy import copy_sqlite_to_postgres
    from c2c_ari.store.sqlite import FileInUse

    if not is_postgres_url(args.target):
        print("c2c-ari: the target must be a postgresql:// URL", file=sys.stderr)
        return 2
    source = args.source.expanduser()
    if not source.is_file():
        print(f"c2c-ari: no SQLite file at {source}", file=sys.stderr)
        return 1
    try:
        asyncio.run(copy_sqlite_to_postgres(
            source, args.target, batch=args.batch,
            progress=lambda copied: print(copied, flush=True)))
    except FileInUse as exc:
        print(f"c2c-ari: {exc}", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="TOML settings file")
    common.add_argument("--data-dir", type=Path, help="directory of the SQLite file")
    common.add_argument(
        "--database",
        help="SQLite file (overrides --data-dir) or PostgreSQL URL postgresql://user@host/db")

    parser = argparse.ArgumentParser(prog="c2c-ari", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", parents=[common], help="run the REST service")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8000)")
    serve.add_argument("--log-format", choices=("text", "json"),
                       help="log lines as text (default) or JSON objects")
    serve.add_argument(
        "--local-asterisk", action="store_true",
        help="build (once) and start the project's local Asterisk 22 and place calls through"
             " it; it is stopped again when the service stops",
    )
    serve.add_argument(
        "--demo-phones", action="store_true",
        help="also run SIPp (Debian's sip-tester, installed when missing) as extension 1001"
             " (answers) and as the carrier (answers any number, plays audio, hangs up after"
             " 5 s), where the project's Asterisk configuration expects them: the quick"
             " start's first call then succeeds; they are stopped with the service",
    )
    serve.set_defaults(run=_serve)

    # Listed for --help only: main() hands `asterisk ...` to localasterisk.main.
    commands.add_parser(
        "asterisk", help="local Asterisk 22 for development and tests: up | down | status | rx"
    )

    accounts = commands.add_parser("accounts", help="manage accounts")
    account_commands = accounts.add_subparsers(dest="accounts_command", required=True)
    create = account_commands.add_parser(
        "create", parents=[common], help="create an account and print its API key"
    )
    create.add_argument("--name", required=True)
    create.add_argument("--realm", required=True, help="SIP realm, e.g. pbx.example.com")
    create.set_defaults(run=_create_account)
    account_commands.add_parser(
        "list", parents=[common],
        help="every account, one JSON object a line (id, name, realm, created, disabled, "
             "live_clicktocalls)").set_defaults(run=_list_accounts)
    commands_on_one = (
        ("show", _show_account, "one account, with the ids of its live click-to-calls"),
        ("rotate-key", _rotate_key,
         "give the account a new API key (printed once); the old key and every token issued "
         "from it are refused at once"),
        ("disable", _set_account_state,
         "refuse the account's API key, tokens and public click-to-calls (nothing is "
         "deleted; calls in flight go on)"),
        ("enable", _set_account_state, "undo disable"),
        ("delete", _delete_account,
         "delete the account for good with its API key, tokens, click-to-calls and history "
         "(in batches; run it again if interrupted); needs --yes"),
    )
    for name, run, text in commands_on_one:
        one = account_commands.add_parser(name, parents=[common], help=text)
        one.add_argument("account_id", metavar="ID")
        one.set_defaults(run=run)
        if name == "delete":
            one.add_argument("--yes", action="store_true",
                             help="yes, delete it and everything of it for good")
            one.add_argument("--batch", type=int, default=500,
                             help="rows per transaction (default 500)")

    db = commands.add_parser("db", help="database: migrate, copy SQLite into PostgreSQL")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    migrate = db_commands.add_parser(
        "migrate", parents=[common], help="bring the database's schema up to date and exit")
    migrate.set_defaults(run=_migrate)
    copy = db_commands.add_parser(
        "copy", help="copy everything of a SQLite file into a PostgreSQL database (run it "
                     "again to add what is missing; nothing is copied twice); the service "
                     "must not be serving the file meanwhile")
    copy.add_argument("source", type=Path, metavar="SQLITE_PATH")
    copy.add_argument("target", metavar="POSTGRESQL_URL",
                      help="postgresql://user[:password]@host[:port]/database")
    copy.add_argument("--batch", type=int, default=500, help="rows per transaction")
    copy.set_defaults(run=_copy)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["asterisk"]:
        # Its own parser owns every option after the word (argparse's REMAINDER would not
        # pass a leading --help through).
        from c2c_ari import localasterisk

        return localasterisk.main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except ValueError as exc:
        print(f"c2c-ari: {exc}", file=sys.stderr)
        return 2
