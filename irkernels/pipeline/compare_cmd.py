"""Does condensation pay off on your data? Make each training set at one ratio (whole, random,
herding, kcenter, random+teacher, idc; and for TripleD, which keeps whole images: random-images,
tripled-selection, tripled, tripled-no-latent, tripled-no-cnn), train the same student on each with the same budget and
seeds, score a validation split held out from --data every --eval-every steps and the --test
folders once, and write a table (mean ± std over seeds, RGB and Y PSNR/SSIM, bicubic and the
teacher as rows), learning curves (curves.png), the steps each set needs to reach a target PSNR,
compare.json and report.html.

Presets: --preset cpu (the defaults: ×2, ratio 1 %, 16-px LR patches, edsr-tiny, 2 CPU cores; the
budget at which the rows differ, docs/compare.md), tiny (the embedded photos in a few minutes;
tells nothing), paper (the IDC paper's ×4 / 10 % / EDSR-baseline scale, for a GPU). Flags given
win over the preset.

Budgets: --budgets B1 B2 ... trains every set at each share of the training split's LR pixels
and draws the data-efficiency curve (budgets.png): below one patch per image the patch-level sets
keep that many random images' one patch each; a budget below half an image is said and skipped
for the whole-image sets.

Resumable: re-running the same command skips finished rows and resumes the interrupted one;
adding --sets, --seeds, --idc-tune variants or --test folders extends the folder.

Examples:
  python -m irkernels.pipeline compare --preset tiny --out runs/compare-tiny
  python -m irkernels.pipeline compare --data CBSD432/ --out runs/compare-cpu
  python -m irkernels.pipeline compare --data CBSD432/ --out runs/compare-cpu --idc-tune iters=200 lr=0.02
  python -m irkernels.pipeline compare --data CBSD432/ --out runs/compare-cpu --test Set5/ Set14/
  python -m irkernels.pipeline compare --data CBSD432/ --out runs/compare-cpu \
      --sets whole random-images tripled-selection tripled tripled-no-latent tripled-no-cnn
  python -m irkernels.pipeline compare --data CBSD432/ --out runs/budgets-cpu --budgets 0.0005 0.002 0.0067 0.02 0.1 \
      --sets whole random random+teacher idc random-images tripled-selection tripled
"""
from __future__ import annotations

import argparse

from .options import Flag, UserError, add_config_flags, at_least_one, config_fields

NAME = "compare"
HELP = "does a condensed set train a network better than random patches? (table, curves, report)"

# the comparison's flags, from CompareConfig's fields (type from the field; default from the preset)
OPTIONS = {"comparison (defaults: the cpu preset; the tiny and paper presets' values where they differ)": [
    Flag("sets", "training sets to make, each a row (default: %(default)s)"),
    Flag("seeds", "seeds of every set's student (and of the set itself) (default: %(default)s)"),
    Flag("task", "sr (bicubic ×--scale) or a same-size task for the image-level sets (default: %(default)s)"),
    Flag("scale", "SR factor (default: %(default)s)"),
    Flag("ratio", "share of each image's patches every set keeps (default: %(default)s)"),
    Flag("budgets", "a data-efficiency sweep instead of one --ratio: shares of the training split's LR pixels every "
                    "set keeps (e.g. 0.0005 0.002 0.0067 0.02 0.1); whole, bicubic and the teacher are made once; "
                    "writes budgets.png/.md/.json (default: %(default)s)"),
    Flag("lr_patch", "LR patch side in pixels; HR = × scale (default: %(default)s)"),
    Flag("lr_stride", "LR stride of the patch grid (default: %(default)s)"),
    Flag("val_images", "last images of --data (by name) held out as the validation split (default: %(default)s)"),
    Flag("max_images", "use at most this many of the other images for training (default: %(default)s)",
         type=at_least_one),
    Flag("model", "the student network (default: %(default)s)"),
    Flag("steps", "the student's optimizer steps, the same for every set (default: %(default)s)"),
    Flag("batch_size", "the student's batch (default: %(default)s)"),
    Flag("lr", "the student's peak AdamW learning rate, cosine to 1e-6 (default: %(default)s)"),
    Flag("eval_every", "score the validation split every this many steps: the learning curves (default: %(default)s)"),
    Flag("teacher_model", "the teacher / feature network (default: %(default)s)"),
    Flag("teacher_steps", "its training steps on every training patch (default: %(default)s)"),
    Flag("idc", "IDC settings as KEY=VALUE (IDCConfig fields), over the preset's (default: %(default)s)",
         key_values=True),
    Flag("idc_tune", "more IDC settings as KEY=VALUE: a variant row idc[KEY=VALUE,...] beside the others",
         key_values=True),
    Flag("tripled", "TripleD settings as KEY=VALUE (TripleDConfig fields; a step's as latent.steps=50, "
                    "finetune.steps=50), over the preset's (default: %(default)s)", key_values=True),
    Flag("students_together", "train this many students at once, stacked in one batched step (equal to one by one "
                              "within float tolerance; more memory); 0: 8 on a GPU, 1 on a CPU, where it measured no "
                              "faster (default: %(default)s)"),
    Flag("target_psnr", "validation PSNR-Y of the steps-to-target table (default: the best of the random row's "
                        "mean curve, else random-images')"),
    Flag("device", "auto, cpu, cuda, cuda:1, ... (default: %(default)s)"),
]}
KEY_VALUE_FIELDS = ("idc", "idc_tune", "tripled")


def _flat_defaults(method: str) -> dict:
    """The method config's fields with their defaults; a step's (nested) field as ``step.field``."""
    from ..registry import get_method

    out = {}
    for key, value in get_method(method).config_class()().to_dict().items():
        out.update({f"{key}.{k}": v for k, v in value.items()} if isinstance(value, dict) and value
                   and key != "model_kwargs" else {key: value})
    return out


def _key_values(items: list[str] | None, flag: str, method: str) -> dict:
    """``["iters=50", "lr=0.02"]`` → typed fields of ``method``'s config (``UserError`` naming a bad
    one, or one the comparison sets itself: the spec's ``fixed``)."""
    from ..registry import get_method

    defaults, fixed = _flat_defaults(method), get_method(method).fixed
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.replace("-", "_")
        if not sep or key not in defaults or key in fixed or key in ("device", "progress"):
            raise UserError(f"{flag} takes KEY=VALUE with KEY a {method} setting (see `{method} --help`) other than "
                            f"the comparison's own, got {item!r}")
        kind = type(defaults[key]) if defaults[key] is not None else float
        try:
            out[key] = (value.lower() in ("1", "true", "yes")) if kind is bool else value if kind is str else kind(value)
        except ValueError:
            raise UserError(f"{flag} {item!r}: {key} takes a {kind.__name__}") from None
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..compare.config import PRESETS, TASKS, CompareConfig, preset, set_names
    from ..models import MODEL_NAMES

    p.add_argument("--data", help="training image folder (default: the embedded sample photos)")
    p.add_argument("--test", nargs="+", default=[], metavar="DIR", help="test folders scored once per row (Set5/ Set14/)")
    p.add_argument("--out", default="runs/compare", help="output folder (default: %(default)s)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu", help="the scale to run at (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace a folder holding a comparison with other settings")
    p.add_argument("--report-only", action="store_true",
                   help="make and train nothing: write the tables, curves and report of the rows finished so far")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no tqdm progress bars")

    def shown(path: str, value) -> str:
        """The cpu preset's value (the dataclass default), then the other presets' where they differ."""
        others = {name: preset(name).get(path, value) for name in PRESETS if name != "cpu"}
        differ = ", ".join(f"{name}: {_shown(v)}" for name, v in others.items() if v != value)
        return _shown(value) + (f"; {differ}" if differ else "")

    choices = {"sets": set_names(), "model": sorted(MODEL_NAMES), "teacher_model": sorted(MODEL_NAMES), "scale": (2, 3, 4, 8),
               "task": TASKS}
    add_config_flags(p, CompareConfig(), OPTIONS, choices, shown=shown)


def _shown(value) -> str:
    if value is None:
        return "all"
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items()) or "none"
    if isinstance(value, list):
        return " ".join(map(str, value)) or "none"
    return str(value)


def config_from_args(args: argparse.Namespace):
    """The ``CompareConfig``: the preset's values, then every flag given (a method's settings given
    as ``KEY=VALUE`` over the preset's)."""
    from ..compare.config import CompareConfig, preset

    values = preset(args.preset)
    for path, given in config_fields(args, OPTIONS).items():
        if path in KEY_VALUE_FIELDS:
            base = values.get(path, getattr(CompareConfig(), path)) if path != "idc_tune" else {}
            values[path] = {**base, **_key_values(given, "--" + path.replace("_", "-"), path.split("_")[0])}
        elif given is not None:
            values[path] = given
    return CompareConfig(**values, progress=args.progress)


def run(args: argparse.Namespace) -> int:
    from ..compare.pipeline import run as run_compare

    result = run_compare(config_from_args(args), args.out, data=args.data, test=args.test, overwrite=args.overwrite,
                         report_only=args.report_only)
    if result.compare_json:  # under torchrun, rank 0's: the others' rows are in its tables
        print(result.text())
    return 0
