"""`c2c-ari asterisk up | down | status | rx`: the command line of the local Asterisk."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from c2c_ari.config import LocalAsteriskSettings
from c2c_ari.localasterisk.common import LocalAsteriskError, configure
from c2c_ari.localasterisk.control import down, status, up
from c2c_ari.localasterisk.nodes import MAX_NODES
from c2c_ari.localasterisk.process import asterisk_rx


def _node_number(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_NODES:
        raise argparse.ArgumentTypeError(f"a node number from 1 to {MAX_NODES}")
    return int(text)


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
    p_up.add_argument("--nodes", type=_node_number, default=1, metavar="N",
                      help="run nodes 1..N, each an Asterisk with its own ports, directories"
                           f" and name (default 1, at most {MAX_NODES})")
    p_up.add_argument("--restart", action="store_true",
                      help="restart running nodes (to apply configuration changes)")
    p_up.add_argument("--timeout", type=float, default=None,
                      help="seconds to wait for ARI (default: start_timeout, 90)")
    p_down = sub.add_parser("down", parents=[common],
                            help="stop every node and unmount what up mounted")
    p_down.add_argument("--node", type=_node_number, default=None, metavar="K",
                        help="stop only node K")
    sub.add_parser("status", parents=[common], help="running?, version, ARI URL of each node")
    p_rx = sub.add_parser("rx", parents=[common],
                          help="run an Asterisk CLI command (asterisk -rx)")
    p_rx.add_argument("--node", type=_node_number, default=1, metavar="K",
                      help="in node K (default 1)")
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
            up(restart=args.restart, timeout=args.timeout, nodes=args.nodes)
        elif args.command == "down":
            down(node=args.node)
        elif args.command == "status":
            return 0 if any(node.running for node in status().nodes) else 3
        elif args.command == "rx":
            print(asterisk_rx(" ".join(args.cli), node=args.node), end="")
    except LocalAsteriskError as exc:
        print(f"c2c-ari asterisk {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        configure(None)
    return 0
