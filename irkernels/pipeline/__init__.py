"""``python -m irkernels.pipeline <command>``: one module ``<name>_cmd.py`` per sub-command.

A command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``;
``__main__`` discovers every ``*_cmd`` module of this package, so adding a command is adding a file.
At module level a command imports only argparse-weight modules (torch and the methods inside
``add_arguments`` / ``run``), so that ``--help`` and ``--version`` need no torch; it raises
``ValueError`` / ``options.UserError`` (or lets the library's input checks raise) for bad input,
which ``__main__`` reports as one line with exit code 2.
"""
from __future__ import annotations

import importlib
import pkgutil


def command_modules() -> list:
    """Every ``*_cmd`` module of this package (one per sub-command), sorted by name."""
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.endswith("_cmd"))
    return [importlib.import_module(f"{__name__}.{n}") for n in names]
