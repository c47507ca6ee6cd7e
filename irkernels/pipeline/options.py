"""Options shared by the sub-commands: the user-error type, YAML config files, the degradation flags.

Light on imports (argparse only at module level), so that ``--help`` needs no torch.
"""
from __future__ import annotations

import argparse

SCALES = (1, 2, 3, 4, 8)  # SR factors the data, the trainer and the evaluation support


class UserError(ValueError):
    """Bad input found by a command (not a bug): the CLI prints its message as one line, exit 2."""


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


def add_degradation_arguments(parser: argparse.ArgumentParser) -> None:
    from ..data.config import KINDS, DegradationConfig

    g = parser.add_argument_group("degradation (how LQ inputs are made from HQ images)")
    d = DegradationConfig()
    g.add_argument("--degradation", choices=KINDS, default=d.kind,
                   help="bicubic: MATLAB-style ×scale down-sampling (SR); noise: Gaussian noise; blur: Gaussian blur; "
                        "motion: linear motion blur; jpeg: JPEG compression; rain: synthetic rain streaks "
                        "(default: %(default)s)")
    g.add_argument("--scale", type=int, default=d.scale, choices=SCALES,
                   help="SR factor for --degradation bicubic; other degradations keep the size (default: %(default)s)")
    g.add_argument("--noise-sigma", type=float, default=d.noise_sigma,
                   help="Gaussian noise std on the [0, 255] scale (default: %(default)s)")
    g.add_argument("--blur-sigma", type=float, default=d.blur_sigma, help="Gaussian blur std in pixels (default: %(default)s)")
    g.add_argument("--motion-length", type=int, default=d.motion_length, help="motion blur length in pixels (default: %(default)s)")
    g.add_argument("--motion-angle", type=float, default=d.motion_angle, help="motion blur direction in degrees (default: %(default)s)")
    g.add_argument("--jpeg-quality", type=int, default=d.jpeg_quality, help="JPEG quality 1-100 (default: %(default)s)")
    g.add_argument("--rain-density", type=float, default=d.rain_density, help="rain drops per pixel (default: %(default)s)")
    g.add_argument("--rain-length", type=int, default=d.rain_length, help="rain streak length in pixels (default: %(default)s)")


def degradation_from_args(args: argparse.Namespace):
    """The ``DegradationConfig`` of the degradation flags."""
    from ..data.config import DegradationConfig

    return DegradationConfig(kind=args.degradation, scale=args.scale, noise_sigma=args.noise_sigma,
                             blur_sigma=args.blur_sigma, motion_length=args.motion_length,
                             motion_angle=args.motion_angle, jpeg_quality=args.jpeg_quality,
                             rain_density=args.rain_density, rain_length=args.rain_length, seed=args.seed)


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
