"""The ``compare`` command on tiny real runs: every output made from trained students, resumed runs
equal to uninterrupted ones, the folder guard, the checks that say whether a budget tells, and the
``random+teacher`` control as an ``idc --method``."""
import json
import os

import numpy as np
import pytest
import torch

from irkernels.compare.config import CompareConfig
from irkernels.compare.report import checks, steps_to, summarise, verdict_lines
from irkernels.data import sample_images
from irkernels.outputs import png_bytes

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**kw) -> CompareConfig:
    """Six 64×96 images (two held out), ×2, 8-px LR patches: a whole comparison in seconds."""
    base = dict(sets=["whole", "random", "random+teacher", "idc"], seeds=[0, 1], scale=2, ratio=0.2, lr_patch=8,
                lr_stride=8, val_images=2, steps=6, batch_size=4, eval_every=3, teacher_steps=6, device="cpu",
                progress=False, idc={"iters": 3, "num_freqs": 32, "rlff_channels": 8, "num_groups": 2,
                                     "kmeans_iters": 2, "batch_instances": 2})
    return CompareConfig(**{**base, **kw})


def write_photos(root) -> str:
    """Six 64×96 crops of the embedded photos into ``root``: tiny()'s folder."""
    for i, im in enumerate(sample_images(limit=6)):
        crop = np.ascontiguousarray(im.pixels[40:104, 40:136])
        (root / f"im{i}.png").write_bytes(png_bytes(torch.from_numpy(crop).permute(2, 0, 1).float() / 255))
    return str(root)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_photos(tmp_path_factory.mktemp("photos"))


def _rows(out) -> dict:
    rows = {}
    for f in sorted(os.listdir(os.path.join(out, "rows"))):
        with open(os.path.join(out, "rows", f)) as fh:
            row = json.load(fh)
        for key in ("make_s", "train_s", "train_segments_s", "score_s", "patches_per_s"):  # timings differ between runs
            row.pop(key, None)
        rows[f] = row
    return rows


@pytest.fixture(scope="module")
def uninterrupted(folder, tmp_path_factory):
    from irkernels.compare.pipeline import run

    out = str(tmp_path_factory.mktemp("cmp") / "a")
    return run(tiny(), out, data=folder), out


def test_outputs_come_from_trained_rows(uninterrupted):
    result, out = uninterrupted
    for name in ("compare.json", "table.md", "curves.png", "report.html"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    assert result.rows_done == 2 + 4 * 2 and result.rows_skipped == 0
    rows = _rows(out)
    assert sorted(rows) == sorted(["bicubic.json", "teacher.json"] + [f"{s}-seed{k}.json" for s in
                                   ("whole", "random", "random+teacher", "idc") for k in (0, 1)])
    # every student's curve: the validation split scored at steps 3 and 6, the last point its final PSNR
    for name, row in rows.items():
        if row["seed"] is not None:
            assert [p["step"] for p in row["curve"]] == [3, 6]
            assert row["curve"][-1]["psnr_y"] == pytest.approx(row["val"]["psnr_y"], abs=1e-9)
    # random and random+teacher share LR patches (IDC's initial ones) and their count; whole has all of them
    assert rows["random-seed0.json"]["pairs"] == rows["random+teacher-seed0.json"]["pairs"] \
        == rows["idc-seed0.json"]["pairs"] < rows["whole-seed0.json"]["pairs"]
    summary = json.load(open(os.path.join(out, "compare.json")))["summary"]
    names = [e["row"] for e in summary["rows"]]
    assert names == ["bicubic", "teacher", "whole", "random", "random+teacher", "idc"]
    whole = next(e for e in summary["rows"] if e["row"] == "whole")
    vals = [rows[f"whole-seed{k}.json"]["val"]["psnr_y"] for k in (0, 1)]
    assert whole["scores"]["val"]["psnr_y"][0] == pytest.approx(np.mean(vals))
    assert whole["scores"]["val"]["psnr_y"][1] == pytest.approx(np.std(vals, ddof=1))
    table = open(os.path.join(out, "table.md")).read()
    assert f"{np.mean(vals):.2f} ± {np.std(vals, ddof=1):.2f}" in table
    # the default target is the best point of the random row's mean curve, which random itself reaches
    assert summary["target_psnr"] == pytest.approx(max(np.mean([rows[f"random-seed{k}.json"]["curve"][i]["psnr_y"]
                                                                for k in (0, 1)]) for i in (0, 1)))
    assert next(e for e in summary["rows"] if e["row"] == "random")["steps_to_target"]["reached"] >= 1
    assert "students_beat_bicubic" in summary["checks"] and "whole_beats_random" in summary["checks"]


def run_interrupted_at_score(monkeypatch, nth: int, *args, **kwargs) -> None:
    """``compare.pipeline.run(*args, **kwargs)`` stopped by Ctrl-C at its ``nth`` validation scoring."""
    import irkernels.compare.pipeline as pipeline

    calls = {"n": 0}
    real = pipeline.score_network

    def interrupt(*a, **kw):
        calls["n"] += 1
        if calls["n"] == nth:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(pipeline, "score_network", interrupt)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(*args, **kwargs)
    monkeypatch.setattr(pipeline, "score_network", real)


def test_resumed_run_equals_uninterrupted(folder, uninterrupted, tmp_path, monkeypatch):
    """Interrupted inside a student's training (after its first validation point) and resumed: every
    row, curve and score equals the uninterrupted run's."""
    import irkernels.compare.pipeline as pipeline

    out = str(tmp_path / "b")
    # the 6th scoring: bicubic, teacher, whole-seed0 (steps 3, 6), whole-seed1 at step 3, then its step 6
    run_interrupted_at_score(monkeypatch, 6, tiny(), out, data=folder)
    assert sorted(os.listdir(os.path.join(out, "rows"))) == ["bicubic.json", "teacher.json", "whole-seed0.json"]
    assert os.path.exists(os.path.join(out, "train", "whole-seed1", "last.pt"))  # resumed, not restarted
    trained, train_students = [], pipeline.train_students
    monkeypatch.setattr(pipeline, "train_students", lambda *a: trained.append(train_students(*a)) or trained[-1])
    result = pipeline.run(tiny(), out, data=folder)
    # the resumed student trained its last 3 of 6 steps: the time estimate counts it as half a row
    assert [info["steps_run"] for group in trained for _, info in group] == [3] + [6] * 6
    assert result.rows_skipped == 3
    assert _rows(out) == _rows(uninterrupted[1])
    # the interrupted row's seconds add up both of its segments
    row = json.load(open(os.path.join(out, "rows", "whole-seed1.json")))
    assert len(row["train_segments_s"]) == 2 and row["train_s"] == pytest.approx(sum(row["train_segments_s"]))


def test_rerun_skips_and_extends(folder, uninterrupted, tmp_path):
    import shutil

    from irkernels.compare.pipeline import run

    out = str(tmp_path / "c")
    shutil.copytree(uninterrupted[1], out)
    again = run(tiny(), out, data=folder)
    assert again.rows_done == 0 and again.rows_skipped == 10
    more = run(tiny(sets=["random"], seeds=[0, 1, 2]), out, data=folder)
    assert more.rows_done == 1 and [e["row"] for e in more.summary["rows"]] == ["bicubic", "teacher", "random"]
    # a test folder given later is scored for every row from its kept weights
    scored = run(tiny(sets=["whole"], seeds=[0]), out, data=folder, test=[folder])
    assert scored.rows_done == 0
    whole = json.load(open(os.path.join(out, "rows", "whole-seed0.json")))
    assert set(whole["test"][os.path.basename(folder)]) == {"psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y"}


def test_other_settings_or_another_commands_folder_are_refused(folder, uninterrupted, tmp_path):
    from irkernels.compare.pipeline import run

    with pytest.raises(FileExistsError, match="other settings.*steps: 6 → 9"):
        run(tiny(steps=9), uninterrupted[1], data=folder)
    other = tmp_path / "idc-run"
    other.mkdir()
    (other / "manifest.json").write_text("{}")
    with pytest.raises(FileExistsError, match="holds the output of `a method`"):
        run(tiny(), str(other), data=folder, overwrite=True)  # another command's folder: not even with overwrite
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="does not hold a comparison"):
        run(tiny(), str(stray), data=folder)


def test_idc_tune_adds_a_variant_row(folder, uninterrupted, tmp_path):
    import shutil

    from irkernels.compare.pipeline import run

    out = str(tmp_path / "d")
    shutil.copytree(uninterrupted[1], out)
    res = run(tiny(sets=["idc"], seeds=[0], idc_tune={"lr": 0.05}), out, data=folder)
    assert res.rows_done == 1
    row = json.load(open(os.path.join(out, "rows", "idc-lr0.05-seed0.json")))
    assert row["idc_settings"]["lr"] == 0.05 and row["idc_settings"]["iters"] == 3
    assert [e["row"] for e in res.summary["rows"]] == ["bicubic", "teacher", "idc", "idc[lr=0.05]"]


TINY_TRIPLED = {"syn_size": 32, "latent.vae_steps": 0, "latent.steps": 2, "finetune.steps": 2, "finetune.batch_size": 2,
                "num_freqs": 16}


def test_tripled_sets_keep_whole_images_with_the_teacher_as_feature_network(folder, tmp_path):
    from irkernels.compare.pipeline import run

    out = str(tmp_path / "t")
    res = run(tiny(sets=["random-images", "tripled", "tripled-no-cnn"], seeds=[0], ratio=0.5, tripled=TINY_TRIPLED),
              out, data=folder)
    rows = _rows(out)
    # 4 training images of 64×96 at p = 0.5: 2 whole images of 4 × 6 HR patches (16 px) each;
    # TripleD adds one distilled 32² crop per selected image (2 × 2 patches)
    assert rows["random-images-seed0.json"]["pairs"] == 2 * 24
    assert rows["tripled-seed0.json"]["pairs"] == rows["tripled-no-cnn-seed0.json"]["pairs"] == 2 * 24 + 2 * 4
    settings = rows["tripled-no-cnn-seed0.json"]["tripled_settings"]
    assert settings["task"] == "sr2" and settings["ratio"] == 0.5 and not settings["use_cnn"] and settings["use_latent"]
    assert settings["latent"]["vae_steps"] == 0 and settings["finetune"]["steps"] == 2 and settings["syn_size"] == 32
    manifest = json.load(open(os.path.join(out, "sets", "tripled-seed0", "manifest.json")))
    assert manifest["num_selected"] == 2 and manifest["distillation_space"] == "pixel"
    assert manifest["feature_network"]["steps"] == 6  # the comparison's teacher, not a network of its own
    assert os.listdir(os.path.join(out, "cache")) == [os.path.basename(os.path.dirname(
        manifest["feature_network"]["checkpoint"]))]
    assert [e["row"] for e in res.summary["rows"]] == ["bicubic", "teacher", "random-images", "tripled",
                                                        "tripled-no-cnn"]


def test_a_same_size_task_compares_image_level_sets_against_the_degraded_input(folder, tmp_path):
    from irkernels.compare.pipeline import run, task_instances, split_images

    cfg = tiny(task="denoise25", sets=["whole", "random-images", "tripled-no-cnn"], seeds=[0], ratio=0.5,
               tripled=TINY_TRIPLED)
    inst = task_instances(cfg, split_images(cfg, folder)[0])[0]
    assert inst.lr.shape == inst.hr.shape == (8 * 12, 3, 8, 8)  # ×1: the noisy patch and its clean target
    noise = inst.lr.float() - inst.hr.float()
    assert 20 < float(noise.std()) < 26  # σ = 25 levels, less where clipped at 0 and 255
    out = str(tmp_path / "dn")
    res = run(cfg, out, data=folder)
    assert [e["row"] for e in res.summary["rows"]] == ["input", "teacher", "whole", "random-images", "tripled-no-cnn"]
    rows = _rows(out)
    assert 18 < rows["input.json"]["val"]["psnr_rgb"] < 23  # the noisy input itself (σ = 25: about 20 dB)
    assert rows["tripled-no-cnn-seed0.json"]["tripled_settings"]["task"] == "denoise25"
    assert rows["whole-seed0.json"]["pairs"] == 4 * 8 * 12  # 4 images of 64×96 in 8-px patches, at ×1
    assert res.summary["checks"]["students_beat_bicubic"]["baseline"] == "input"
    with pytest.raises(ValueError, match="SR methods"):
        tiny(task="denoise25", sets=["idc"])


def test_a_folder_made_before_a_field_existed_is_resumed(folder, uninterrupted, tmp_path):
    import shutil

    from irkernels.compare.pipeline import run

    out = str(tmp_path / "old")
    shutil.copytree(uninterrupted[1], out)
    path = os.path.join(out, "settings.json")
    settings = json.load(open(path))
    del settings["tripled"]  # at its default: as a folder written before the field was added
    json.dump(settings, open(path, "w"))
    assert run(tiny(), out, data=folder).rows_skipped == 2 + 4 * 2
    with pytest.raises(FileExistsError, match="tripled"):  # a value other than the default is still refused
        run(tiny(tripled={"syn_size": 32}), out, data=folder)


def test_steps_to_interpolates_between_points():
    curve = [{"step": 10, "psnr_y": 20.0}, {"step": 20, "psnr_y": 22.0}, {"step": 30, "psnr_y": 23.0}]
    assert steps_to(curve, 21.0) == pytest.approx(15.0)
    assert steps_to(curve, 20.0) == 10.0
    assert steps_to(curve, 19.0) == 10.0  # reached at the first point: no earlier one to interpolate from
    assert steps_to(curve, 23.5) is None


def _row(name, seed, psnr_y, curve=None):
    val = {"psnr_rgb": psnr_y, "ssim_rgb": 0.5, "psnr_y": psnr_y, "ssim_y": 0.5}
    return {"row": name, "kind": name, "seed": seed, "device": "cpu", "make_s": 0.0, "train_s": 0.0, "val": val,
            **({"curve": curve} if curve else {})}


def test_checks_say_when_a_budget_cannot_tell():
    rows = [_row("bicubic", None, 30.0), _row("whole", 0, 31.0), _row("whole", 1, 31.2),
            _row("random", 0, 30.9), _row("random", 1, 31.1)]
    c = summarise(rows, None)["checks"]
    assert c["students_beat_bicubic"]["ok"] and not c["whole_beats_random"]["ok"]  # gap 0.1 < 2 × 0.14
    rows += [_row("idc", 0, 30.1), _row("idc", 1, 30.1)]
    c = checks({e["row"]: e for e in summarise(rows, None)["rows"]})
    assert not c["students_beat_bicubic"]["ok"] and c["students_beat_bicubic"]["short"] == {"idc": pytest.approx(0.1)}
    # one seed has no spread: a gap of 1 dB does not pass for "beyond the spread" (TripleD's control too)
    c = summarise([_row("bicubic", None, 30.0), _row("whole", 0, 32.0), _row("random-images", 0, 31.0)], None)["checks"]
    assert not c["whole_beats_random-images"]["ok"] and c["whole_beats_random-images"]["seeds"] == 1
    said = verdict_lines({"checks": c})
    assert any("one seed" in line for line in said)
    assert said[-1].endswith("give >= 2 seeds (--seeds 0 1 2)") and "--preset" not in said[-1]
    c = summarise([_row("bicubic", None, 30.0), _row("whole", 0, 31.0), _row("whole", 1, 31.2),
                   _row("random", 0, 30.9), _row("random", 1, 31.1)], None)["checks"]
    assert "the data does not matter at this budget" in verdict_lines({"checks": c})[-1]


def test_a_student_that_over_fits_below_the_floor_is_told_so():
    """A short student whose curve peaked well above its end over-fitted its pairs: the verdict says
    so (fewer steps or a larger budget), not "raise --steps"."""
    falling = [{"step": 1000, "psnr_y": 28.9}, {"step": 8000, "psnr_y": 27.0}]
    rising = [{"step": 1000, "psnr_y": 29.0}, {"step": 8000, "psnr_y": 30.1}]
    rows = [_row("bicubic", None, 28.5), _row("random", 0, 27.0, falling), _row("random", 1, 27.0, falling),
            _row("whole", 0, 30.1, rising), _row("whole", 1, 30.1, rising)]
    c = summarise(rows, None)["checks"]
    assert c["students_beat_bicubic"]["overfit"] == ["random"]
    last = verdict_lines({"checks": c})[-1]
    assert "random peaked early and fell back" in last and "raise --steps" not in last


def test_tables_keep_the_order_the_user_gave():
    rows = [_row("bicubic", None, 30.0)]
    for name in ("whole", "random", "idc"):
        for seed in (0, 1):
            rows.append({**_row(name, seed, 31.0), "test": {"Set5": _row(name, seed, 33.0)["val"],
                                                             "B100": _row(name, seed, 32.0)["val"]}})
    summary = summarise(rows, None, sets=["idc", "whole", "random"], tests=["Set5", "B100"])
    assert [e["row"] for e in summary["rows"]] == ["bicubic", "idc", "whole", "random"]
    assert list(summary["rows"][1]["scores"]) == ["val", "Set5", "B100"]


def test_cli_compare_and_its_errors(folder, tmp_path, capsys):
    from irkernels.pipeline.__main__ import CommandFailed, main

    out = str(tmp_path / "cli")
    args = ["compare", "--data", folder, "--out", out, "--preset", "tiny", "--val-images", "2", "--steps", "2",
            "--eval-every", "2", "--teacher-steps", "2", "--seeds", "0", "--sets", "random", "random+teacher",
            "--lr-patch", "8", "--lr-stride", "8", "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| random+teacher | 1 |" in printed and "report:" in printed
    with pytest.raises(CommandFailed):
        main(args + ["--idc", "nonsense=1"])
    assert "--idc takes KEY=VALUE" in capsys.readouterr().err
    with pytest.raises(CommandFailed):
        main(args + ["--tripled", "ratio=0.5"])  # the comparison's own ratio, not a TripleD setting
    assert "--tripled takes KEY=VALUE" in capsys.readouterr().err
    from irkernels.pipeline.__main__ import build_parser
    from irkernels.pipeline.compare_cmd import config_from_args

    parsed = build_parser(only="compare")[0].parse_args(args + ["--tripled", "finetune.steps=5", "syn_size=32"])
    assert config_from_args(parsed).tripled == {"latent.vae_steps": 0, "finetune.steps": 5, "syn_size": 32}
    with pytest.raises(CommandFailed):
        main(args + ["--steps", "3"])
    assert "other settings" in capsys.readouterr().err


def test_random_plus_teacher_is_an_idc_method(photos, nets, tmp_path):
    """``idc --method random+teacher``: random's LR patches, the teacher's HR targets of them."""
    from irkernels.data import load_paired_folder
    from irkernels.idc.config import IDCConfig
    from irkernels.idc.pipeline import relabel, run
    from irkernels.data.images import to_tensor

    cfg = dict(scale=4, ratio=0.25, lr_patch=8, lr_stride=8, device="cpu", progress=False, feature_model="edsr-tiny")
    run(IDCConfig(method="random", **cfg), str(tmp_path / "r"), images=photos, networks=nets)
    run(IDCConfig(method="random+teacher", **cfg), str(tmp_path / "rt"), images=photos, networks=nets)
    random = load_paired_folder(str(tmp_path / "r"), 4)
    relabelled = load_paired_folder(str(tmp_path / "rt"), 4)
    assert [lr.name for lr, _ in random] == [lr.name for lr, _ in relabelled]
    for (lr_a, hr_a), (lr_b, hr_b) in zip(random, relabelled):
        assert np.array_equal(lr_a.pixels, lr_b.pixels)
        want = relabel(nets.teacher, to_tensor(lr_b.pixels)[None], IDCConfig(**cfg), torch.device("cpu"))[0]
        assert torch.equal(to_tensor(hr_b.pixels), want)
        assert not np.array_equal(hr_a.pixels, hr_b.pixels)


def test_greyscale_targets_are_scored_on_their_channel():
    from irkernels.evaluate import image_scores
    from irkernels.metrics import psnr

    gen = torch.Generator().manual_seed(0)
    grey = torch.randint(0, 256, (1, 24, 24), generator=gen, dtype=torch.uint8).expand(3, -1, -1).contiguous()
    out = grey.clone()
    out[0] = (out[0].int() + 3).clamp(0, 255).to(torch.uint8)  # an output with a colour cast
    s = image_scores(out, grey, 2)
    expected = float(psnr(out.double().mean(0), grey[0].double(), 2))
    assert s["psnr_rgb"] == s["psnr_y"] == pytest.approx(expected)


def test_train_on_step_sees_every_step_once_and_resumes(tmp_path):
    from irkernels.configs import TrainConfig
    from irkernels.data import PairSet
    from irkernels.models.edsr import EDSR
    from irkernels.train import train

    gen = torch.Generator().manual_seed(0)
    data = PairSet(torch.randint(0, 256, (8, 3, 4, 4), generator=gen, dtype=torch.uint8),
                   torch.randint(0, 256, (8, 3, 8, 8), generator=gen, dtype=torch.uint8))
    seen = []

    def on_step(done, net):
        assert net.training  # as the trainer left it, though the previous call switched it off
        seen.append(done)
        net.train(False)  # the trainer puts it back in train mode

    cfg = dict(out_dir=str(tmp_path), batch_size=2, device="cpu", progress=False, ckpt_every=2)
    torch.manual_seed(0)
    train(EDSR(2, 1, 4), data, TrainConfig(steps=3, **cfg), on_step=on_step)
    torch.manual_seed(0)
    res = train(EDSR(2, 1, 4), data, TrainConfig(steps=5, **cfg), on_step=on_step)
    assert seen == [1, 2, 3, 4, 5] and res.start_step == 3


def test_ctrl_c_says_how_to_resume(monkeypatch, capsys):
    import irkernels.compare.pipeline as pipeline
    from irkernels.pipeline.__main__ import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "run", interrupted)
    with pytest.raises(SystemExit) as exc:
        main(["compare", "--preset", "tiny", "--out", "unused"])
    assert exc.value.code == 130
    assert capsys.readouterr().err == "irkernels compare: interrupted; run the same command again to resume\n"


def _close_rows(a: dict, b: dict) -> None:
    """Two folders' rows equal up to float tolerance (students trained together round differently)."""
    assert sorted(a) == sorted(b)
    for name in a:
        ra, rb = dict(a[name]), dict(b[name])
        for row in (ra, rb):
            row.pop("trained_with", None)
        assert ra.pop("val") == pytest.approx(rb.pop("val"), rel=1e-4), name
        for pa, pb in zip(ra.pop("curve", []), rb.pop("curve", [])):
            assert pa == pytest.approx(pb, rel=1e-4), name
        assert ra == rb, name


def test_students_trained_together_equal_one_by_one_and_resume(folder, uninterrupted, tmp_path, monkeypatch):
    """compare --students-together 4: the 8 students train in two groups of 4; every row equals the
    one-by-one run's within float tolerance, also when interrupted inside a group and resumed."""
    import irkernels.compare.pipeline as pipeline
    import irkernels.train as training

    out = str(tmp_path / "together")
    calls = {"n": 0}
    real = training.atomic_torch_save

    def interrupt_at_the_first_checkpoint(*args):
        real(*args)
        calls["n"] += 1
        if calls["n"] == 5:  # the teacher's, then the 4 students of the first group at step 3 (eval_every)
            raise KeyboardInterrupt

    monkeypatch.setattr(training, "atomic_torch_save", interrupt_at_the_first_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(tiny(students_together=4), out, data=folder)
    monkeypatch.setattr(training, "atomic_torch_save", real)
    assert [torch.load(os.path.join(out, "train", f"{s}-seed{k}", "last.pt"), weights_only=False)["step"]
            for s in ("whole", "random") for k in (0, 1)] == [3, 3, 3, 3]
    result = pipeline.run(tiny(students_together=4), out, data=folder)
    assert result.rows_done == 8 and result.rows_skipped == 2
    rows = _rows(out)
    assert {r.get("trained_with") for n, r in rows.items() if r["seed"] is not None} == {4}
    _close_rows(rows, _rows(uninterrupted[1]))


def test_torchrun_spreads_the_rows_over_ranks(folder, tmp_path):
    """torchrun with 2 CPU processes: the rows are split between the ranks (each trains its own, alone),
    the teacher trained once; rows, table and outputs equal a single process's run of the same command.
    Then one row is removed as if its rank had died: a rerun makes that row alone."""
    import subprocess
    import sys

    from irkernels.pipeline.__main__ import main

    args = ["compare", "--data", folder, "--preset", "tiny", "--val-images", "2", "--steps", "4", "--eval-every", "2",
            "--teacher-steps", "3", "--seeds", "0", "1", "--sets", "whole", "random+teacher", "--lr-patch", "8",
            "--lr-stride", "8", "--device", "cpu", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}

    def torchrun():
        return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m",
                               "irkernels.pipeline", *args, "--out", str(tmp_path / "ranks")],
                              capture_output=True, text=True, timeout=600, env=env)

    done = torchrun()
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("| random+teacher |") == 1  # one table, printed by rank 0
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    ranks, one = _rows(str(tmp_path / "ranks")), _rows(str(tmp_path / "one"))
    assert ranks == one
    assert len(os.listdir(tmp_path / "ranks" / "cache")) == 1  # the teacher, trained once
    summaries = [json.load(open(tmp_path / f / "compare.json"))["summary"] for f in ("ranks", "one")]
    assert [[(e["row"], e["scores"]) for e in s["rows"]] for s in summaries] == \
        [[(e["row"], e["scores"]) for e in summaries[1]["rows"]]] * 2
    assert summaries[0]["checks"] == summaries[1]["checks"]
    os.remove(tmp_path / "ranks" / "rows" / "random+teacher-seed1.json")
    again = torchrun()
    assert again.returncode == 0, again.stderr[-3000:]
    assert _rows(str(tmp_path / "ranks")) == one
