"""The ``python -m irkernels.pipeline`` CLI: help, config files, a tiny train + eval on embedded data."""
import json
import os
import subprocess
import sys

import pytest

from irkernels.pipeline.__main__ import CommandFailed, build_parser, main


def test_no_arguments_prints_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "train" in out and "eval" in out


@pytest.mark.parametrize("command", ["train", "eval"])
def test_help_documents_every_option(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    _, subparsers = build_parser()
    for action in subparsers[command]._actions:
        assert action.help, f"{action.option_strings} has no help text"
        for flag in action.option_strings:
            assert flag in out


def test_module_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "irkernels.pipeline", "eval", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "--checkpoint" in done.stdout


# Measured on the 2-core CPU box on 2026-12-06: 0.2 s CPU for `--help`, 1.75 s for a child that only
# imports torch (a ratio of 0.11). The bound compares the two in one run, as any absolute time
# depends on the machine and its load.
HELP_SHARE_OF_TORCH_IMPORT = 0.5


def _child_cpu_seconds(code: str) -> tuple[subprocess.CompletedProcess, float]:
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return done, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_answer_without_torch(flag):
    code = ("import sys, runpy; sys.argv = ['irkernels', '%s']\n"
            "try:\n    runpy.run_module('irkernels.pipeline', run_name='__main__')\n"
            "except SystemExit:\n    pass\nprint('torch' in sys.modules)") % flag
    done, cpu = _child_cpu_seconds(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "False"  # torch was not imported
    assert ("irkernels 0.1.0" if flag == "--version" else "COMMAND") in done.stdout
    torch_done, torch_cpu = _child_cpu_seconds("import torch")
    assert torch_done.returncode == 0, torch_done.stderr
    assert cpu < HELP_SHARE_OF_TORCH_IMPORT * torch_cpu, f"{flag}: {cpu:.2f} s of CPU, importing torch {torch_cpu:.2f} s"


def test_progress_is_info_and_shown_by_default(tmp_path):
    """A progress line (here: the patch size train picks for a small image) is INFO, and the command
    line as a user runs it shows it; nothing at WARNING."""
    import numpy as np
    from PIL import Image

    (tmp_path / "data").mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 44, 3), dtype=np.uint8)).save(tmp_path / "data" / "a.png")
    done = subprocess.run([sys.executable, "-m", "irkernels.pipeline", "train", "--data", str(tmp_path / "data"),
                           "--model", "edsr-tiny", "--scale", "2", "--steps", "1", "--batch-size", "2",
                           "--val-images", "0", "--device", "cpu", "--no-progress", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert "INFO irkernels.pipeline.train_cmd: HR patch size 40 px" in done.stderr
    assert "WARNING" not in done.stderr


def test_defaults_and_choices_shared_with_the_other_commands():
    _, subparsers = build_parser()
    defaults = {name: p.get_default("out") for name, p in subparsers.items()}
    assert all(defaults[name] for name in ("train", "idc", "tripled", "demo"))  # --out never required
    scale = {name: next(a for a in subparsers[name]._actions if a.dest == "scale").choices
             for name in ("train", "eval", "idc")}
    assert scale["train"] == scale["eval"] == (1, 2, 3, 4, 8) and scale["idc"] == (2, 3, 4, 8)


def test_train_picks_a_patch_size_that_fits():
    from irkernels.pipeline.options import UserError
    from irkernels.pipeline.train_cmd import patch_size_for

    assert patch_size_for({"a": 500, "b": 300}, 4) == 96
    assert patch_size_for({"a": 500, "b": 64}, 4) == 64  # the demo's 16 px LR pairs at ×4
    assert patch_size_for({"a": 70}, 3) == 69 and patch_size_for({"a": 50}, 1) == 50
    with pytest.raises(UserError, match="'b' is 20 px"):
        patch_size_for({"a": 500, "b": 20}, 4)


def test_train_then_eval_on_embedded_data(tmp_path, capsys):
    out = tmp_path / "run"
    config = tmp_path / "cfg.yaml"
    config.write_text("steps: 50\nbatch-size: 4\nmax_images: 2\npatch_size: 48\nstride: 96\nlog_every: 1\n")
    argv = ["train", "--config", str(config), "--steps", "3", "--scale", "4", "--out", str(out), "--no-progress",
            "--device", "cpu", "--lr", "1e-4"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "trained 3 steps" in text  # the flag won over the file's 50
    # scored where it is made: on the image held out of the two (never trained on), next to bicubic
    held = json.loads((out / "held_out.json").read_text())
    assert len(held["images"]) == 1 and held["images"][0] in text
    ours, floor = (held[k]["sets"]["held-out"]["mean"]["psnr_y"] for k in ("network", "bicubic"))
    assert f"held-out: edsr-baseline {ours:.2f} dB PSNR-Y, bicubic {floor:.2f} dB" in text
    assert ("BELOW bicubic" in text) == (ours < floor)  # 3 steps: below, and it says so
    assert (out / "model.safetensors").exists() and (out / "last.pt").exists()
    assert len((out / "log.csv").read_text().splitlines()) == 4

    assert main(argv) == 0  # resuming a finished run trains nothing more
    assert "trained 0 steps (3 before)" in capsys.readouterr().out

    # the results go beside the checkpoint (not into the current directory), and the last line says so
    result = out / "model.eval.json"
    assert main(["eval", "--model", "edsr-baseline", "--checkpoint", str(out / "model.safetensors"), "--scale", "4",
                 "--max-images", "1", "--device", "cpu"]) == 0
    table = capsys.readouterr().out
    assert "samples" in table and "PSNR-Y" in table
    assert table.splitlines()[-1] == f"results written to {result}"
    scores = json.loads(result.read_text())["sets"]["samples"]
    assert list(scores["images"]) == ["astronaut"]
    assert 5 < scores["mean"]["psnr_y"] < 60 and 0 < scores["mean"]["ssim_y"] <= 1

    # an earlier result is kept: refused before scoring, unless --overwrite
    ev = ["eval", "--checkpoint", str(out / "model.safetensors"), "--max-images", "1", "--device", "cpu"]
    with pytest.raises(CommandFailed):
        main(ev)
    said = capsys.readouterr()
    assert said.err.splitlines() == [f"irkernels eval: error: --out: {result} holds an earlier evaluation; pass "
                                     "--overwrite to replace it, or choose another --out (-v shows the traceback)"]
    assert "scoring" not in said.out
    # the checkpoint names its network and its scale: --model and --scale may be left out, the output
    # says what it scored, and reads the network next to bicubic
    assert main([*ev, "--overwrite"]) == 0
    text = capsys.readouterr().out
    assert "scoring edsr-baseline with the weights in" in text
    assert json.loads(result.read_text())["sets"]["samples"]["mean"] == scores["mean"]
    ours = scores["mean"]["psnr_y"]
    line = next(x for x in text.splitlines() if x.startswith("samples: "))
    assert line.startswith(f"samples: edsr-baseline {ours:.2f} dB PSNR-Y, bicubic ")
    assert line.endswith("BELOW bicubic") == ("(-" in line)  # 3 steps: below, and it says so
    with pytest.raises(CommandFailed):  # a scale the checkpoint's network cannot do
        main(["eval", "--checkpoint", str(out / "model.safetensors"), "--scale", "2", "--max-images", "1",
              "--device", "cpu"])
    assert "holds a ×4 network (its metadata says so) but --scale is 2" in capsys.readouterr().err
    # a file that does not say, or a network of another architecture: one line, exit 2
    from safetensors.torch import load_file, save_file

    bare = tmp_path / "bare.safetensors"
    save_file(load_file(str(out / "model.safetensors")), str(bare))
    for args, message in ((["--checkpoint", str(bare)], "does not say which network it holds; pass --model"),
                          (["--checkpoint", str(bare), "--model", "edsr-tiny"], "holds another network than EDSR")):
        with pytest.raises(CommandFailed):
            main(["eval", *args, "--scale", "4", "--max-images", "1", "--device", "cpu"])
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1

    # other data in the same --out: refused (it would resume another run's steps); --overwrite starts afresh
    with pytest.raises(CommandFailed):
        main([a if a != "3" else "4" for a in argv] + ["--stride", "48"])
    assert "on other data" in capsys.readouterr().err
    assert main(argv + ["--stride", "48", "--overwrite"]) == 0
    assert "trained 3 steps (0 before)" in capsys.readouterr().out
    assert main(argv + ["--stride", "48", "--no-resume"]) == 0  # the old name, deprecated
    assert "trained 3 steps (0 before)" in capsys.readouterr().out


def test_eval_bicubic_on_folder(tmp_path, capsys, monkeypatch, caplog):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "MySet"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (50, 61, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (45, 45), dtype=np.uint8)).save(folder / "grey.png")
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "--test", str(folder), "--scale", "3"]) == 0  # no checkpoint: runs/eval, named by the network
    text = capsys.readouterr().out
    assert "MySet" in text and text.splitlines()[-1] == "results written to runs/eval/bicubic.eval.json"
    assert not (tmp_path / "eval.json").exists()
    res = json.loads((tmp_path / "runs" / "eval" / "bicubic.eval.json").read_text())
    assert res["config"]["crop_border"] == 3 and set(res["sets"]["MySet"]["images"]) == {"a", "grey"}
    assert main(["eval", "--test", str(folder), "--scale", "3", "--out", "results"]) == 0
    assert json.loads((tmp_path / "results" / "bicubic.eval.json").read_text())["sets"] == res["sets"]
    # the old --json works for one release, with a deprecation warning
    assert main(["eval", "--test", str(folder), "--scale", "3", "--json", "r.json"]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["sets"] == res["sets"]
    assert any(r.levelname == "WARNING" and "--json is deprecated" in r.getMessage() for r in caplog.records)


def test_bad_config_and_data(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stepz: 3\n")
    with pytest.raises(SystemExit, match="unknown option"):
        main(["train", "--config", str(bad)])
    with pytest.raises(SystemExit, match="holds no images"):
        main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--no-progress"])
