"""`c2c-ari asterisk up | down | status | rx`: the command line of the local Asterisk."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from c2c_ari.config import LocalAsteriskSettings
from c2c_ari.localasterisk.common import LocalAsteriskError, configure
from c2c_ari.localasterisk.process import asterisk_rx, down, status, up


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path,
                        help="TOML settings file (its [local_asterisk] table; default: "
                             "C2C_ARI_CONFIG)")
    parser = argparse.ArgumentParser(
        prog="c2c-ari asterisk",
        description="A local Asterisk 22 (Debian sid chroot) for development and tests.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", parents=[common], help="build once, start, wait for ARI")
    p_up.add_argument("--restart", action="store_true",
                      help="restart a running instance (to apply configuration changes)")
    p_up.add_argument("--timeout", type=float, default=None,
                      help="seconds to wait for ARI (default: start_timeout, 90)")
    sub.add_parser("down", parents=[common], help="stop it and unmount what up mounted")
    sub.add_parser("status", parents=[common], help="running?, version, ARI URL")
    p_rx = sub.add_parser("rx", parents=[common],
                          help="run an Asterisk CLI command (asterisk -rx)")
    p_rx.add_argument("cli", nargs="+")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        try:
            configure(LocalAsteriskSettings.load(args.config))
        except (OSError, ValueError) as exc:
            raise LocalAsteriskError(str(exc)) from None
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
    finally:
        configure(None)
    return 0
