"""The `mieruka` command: parse arguments, call the library, write files. No maths here."""

from __future__ import annotations

import argparse
import functools
import sys
import warnings
from collections.abc import Sequence

from .commands import run_layers, run_methods, run_report, run_serve
from .common import EXIT_BAD_INPUT
from .evaluate import EVALUATE_FILES, run_evaluate
from .explain import run_explain
from .parser import build_parser

__all__ = ["EVALUATE_FILES", "EXIT_BAD_INPUT", "build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():  # restores the way warnings are shown on the way out
        warnings.showwarning = functools.partial(_show_warning, warnings.showwarning)
        return _run(args, parser)


def _show_warning(show, message, category, filename, lineno, file=None, line=None) -> None:
    """mieruka's own warnings as one line, like its errors; others as `show` shows them."""
    from ..errors import MierukaWarning

    if issubclass(category, MierukaWarning):
        print(f"mieruka: warning: {message}", file=sys.stderr)
    else:
        show(message, category, filename, lineno, file, line)


def _run(args, parser: argparse.ArgumentParser) -> int:
    try:
        if args.command == "explain":
            return run_explain(args, parser)
        if args.command == "methods":
            return run_methods()
        if args.command == "evaluate":
            return run_evaluate(args)
        if args.command == "report":
            return run_report(args)
        if args.command == "serve":
            return run_serve(args)
        return run_layers(args)
    except KeyboardInterrupt:
        print("mieruka: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            raise
        if not isinstance(error, ValueError | OSError):
            print(
                f"mieruka: internal error: {type(error).__name__}: {error} (rerun with --debug)",
                file=sys.stderr,
            )
            return 1
        print(f"mieruka: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
