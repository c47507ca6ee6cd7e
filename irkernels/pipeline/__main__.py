"""Entry point of ``python -m irkernels.pipeline`` and the ``irkernels`` console script.

Only argparse is imported up front: a command module's heavy imports (torch, the methods) happen
inside its ``add_arguments``/``run``, and only the chosen command's arguments are built, so
``--help`` and ``--version`` answer without importing torch.

User errors (a missing or empty folder, an unreadable image, a missing checkpoint, a run folder
holding other settings, an --out that cannot be written, an invalid option value) end the command
with ONE line on stderr and exit code 2, as argparse's own errors do (without argparse's usage
block: ``--help`` shows it); ``-v``/``--verbose`` shows the traceback instead. Ctrl-C ends
it with one line saying how to resume and exit code 130. Any other exception is a bug and keeps its
traceback.

Logging: irkernels' progress lines are INFO and shown by default; WARNING is kept for what needs
the user's attention (a network below its baseline, a long stage's cost, something skipped or
refused, a deprecated flag). ``-v`` also shows other libraries' INFO lines.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import warnings
from collections.abc import Sequence

from . import command_modules
from .options import UserError, check_writable_folder, load_yaml_defaults

PROG = "irkernels"
DEFAULT_COMMAND = "demo"  # what a bare `python -m irkernels.pipeline` runs
# What input checks raise: ValueError/TypeError for bad values, OSError subclasses for paths.
USER_ERRORS = (UserError, ValueError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError,
               IsADirectoryError, PermissionError)


class CommandFailed(SystemExit):
    """A user error, reported: exit code 2 (``.code``), the one-line message as ``str(exc)``."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


class Parser(argparse.ArgumentParser):
    """argparse's parser with its errors in one line, ``irkernels COMMAND: error: MESSAGE`` and exit
    code 2 (:class:`CommandFailed`), as the commands' own errors: argparse would print the whole
    usage block first, which buries the line that matters (``--help`` shows the usage)."""

    def error(self, message: str):
        message = " ".join(message.split())
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise CommandFailed(message)


def build_parser(only: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser and its sub-parsers by name. ``only``: build the arguments of that command alone
    (``""``: of none; listing the commands in ``--help`` needs just their ``NAME`` and ``HELP``)."""
    from .._version import __version__

    parser = Parser(  # its sub-parsers are of its class
        prog=PROG, description="Restoration data, training, evaluation and dataset condensation. "
        "With no arguments at all: the demo (IDC on 4 embedded sample photos, a few CPU minutes).")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers = {}
    for mod in command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--config", metavar="FILE.yaml",
                       help="YAML file of option values (keys = option names); flags on the command line win")
        p.add_argument("-v", "--verbose", action="store_true",
                       help="also show other libraries' INFO log lines, and the full traceback of an error")
        if only is None or only == mod.NAME:
            mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
        subparsers[mod.NAME] = p
    return parser, subparsers


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run the sub-command; returns its exit code.

    Called with no argument at all from the command line it runs the demo; ``main([])`` prints
    help. A user error raises :class:`CommandFailed` (a ``SystemExit`` with code 2) after printing
    ``irkernels COMMAND: error: MESSAGE`` on stderr.
    """
    if argv is None and not sys.argv[1:]:
        argv = [DEFAULT_COMMAND]
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), "")  # "": top-level --help/--version
    parser, subparsers = build_parser(only=command)
    if not argv:
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if not args.verbose:
        warnings.formatwarning = _one_line_warning
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("irkernels").setLevel(logging.INFO)  # progress is shown; other libraries' INFO is not
    try:
        if args.config:
            load_yaml_defaults(subparsers[args.command], args.config)
            args = parser.parse_args(argv)
        if getattr(args, "out", None):  # every command's --out is its output folder
            check_writable_folder(args.out)
        from tqdm.contrib.logging import logging_redirect_tqdm

        # on a terminal, log lines go above the progress bars (they were glued to the end of a bar's
        # line); elsewhere (a log file, a pipe) there is no bar line to share
        with logging_redirect_tqdm() if sys.stderr.isatty() else contextlib.nullcontext():
            return int(args._run(args) or 0)
    except KeyboardInterrupt as exc:
        if args.verbose:
            raise
        # every command writes atomically and resumes: finished work is kept, and a stage that
        # checkpoints per step writes its last finished step first (irkernels.stopping)
        said = f" ({exc})" if str(exc) else ""
        print(f"{PROG} {args.command}: interrupted{said}; run the same command again to resume", file=sys.stderr)
        raise SystemExit(130) from None
    except USER_ERRORS as exc:
        if args.verbose:
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__  # one line, whatever the exception held
        print(f"{PROG} {args.command}: error: {message} (-v shows the traceback)", file=sys.stderr)
        raise CommandFailed(message) from exc


if __name__ == "__main__":
    sys.exit(main())
