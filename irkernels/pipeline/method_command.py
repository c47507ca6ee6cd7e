"""The sub-command of a registered method, built from its :class:`irkernels.methods.MethodSpec`:
``--data``, ``--out`` (default ``runs/<name>``), ``--overwrite``, the flags of its config's fields
(its :class:`irkernels.flags.FlagTable`) and the flags its table's ``add_arguments`` adds; running it
builds the config from the flags and calls the method's ``run`` (or the table's ``run``), so a
method needs no file here: ``--ratio`` goes from ``__main__``'s parser through this module and the
table (``flags``, ``configs.with_paths``) into the config, then into the method's ``run``. Same interface as a ``*_cmd`` module: ``NAME``, ``HELP``, ``__doc__``,
``add_arguments(parser)``, ``run(args)``."""
from __future__ import annotations

import argparse

from ..flags import FlagTable, add_config_flags, add_renamed_flags
from ..methods import MethodSpec


class MethodCommand:
    def __init__(self, spec: MethodSpec) -> None:
        self.spec = spec
        self.NAME, self.HELP = spec.name, spec.help

    @property
    def table(self) -> FlagTable:
        return self.spec.flag_table() or FlagTable(self.spec.help, {})

    @property
    def __doc__(self) -> str:  # the sub-command's --help description
        return self.table.about

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        table = self.table
        p.add_argument("--data", help=table.data)
        p.add_argument("--out", default=f"runs/{self.NAME}", help=table.out)
        p.add_argument("--overwrite", action="store_true", help=table.overwrite)
        add_config_flags(p, self.spec.config_class()(), table.groups, table.choices)
        if table.add_arguments is not None:
            table.add_arguments(p)
        if table.renamed:
            add_renamed_flags(p, table.renamed, table.renamed_types)

    def config_from_args(self, args: argparse.Namespace):
        """The method's config of the parsed flags."""
        return self.table.config(self.spec.config_class(), args)

    def run(self, args: argparse.Namespace) -> int:
        table, cfg = self.table, self.config_from_args(args)
        if table.run is not None:
            return table.run(args, cfg)
        result = self.spec.runner()(cfg, args.out, data=args.data, overwrite=args.overwrite,
                                    **{k: getattr(args, k) for k in table.keywords})
        print(result.summary())
        return 0


__all__ = ["MethodCommand"]
