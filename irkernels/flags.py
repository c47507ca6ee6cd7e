"""Command-line flags generated from config dataclasses, importable without torch (argparse and
the standard library only), so that the CLI and a method's own flag table share them.

``Flag``: the flag of one config field (a nested one by its dotted path); ``add_config_flags`` turns
a table of them (argument-group title → flags) into argparse flags whose type and default come from
the dataclass, ``config_fields`` reads them back for ``configs.with_paths``. ``FlagTable``: what a
method gives the CLI to build its sub-command (``MethodSpec.flags``). Renamed flags keep working for
one release (``add_renamed_flags`` / ``take_renamed_flags``).
"""
from __future__ import annotations

import argparse
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import UnionType
from typing import Any

from .configs import path_value, with_paths

SCALES = (1, 2, 3, 4, 8)  # SR factors the data, the trainer and the evaluation support


def at_least_one(text: str) -> int:
    """argparse type of a count such as ``--max-images``: a whole number >= 1. Anything else is
    argparse's one-line error naming the flag and the value (0 would otherwise reach the data
    loaders and come back as "no image matched")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


@dataclass(frozen=True)
class Flag:
    """The command-line flag of one config field. ``path``: the field, a nested config's as
    ``latent.steps``; ``help``: its text (``%(default)s`` is the field's default); ``name``: the flag
    when it is not the field's own name (``cnn-steps``; ``no-latent`` for a True-by-default field);
    ``metavar``: how the help shows its value(s); ``type``: the argparse type when the field's own
    does not say enough (``at_least_one`` for a count); ``key_values``: a ``dict`` field given as
    ``KEY=VALUE`` words, whose keys name another config's fields (the command parses them), instead
    of a JSON object."""

    path: str
    help: str
    name: str | None = None
    metavar: str | None = None
    type: Callable[[str], Any] | None = None
    key_values: bool = False

    @property
    def flag(self) -> str:
        return self.name or self.path.rsplit(".", 1)[-1].replace("_", "-")

    @property
    def dest(self) -> str:
        """Where argparse puts the value: the flag with underscores (``--no-x`` flags: the field's name)."""
        return self.path.rsplit(".", 1)[-1] if self.flag.startswith("no-") else self.flag.replace("-", "_")


# the flags every command words the same way
DEVICE = Flag("device", "auto, cpu, cuda, cuda:1, ... (default: %(default)s)")
PROGRESS = Flag("progress", "no tqdm progress bars", "no-progress")
BACKEND = Flag("backend", "ops backend: auto (Triton/CUDA on GPUs), triton or torch (default: %(default)s)")
BACKENDS = ("auto", "triton", "torch")
PORTABLE = Flag("portable", "copy every network the run uses from outside --out (the pre-trained cache, a given checkpoint) "
                "into OUT/networks/, so that the folder travels with them (default: they are named, with their "
                "cache key, and stay where they are)")


def _field_type(config: Any, path: str) -> Any:
    """The declared type of the field at ``path`` (``X | None`` → ``X``)."""
    owner, _, name = path.rpartition(".")
    if owner:
        config = path_value(config, owner)
    hint = typing.get_type_hints(type(config))[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) in (typing.Union, UnionType) and len(args) == 1 else hint


def json_object(text: str) -> dict:
    """argparse type of a JSON object flag (``'{"depth": 6}'``)."""
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def add_config_flags(p: argparse.ArgumentParser, defaults: Any, groups: dict[str, list[Flag]],
                     choices: dict[str, Sequence] | None = None,
                     shown: Callable[[str, Any], str] | None = None) -> None:
    """Add one flag per ``Flag`` of ``groups`` (argument-group title → flags), its type and default
    read from the field of dataclass ``defaults``: a bool becomes ``--name`` (False by default) or
    ``--no-name`` (True), a ``dict`` a JSON object (or ``KEY=VALUE`` words), a ``list`` one or more
    values. The parsed value lands in ``args.<Flag.dest>``; ``choices``: per path.
    ``shown(path, default)``: for a command whose defaults depend on another flag (``compare``'s
    ``--preset``): every flag then parses to ``None`` unless given, and its help's ``%(default)s``
    reads ``shown``'s text instead."""
    for title, flags in groups.items():
        g = p.add_argument_group(title)
        for f in flags:
            value, kind = path_value(defaults, f.path), _field_type(defaults, f.path)
            if shown is not None and kind is not bool:
                kw = {**_flag_kind(f, kind, value), "default": None}
                g.add_argument("--" + f.flag, dest=f.dest, help=f.help.replace("%(default)s", shown(f.path, value)),
                               choices=(choices or {}).get(f.path), **kw)
                continue
            if kind is bool:
                if value != f.flag.startswith("no-"):
                    raise ValueError(f"{f.path} defaults to {value}: its flag is --{'no-' * value}<name>")
                g.add_argument("--" + f.flag, dest=f.dest, default=value, help=f.help,
                               action="store_false" if value else "store_true")
                continue
            g.add_argument("--" + f.flag, dest=f.dest, help=f.help, choices=(choices or {}).get(f.path),
                           **_flag_kind(f, kind, value))


def _flag_kind(f: Flag, kind: Any, value: Any) -> dict[str, Any]:
    """argparse's type, nargs, default and metavar of a non-bool field of type ``kind`` and default ``value``."""
    origin = typing.get_origin(kind) or kind
    if origin is dict:
        if f.key_values:
            return {"nargs": "+", "type": str, "default": [], "metavar": f.metavar or "KEY=VALUE"}
        return {"type": json_object, "default": dict(value), "metavar": f.metavar}
    if origin is list:
        (item,) = typing.get_args(kind)
        return {"nargs": "+", "type": f.type or item, "default": list(value), "metavar": f.metavar}
    if kind in (int, float, str):
        return {"type": f.type or kind, "default": value, "metavar": f.metavar}
    raise TypeError(f"no flag type for {f.path} ({kind})")


def config_fields(args: argparse.Namespace, groups: dict[str, list[Flag]]) -> dict[str, Any]:
    """``{path: parsed value}`` of the flags :func:`add_config_flags` added (for ``configs.with_paths``)."""
    return {f.path: getattr(args, f.dest) for flags in groups.values() for f in flags}


@dataclass(frozen=True)
class FlagTable:
    """A method's sub-command, as the CLI builds it from the method's config dataclass.

    ``about``: the command's ``--help`` text (what it does, its outputs, examples); ``groups``: the
    config's flags by argument-group title (:func:`add_config_flags`); ``choices``: the allowed
    values per field path; ``data`` / ``out`` / ``overwrite``: the help of the flags every method
    command has (``--data``, ``--out`` defaulting to ``runs/<name>``, ``--overwrite``);
    ``renamed``: old flag (field) name → new field, working for one release (``renamed_types``:
    their argparse types, default ``str``). A method that needs more than the config's flags gives
    hooks: ``add_arguments(parser)`` adds its own flags (after the config's), ``keywords`` names
    those handed to its ``run(cfg, out, data=, overwrite=, **keywords)`` (by their ``dest``), and
    ``run(args, cfg) -> int`` runs it instead (where the command does more than run the method and
    print the result's summary)."""

    about: str
    groups: dict[str, list[Flag]]
    choices: dict[str, Sequence] = field(default_factory=dict)
    data: str = "folder of images (default: the embedded sample photos)"
    out: str = "output folder (default: %(default)s)"
    overwrite: str = "replace a folder holding a run with other settings"
    renamed: dict[str, str] = field(default_factory=dict)
    renamed_types: dict[str, type] = field(default_factory=dict)
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    keywords: tuple[str, ...] = ()
    run: Callable[[argparse.Namespace, Any], int] | None = None

    def config(self, config_class: type, args: argparse.Namespace) -> Any:
        """The ``config_class`` of the parsed flags (old flag names moved to the new, with a warning)."""
        take_renamed_flags(args, self.renamed)
        return with_paths(config_class(), config_fields(args, self.groups))


def add_renamed_flags(p: argparse.ArgumentParser, renamed: dict[str, str], types: dict[str, type] | None = None) -> None:
    """Old flag names (``{old field: new field}``) that keep working for one release: each sets
    ``renamed_<old>``, which :func:`take_renamed_flags` moves to the new field with a warning."""
    g = p.add_argument_group("renamed (the old names work until the next release)")
    for old, new in renamed.items():
        g.add_argument("--" + old.replace("_", "-"), dest="renamed_" + old, type=(types or {}).get(old, str),
                       help=f"deprecated: the old name of --{new.replace('_', '-')}")


def take_renamed_flags(args: argparse.Namespace, renamed: dict[str, str]) -> None:
    """Move every old-named flag given to its new field, logging one deprecation warning each."""
    import logging

    for old, new in renamed.items():
        value = getattr(args, "renamed_" + old, None)
        if value is not None:
            logging.getLogger("irkernels").warning(
                "--%s is deprecated and will be removed in the next release: use --%s",
                old.replace("_", "-"), new.replace("_", "-"))
            setattr(args, new, value)
