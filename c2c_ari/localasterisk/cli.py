"""`c2c-ari asterisk up | down | status | rx`: the command line of the local Asterisk."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from c2c_ari.localasterisk.common import LocalAsteriskError
from c2c_ari.localasterisk.process import asterisk_rx, down, status, up


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


