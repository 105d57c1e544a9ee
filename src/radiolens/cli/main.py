"""Entry point of the ``radiolens`` console script.

Exit codes: 0 success; 1 the work ran but failed (or a bug: the traceback is shown);
2 a user mistake (bad option, unreadable input), reported in one line.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from radiolens import __version__
from radiolens._suggest import did_you_mean
from radiolens.errors import RadiolensError
from radiolens.logsafe import setup_logging

log = logging.getLogger("radiolens")

#: Subcommand name -> module under radiolens.cli (imported only when used).
COMMANDS: dict[str, str] = {
    "label": "label",
    "label-eval": "label_eval",
    "train": "train",
    "evaluate": "evaluate",
    "compare": "compare",
    "predict": "predict",
    "train-seg": "train_seg",
    "segment": "segment",
    "evaluate-seg": "evaluate_seg",
    "explain": "explain",
    "model-card": "model_card",
    "import-weights": "import_weights",
    "thresholds": "thresholds",
    "quantize": "quantize",
    "serve": "serve",
    "requeue": "requeue",
    "send": "send",
    "convert": "convert",
    "demo": "demo",
    "deidentify": "deidentify",
    "examples": "examples",
    "feedback": "feedback",
    "users": "users",
}


class ArgumentParser(argparse.ArgumentParser):
    """argparse with "did you mean" hints for mistyped commands and options."""

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None
                         ) -> tuple[argparse.Namespace, list[str]]:
        self._argv = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def _command_parsers(self) -> dict[str, argparse.ArgumentParser]:
        found: dict[str, argparse.ArgumentParser] = {}
        for sub in self._subparsers._group_actions if self._subparsers else []:
            found.update(getattr(sub, "choices", {}))
        return found

    def error(self, message: str) -> NoReturn:
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            choices = re.findall(r"'([^']*)'", m.group(2))
            message += did_you_mean(m.group(1), choices)
        m = re.search(r"unrecognized arguments: (--[\w-]+)", message)
        if m:
            message += self._option_hint(m.group(1))
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")

    def _option_hint(self, option: str) -> str:
        """A close option of the command being run, or which commands have ``option``."""
        commands = self._command_parsers()
        command = next((a for a in getattr(self, "_argv", []) if a in commands), None)
        own = [o for a in self._actions for o in a.option_strings]
        if command is not None:
            own += [o for a in commands[command]._actions for o in a.option_strings]
        hint = did_you_mean(option, own)
        if hint or command is None:
            return hint
        others = sorted(name for name, p in commands.items()
                        if any(option in a.option_strings for a in p._actions))
        if others:
            return f" ({option} is an option of {', '.join(others)}, not of {command})"
        return ""


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="radiolens",
        description="Chest X-ray triage assistant: mine labels from reports, train and "
                    "evaluate classifiers, run a triage service. It assists radiologists; "
                    "it never replaces them.",
    )
    parser.add_argument("--version", action="version", version=f"radiolens {__version__}")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="count", default=0,
                           help="say more (-vv for debug output and tracebacks)")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    sub.required = True
    for module in COMMANDS.values():
        importlib.import_module(f"radiolens.cli.{module}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    try:
        code = int(args.run(args) or 0)
    except RadiolensError as exc:
        if args.verbose >= 2:
            log.exception("details")
        print(f"radiolens {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"radiolens {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
