"""``python -m irkernels.pipeline <command>``: one module ``<name>_cmd.py`` per sub-command, and one
sub-command per registered method (:mod:`.method_command`, built from its spec: no file here).

A command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``;
``__main__`` discovers every ``*_cmd`` module of this package and every method of
:mod:`irkernels.registry`, so adding a command is adding a file, and adding a method adds its command.
At module level a command imports only argparse-weight modules (torch and the methods inside
``add_arguments`` / ``run``), so that ``--help`` and ``--version`` need no torch; it raises
``ValueError`` / ``options.UserError`` (or lets the library's input checks raise) for bad input,
which ``__main__`` reports as one line with exit code 2.
"""
from __future__ import annotations

import importlib
import pkgutil


def command_modules() -> list:
    """Every sub-command, sorted by name: the ``*_cmd`` modules of this package and a
    :class:`.method_command.MethodCommand` per registered method."""
    from ..registry import registry
    from .method_command import MethodCommand

    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.endswith("_cmd"))
    commands = [importlib.import_module(f"{__name__}.{n}") for n in names]
    taken = {c.NAME for c in commands}
    clash = sorted(taken & set(registry()))
    if clash:
        raise ValueError(f"methods {clash} are named as commands of irkernels.pipeline; rename them")
    return sorted(commands + [MethodCommand(spec) for spec in registry().values()], key=lambda c: c.NAME)
