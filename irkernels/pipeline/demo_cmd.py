"""The demo (what a bare ``python -m irkernels.pipeline`` runs): IDC ×2 on a few of the colour photos
that ship with scikit-image / scikit-learn, with a tiny EDSR teacher trained on them first, then a
student trained on the condensed pairs and scored next to bicubic on a photo the demo never
condenses — a few minutes on a CPU, no data to download. It prints its settings, where the paired
folder, manifest.json and report.html are, the student's PSNR next to bicubic's, and what to run
next (`compare --preset tiny`: the condensed set against random patches and the whole set).

Examples:
  python -m irkernels.pipeline
  python -m irkernels.pipeline demo --max-images 1 --out runs/idc-demo-1
"""
from __future__ import annotations

import argparse

from .options import at_least_one

NAME = "demo"
HELP = "IDC on the embedded sample photos with small settings (a few CPU minutes); the bare command runs it"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/idc-demo", help="output folder (default: %(default)s)")
    p.add_argument("--max-images", type=at_least_one, default=4, help="embedded photos to condense (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace a demo of other settings in --out")


def settings_line(config: dict) -> str:
    """The demo's settings as ``key=value`` pairs (what differs from ``idc``'s defaults)."""
    return "demo settings: " + " ".join(f"{k}={v}" for k, v in config.items())


def run(args: argparse.Namespace) -> int:
    from ..idc.demo_run import DEMO_CONFIG, demo

    print(settings_line(DEMO_CONFIG))
    demo(args.out, args.max_images, args.overwrite)
    return 0
