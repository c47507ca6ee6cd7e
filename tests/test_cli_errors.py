"""Every CLI command on every kind of bad input: one line on stderr naming the problem, exit code 2,
no traceback (``-v`` shows it), no usage block; greyscale images are accepted (replicated to RGB)."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from irkernels.pipeline.__main__ import main

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:skipped:UserWarning")]  # the skipped-file warnings are expected here

# tiny settings per command; {out} is replaced by a fresh folder, the data flag is appended
COMMANDS = {
    "train": (["train", "--model", "edsr-tiny", "--steps", "1", "--batch-size", "2", "--device", "cpu",
               "--no-progress", "--out", "{out}"], "--data"),
    "eval": (["eval", "--out", "{out}"], "--test"),
    "idc": (["idc", "--method", "random", "--lr-patch", "8", "--lr-stride", "8", "--device", "cpu", "--no-progress",
             "--out", "{out}"], "--data"),
    "tripled": (["tripled", "--scorer", "entropy", "--no-latent", "--no-cnn", "--device", "cpu", "--no-progress",
                 "--out", "{out}"], "--data"),
}
# what each command says about an image that is too small (6x6)
TOO_SMALL = {"train": "short side, below the 32 px", "eval": "s is 4x4: too small to score",
             "idc": "no image is at least 32x32", "tripled": "smaller than the synthetic crop size"}
# the same missing file given where each command takes a checkpoint
CHECKPOINT_FLAGS = {"train": ["--init"], "eval": ["--model", "edsr-tiny", "--checkpoint"],
                    "idc": ["--method", "idc", "--teacher-checkpoint"], "tripled": ["--scorer", "vit", "--scorer-checkpoint"]}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    for name in ("empty", "corrupt", "grey", "small"):
        (root / name).mkdir()
    (root / "corrupt" / "a.png").write_bytes(b"not a png at all")
    Image.fromarray(rng.integers(0, 256, (72, 80), dtype=np.uint8)).save(root / "grey" / "g.png")
    Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).save(root / "small" / "s.png")
    return root


def argv_for(command, tmp_path, data=None, extra=()):
    base, flag = COMMANDS[command]
    argv = [a.replace("{out}", str(tmp_path / "out")) for a in base]
    return argv + ([flag, str(data)] if data is not None else []) + list(extra)


def fails(argv, capsys, pattern):
    """``main(argv)`` ends with exit code 2 and ONE error line (warnings aside) matching ``pattern``;
    returns all of stderr."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if not ln.lower().startswith("warning")]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"irkernels {argv[0]}: error: ") and re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("kind, pattern", [("missing", "does not exist"), ("empty", "holds no images"),
                                           ("corrupt", "holds no readable images"), ("small", None)])
def test_bad_folder(command, kind, pattern, inputs, tmp_path, capsys):
    extra = ()
    if kind == "small" and command == "tripled":  # synthetic crops on, at the smallest settings
        extra = ["--feature-model", "tripled-cnn", "--syn-size", "32", "--num-freqs", "16", "--vae-steps", "1",
                 "--vae-crop", "32", "--latent-steps", "1", "--latent-batch", "1"]
        argv = [a for a in argv_for(command, tmp_path, inputs / kind, extra) if a != "--no-latent"]
    else:
        argv = argv_for(command, tmp_path, inputs / kind, extra)
    fails(argv, capsys, pattern or TOO_SMALL[command])


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_greyscale_images_are_accepted(command, inputs, tmp_path, capsys):
    assert main(argv_for(command, tmp_path, inputs / "grey")) == 0
    assert "error" not in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_missing_checkpoint(command, inputs, tmp_path, capsys):
    missing = str(tmp_path / "nope.safetensors")
    fails(argv_for(command, tmp_path, inputs / "grey", [*CHECKPOINT_FLAGS[command], missing]), capsys,
          re.escape(missing))


@pytest.mark.parametrize("command, first, second", [
    ("train", ["--lr", "1e-3"], ["--lr", "2e-3"]),
    ("idc", ["--ratio", "0.1"], ["--ratio", "0.5"]),
    ("tripled", ["--ratio", "0.5"], ["--ratio", "1"]),
])
def test_run_folder_with_other_settings(command, first, second, inputs, tmp_path, capsys):
    assert main(argv_for(command, tmp_path, inputs / "grey", first)) == 0
    capsys.readouterr()
    fails(argv_for(command, tmp_path, inputs / "grey", second), capsys, "other settings")


def test_bad_option_values(tmp_path, capsys):
    fails(["train", "--device", "gpu", "--out", str(tmp_path / "o")], capsys, "device must be")
    fails(["demo", "--max-images", "0"], capsys, "argument --max-images: must be >= 1, got 0")
    (tmp_path / "bad.yaml").write_text("steps: [1\n")
    fails(["train", "--config", str(tmp_path / "bad.yaml")], capsys, "not valid YAML")
    fails(["eval", "--config", str(tmp_path / "none.yaml")], capsys, "cannot be read")
    fails(["idc", "--scale", "5"], capsys, "argument --scale: invalid choice")  # argparse's own errors too


# The bad inputs of issue 28, each through the CLI: exit 2 and exactly one line on stderr. {file} is a
# regular file, so an --out at or below it cannot be made (root may write anywhere chmod forbids).
OUT_ARGV = {**{command: base for command, (base, _) in COMMANDS.items()},
            "compare": ["compare", "--out", "{out}"], "demo": ["demo", "--out", "{out}"]}
BAD_INPUTS = {  # case → (argv, what its one line says)
    **{f"{command} --out below a file": ([a.replace("{out}", "{file}/out") for a in argv],
                                         r"--out \S+/out cannot be written \(\S+/file is not a folder\); "
                                         "choose another --out")
       for command, argv in OUT_ARGV.items()},
    **{f"{command} --out is a file": ([a.replace("{out}", "{file}") for a in OUT_ARGV[command]], "is not a folder")
       for command in ("train", "idc")},
    "train --model unknown": (["train", "--model", "unknown"],
                              r"argument --model: invalid choice: 'unknown' \(choose from 'edsr', "),
    "eval --model unknown": (["eval", "--model", "unknown"], r"argument --model: invalid choice: 'unknown'"),
    **{f"{command} --max-images 0": ([command, "--max-images", "0"],
                                     "^[^:]+: error: argument --max-images: must be >= 1, got 0$")
       for command in ("idc", "train", "eval", "demo", "compare")},
    "idc --max-images x": (["idc", "--max-images", "x"], "argument --max-images: expected a whole number >= 1, got 'x'"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_inputs_are_one_line(case, tmp_path, capsys):
    argv, pattern = BAD_INPUTS[case]
    (tmp_path / "file").write_text("not a folder")
    argv = [a.replace("{file}", str(tmp_path / "file")) for a in argv]
    err = fails(argv, capsys, pattern)
    assert len(err.splitlines()) == 1, err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only (0o500) folder anyway")
@pytest.mark.parametrize("command", ["train", "idc"])
def test_read_only_out_is_one_line(command, tmp_path, capsys):
    out = tmp_path / "read-only"
    out.mkdir(mode=0o500)
    argv = [a.replace("{out}", str(out)) for a in OUT_ARGV[command]]
    err = fails(argv, capsys, rf"--out {re.escape(str(out))} cannot be written \(Permission denied")
    assert len(err.splitlines()) == 1, err


def test_verbose_shows_the_traceback(inputs, tmp_path):
    with pytest.raises(ValueError, match="holds no images"):
        main(argv_for("eval", tmp_path, inputs / "empty", ["-v"]))


def test_exit_code_and_one_line_in_a_real_process():
    """The command line as a user runs it: exit status 2 and the error line only."""
    done = subprocess.run([sys.executable, "-m", "irkernels.pipeline", "demo", "--max-images", "0"],
                          capture_output=True, text=True, timeout=120, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["irkernels demo: error: argument --max-images: must be >= 1, got 0"]


def test_warnings_are_one_line(inputs, tmp_path, capsys):
    import warnings

    fails(argv_for("eval", tmp_path, inputs / "corrupt"), capsys, "holds no readable images")
    assert warnings.formatwarning("skipped a.png", UserWarning, "images.py", 1) == "warning: skipped a.png\n"


def _cost_warning_flags(path) -> set[str]:
    """The flags named in the hints of every ``CostEstimate(...)`` built in the module at ``path``."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "CostEstimate":
            for const in ast.walk(node):
                if isinstance(const, ast.Constant) and isinstance(const.value, str):
                    found |= set(re.findall(r"--[a-z][a-z-]+", const.value))
    return found


def test_every_flag_a_cost_warning_names_exists_on_its_command():
    """A long stage's warning names the flag that shortens it: that flag must parse on the command
    that prints it (tripled's warning used to suggest --steps and --teacher-steps, which it lacks)."""
    import pathlib

    from irkernels.pipeline.__main__ import build_parser
    from irkernels.pretrained import PretrainConfig
    from irkernels.tripled.pipeline import CPU_RECIPE

    package = pathlib.Path(__file__).resolve().parents[1] / "irkernels"
    pretrain = PretrainConfig().steps_flag  # the feature network's pre-training in idc and tripled
    named = {
        "train": {"--steps"},  # train()'s own default
        "compare": {"--steps", "--teacher-steps"},  # its students; its teacher (make_teacher's steps_flag)
        "idc": {pretrain} | _cost_warning_flags(package / "idc" / "pipeline.py"),
        # its stages, and the training on its output (tripled/training.py's steps_flag)
        "tripled": {pretrain, "--train-steps", *CPU_RECIPE.split()[::2]}
        | _cost_warning_flags(package / "tripled" / "latent.py")
        | _cost_warning_flags(package / "tripled" / "finetune.py")
        | _cost_warning_flags(package / "tripled" / "scoring.py"),
    }
    assert "--iters" in named["idc"] and {"--vae-steps", "--scorer-steps"} <= named["tripled"]
    assert 'steps_flag="--teacher-steps"' in (package / "compare" / "pipeline.py").read_text()
    assert 'steps_flag="--train-steps"' in (package / "tripled" / "training.py").read_text()
    for command, flags in named.items():
        known = set(build_parser(only=command)[1][command]._option_string_actions)
        assert flags <= known, f"{command} has no {sorted(flags - known)}"
    recipe = vars(build_parser(only="tripled")[0].parse_args(["tripled", *CPU_RECIPE.split()]))
    from irkernels.tripled.config import TripleDConfig
    from irkernels.tripled.pipeline import cpu_sized

    # the defaults on a CPU name the recipe; the recipe itself does not
    assert not cpu_sized(TripleDConfig()) and recipe["feature_model"] == "edsr-tiny"
    from dataclasses import replace

    small = TripleDConfig(task="sr2", feature_model="edsr-tiny", pretrain_steps=1000)
    assert cpu_sized(replace(small, latent=replace(small.latent, vae_steps=0))) and not cpu_sized(small)
