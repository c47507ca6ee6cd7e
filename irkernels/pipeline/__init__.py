"""``python -m irkernels.pipeline <command>``: one module ``<name>_cmd.py`` per sub-command.

A command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``;
``__main__`` discovers every ``*_cmd`` module of this package, so adding a command is adding a file.
"""
