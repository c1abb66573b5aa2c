"""Command line: ``main(argv) -> int``. Only this module prints and chooses exit codes.

Heavy imports (optuna, matplotlib) happen inside the commands that need them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from explorer.errors import ExplorerError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own usage errors: one line, exit 2
        raise ExplorerError(f"{self.prog}: {message}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USAGE
        return int(args.func(args) or 0)
    except ExplorerError as exc:
        print(f"error: {exc}" if not exc.path else str(exc), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def build_parser() -> argparse.ArgumentParser:
    from explorer import commands

    parser = _Parser(prog="explorer", description="Exact costs, roofline predictions and design-space "
                     "studies for neural-network architectures written as YAML specs.")
    sub = parser.add_subparsers(metavar="COMMAND", parser_class=_Parser)
    for register in commands.REGISTER:
        register(sub)
    return parser


if __name__ == "__main__":
    sys.exit(main())
