"""Options shared by the sub-commands: the user-error type, YAML config files, the degradation
flags and the output folder's check (``check_writable_folder``); and, re-exported from
:mod:`irkernels.flags` (where the methods' flag tables read them too), the flags generated from
config dataclasses (``Flag``, ``add_config_flags``), renamed flags and counts (``at_least_one``).

Light on imports (the standard library and the torch-free ``configs`` and ``flags`` at module
level), so that ``--help`` needs no torch.
"""
from __future__ import annotations

import argparse
import os

from ..configs import with_paths
from ..flags import (BACKEND, BACKENDS, DEVICE, PROGRESS, SCALES, Flag, FlagTable,  # noqa: F401  (re-exported)
                     add_config_flags, add_renamed_flags, at_least_one, config_fields, json_object,
                     take_renamed_flags)


class UserError(ValueError):
    """Bad input found by a command (not a bug): the CLI prints its message as one line, exit 2."""


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




__all__ = ["BACKEND", "BACKENDS", "DEGRADATION_OPTIONS", "DEVICE", "PROGRESS", "SCALES", "Flag", "FlagTable", "UserError",
           "add_config_flags", "add_degradation_arguments", "add_renamed_flags", "at_least_one", "check_writable_folder",
           "config_fields", "degradation_from_args", "json_object", "load_yaml_defaults", "take_renamed_flags"]
