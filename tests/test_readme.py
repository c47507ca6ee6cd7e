"""First contact: the README's python snippets run as written (one namespace, in order, on this
machine's device), its demo settings are the demo's, and every `next:` command the CLI prints runs.

The printed `next:` commands are run as printed plus `--steps 1 --device cpu --no-progress` (flags
given later win; `compare` also with its teacher and IDC cut), and the demo at its smallest: one photo, with its iteration counts cut
(``DEMO_SHRINK``) — what is checked is that the printed command fits the folder the run wrote.
"""
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from irkernels.pipeline.__main__ import main

pytestmark = pytest.mark.usefixtures("one_thread")

README = Path(__file__).resolve().parents[1] / "README.md"
SHRINK_TRAIN = ["--steps", "1", "--batch-size", "2", "--device", "cpu", "--no-progress"]
SHRINK = {"train": SHRINK_TRAIN,  # per command; the compare preset's teacher and IDC cut as well
          "compare": SHRINK_TRAIN + ["--teacher-steps", "1", "--idc", "iters=1", "--seeds", "0", "--max-images", "2"]}
DEMO_SHRINK = {"iters": 2, "pretrain_steps": 1, "pretrain_batch": 2, "num_freqs": 16, "resample_every": 1,
               "reassign_every": 1, "log_every": 1}


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def test_python_snippets_run_as_written(capsys):
    code = blocks("python")
    assert len(code) >= 4
    namespace: dict = {}
    for k, block in enumerate(code):
        exec(compile(block, f"README.md python block {k}", "exec"), namespace)
    assert "cuda_extension" in capsys.readouterr().out  # the backend report, one line per entry
    per_group, res, f_syn = namespace["per_group"], namespace["res"], namespace["f_syn"]
    assert per_group.shape == (namespace["G"],) and bool((per_group >= 0).all())
    assert f_syn.grad is not None and bool(f_syn.grad.abs().sum() > 0)
    assert res.labels.shape == (512,) and int(res.labels.max()) < 8


def test_backend_report_is_flat():
    import irkernels

    report = irkernels.backend_report()
    assert not [k for k, v in report.items() if isinstance(v, dict)]
    assert isinstance(report["cuda_extension"], bool) and "cuda_extension_reason" in report


def test_demo_settings_in_the_readme_are_the_demos():
    from irkernels.idc.demo_run import DEMO_CONFIG
    from irkernels.pipeline.demo_cmd import settings_line

    assert settings_line(DEMO_CONFIG) + "\n" in blocks("text")


def run_next(text: str) -> None:
    """Run the ``next:`` command(s) printed in ``text`` (shrunk), each must succeed."""
    commands = [ln.split("next:", 1)[1].strip() for ln in text.splitlines() if ln.startswith("next:")]
    assert commands, text
    for command in commands:
        words = shlex.split(command)
        assert words[:3] == ["python", "-m", "irkernels.pipeline"], command
        assert main(words[3:] + SHRINK[words[3]]) == 0, command


def test_demo_next_command_runs(tmp_path, monkeypatch, capsys):
    import irkernels.idc.demo_run as idc_pipeline

    monkeypatch.chdir(tmp_path)
    for key, value in DEMO_SHRINK.items():
        monkeypatch.setitem(idc_pipeline.DEMO_CONFIG, key, value)
    monkeypatch.setitem(idc_pipeline.DEMO_STUDENT, "steps", 1)
    assert main(["demo", "--max-images", "1"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("demo settings: ") and "iters=2" in text
    run_next(text)
    assert "rows: " in capsys.readouterr().out and (tmp_path / "runs" / "compare-tiny" / "table.md").exists()


def test_idc_and_tripled_next_commands_run(tmp_path, monkeypatch, capsys):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (64, 72, 3), dtype=np.uint8)).save(photos / f"p{i}.png")
    assert main(["idc", "--method", "random", "--data", str(photos), "--lr-patch", "8", "--lr-stride", "8",
                 "--device", "cpu", "--no-progress"]) == 0
    run_next(capsys.readouterr().out)
    assert main(["tripled", "--data", str(photos), "--scorer", "entropy", "--no-latent", "--no-cnn", "--ratio", "0.5",
                 "--device", "cpu", "--no-progress"]) == 0
    run_next(capsys.readouterr().out)
    assert (tmp_path / "runs" / "idc-trained" / "model.safetensors").exists()
    assert (tmp_path / "runs" / "tripled-trained" / "model.safetensors").exists()
