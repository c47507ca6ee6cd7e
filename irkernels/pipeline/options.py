"""Options shared by the sub-commands: the user-error type, YAML config files, the flags generated
from config dataclasses (``Flag``, ``add_config_flags``), the degradation flags, renamed flags,
counts (``at_least_one``) and the output folder's check (``check_writable_folder``).

Light on imports (the standard library and the torch-free ``configs`` at module level), so that
``--help`` needs no torch.
"""
from __future__ import annotations

import argparse
import os
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import UnionType
from typing import Any

from ..configs import path_value, with_paths

SCALES = (1, 2, 3, 4, 8)  # SR factors the data, the trainer and the evaluation support


class UserError(ValueError):
    """Bad input found by a command (not a bug): the CLI prints its message as one line, exit 2."""


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


def check_writable_folder(path: str, flag: str = "--out") -> None:
    """``UserError`` naming ``flag`` and ``path`` when the command could not write in the folder
    ``path``: a file where a folder should be, no permission, a read-only file system. Checked
    before any work, so that it is one line and not an ``OSError`` traceback at the first file
    written (after the data is loaded, or a training). Nothing is created: a command that then
    stops on another bad input leaves no empty folder behind."""
    import tempfile

    existing = os.path.abspath(path)
    while not os.path.lexists(existing):  # the folder the command would create it in
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError(f"{flag} {path} cannot be written ({existing} is not a folder); choose another {flag}")
    try:  # a real file, as permission bits do not tell (root, ACLs, read-only mounts)
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise UserError(f"{flag} {path} cannot be written ({exc.strerror or exc} in {existing}); "
                        f"choose another {flag}") from exc


def load_yaml_defaults(parser: argparse.ArgumentParser, path: str) -> None:
    """Make the keys of YAML file ``path`` the parser's defaults, so flags given on the command line
    win. Keys use the flags' names (``batch_size`` or ``batch-size``); unknown keys are an error."""
    import yaml

    try:
        with open(path) as fh:
            values = yaml.safe_load(fh) or {}
    except OSError as exc:
        raise UserError(f"--config {path!r} cannot be read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise UserError(f"--config {path!r} is not valid YAML: {exc}") from exc
    if not isinstance(values, dict):
        raise UserError(f"config {path!r} must be a mapping of option names to values")
    known = {a.dest for a in parser._actions}
    values = {k.replace("-", "_"): v for k, v in values.items()}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"config {path!r} has unknown option(s) {unknown}; known: {sorted(known - {'help'})}")
    parser.set_defaults(**values)


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


DEGRADATION_OPTIONS = {
    "degradation (how LQ inputs are made from HQ images)": [
        Flag("kind", "bicubic: MATLAB-style ×scale down-sampling (SR); noise: Gaussian noise; blur: Gaussian blur; "
                     "motion: linear motion blur; jpeg: JPEG compression; rain: synthetic rain streaks "
                     "(default: %(default)s)", "degradation"),
        Flag("scale", "SR factor for --degradation bicubic; other degradations keep the size (default: %(default)s)"),
        Flag("noise_sigma", "Gaussian noise std on the [0, 255] scale (default: %(default)s)"),
        Flag("blur_sigma", "Gaussian blur std in pixels (default: %(default)s)"),
        Flag("motion_length", "motion blur length in pixels (default: %(default)s)"),
        Flag("motion_angle", "motion blur direction in degrees (default: %(default)s)"),
        Flag("jpeg_quality", "JPEG quality 1-100 (default: %(default)s)"),
        Flag("rain_density", "rain drops per pixel (default: %(default)s)"),
        Flag("rain_length", "rain streak length in pixels (default: %(default)s)"),
    ],
}


def add_degradation_arguments(parser: argparse.ArgumentParser) -> None:
    from ..data.config import KINDS, DegradationConfig

    add_config_flags(parser, DegradationConfig(), DEGRADATION_OPTIONS, {"kind": KINDS, "scale": SCALES})


def degradation_from_args(args: argparse.Namespace):
    """The ``DegradationConfig`` of the degradation flags (seeded by ``--seed``)."""
    from ..data.config import DegradationConfig

    return with_paths(DegradationConfig(), {**config_fields(args, DEGRADATION_OPTIONS), "seed": args.seed})


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
