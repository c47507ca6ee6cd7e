"""Entry point of ``python -m irkernels.pipeline`` and the ``irkernels`` console script."""
from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from .options import load_yaml_defaults


def command_modules() -> list:
    """Every ``*_cmd`` module of this package (one per sub-command), sorted by name."""
    import irkernels.pipeline as pkg

    names = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if m.name.endswith("_cmd"))
    return [importlib.import_module(f"{pkg.__name__}.{n}") for n in names]


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="irkernels", description="Restoration data, training, evaluation and dataset condensation. "
        "With no arguments at all: a demo (IDC on the embedded sample photos, a few CPU minutes).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers = {}
    for mod in command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--config", metavar="FILE.yaml",
                       help="YAML file of option values (keys = option names); flags on the command line win")
        p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
        subparsers[mod.NAME] = p
    return parser, subparsers


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run the sub-command. Called with no argument
    at all from the command line it runs the IDC demo; ``main([])`` prints help."""
    if argv is None and not sys.argv[1:]:  # bare `python -m irkernels.pipeline`: the IDC demo
        from ..idc.pipeline import demo

        demo()
        return 0
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, subparsers = build_parser()
    if not argv:
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.config:
        load_yaml_defaults(subparsers[args.command], args.config)
        args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
