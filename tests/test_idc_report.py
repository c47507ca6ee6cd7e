"""IDC's report.html and the method template it follows: before/after pairs with counts, the
real-vs-synthetic distribution figure, paths relative to the report, the pre-trained teacher's
held-out PSNR next to bicubic's; ``run`` returns an ``IDCResult`` and the CLI registers the method."""
import json
import os
import re
import sys
from dataclasses import replace

from irkernels.idc.config import IDCConfig
from irkernels.idc.pipeline import IDCResult, run
from irkernels.methods import RunResult
from irkernels.registry import get_method

TINY = dict(scale=4, ratio=0.25, lr_patch=8, lr_stride=8, iters=4, rlff_channels=16, num_freqs=32, num_groups=3,
            kmeans_iters=5, resample_every=2, reassign_every=2, warmup=0.25, assigning=0.25, backend="torch",
            device="cpu", progress=False, log_every=2)


def _sections(page: str) -> dict[str, str]:
    """The report's sections by heading (HTML between one ``<h2>`` and the next)."""
    parts = re.split(r"<h2>(.*?)</h2>", page)
    return dict(zip(parts[1::2], parts[2::2]))


def _section(page: str, start: str) -> str:
    return next(body for head, body in _sections(page).items() if head.startswith(start))


def test_idc_report_pairs_counts_distributions_relative_paths(photos, nets, tmp_path):
    out = tmp_path / "runs" / "idc"
    result = run(IDCConfig(**TINY), str(out), images=photos, networks=nets)
    assert isinstance(result, IDCResult) and isinstance(result, RunResult)
    assert result.method == "idc" and result.units == 3 and result.groups >= 1 and result.pairs == 9
    page = (out / "report.html").read_text()
    pairs = _section(page, "Before / after")
    assert pairs.count("<table class='pairs'>") == 3
    assert "initial real LR patch" in pairs and "synthetic LR" in pairs and "teacher HR" in pairs
    assert "3 output pairs from 12 real patches" in pairs
    assert "real LR patches (showing 8 of 12)" in pairs  # the mosaic states the count
    assert "8×8" in pairs and "32×32" in pairs  # stored sizes stated under each thumbnail
    distributions = _section(page, "Distributions")
    assert "data:image/png;base64" in distributions and "features() averaged" in distributions
    assert "36 real vs 9 output LR patches" in distributions
    assert "seconds (batch of B ÷ B)" in _section(page, "Per instance")
    assert str(tmp_path) not in page  # every path relative to the report
    assert "HR/" in _section(page, "Files") and "manifest.json" in _section(page, "Files")


def test_baseline_report_shows_real_pairs_and_mean_rgb_distribution(photos, nets, tmp_path):
    out = tmp_path / "random"
    run(IDCConfig(**{**TINY, "method": "random"}), str(out), images=photos[:1], networks=nets)
    page = (out / "report.html").read_text()
    pairs = _section(page, "Before / after")
    assert "real LR" in pairs and "real HR" in pairs and "teacher HR" not in pairs
    assert "mean RGB" in _section(page, "Distributions") and "Losses" not in _sections(page)


def test_report_networks_psnr_next_to_bicubic_and_checkpoint_relative(photos, tmp_path, caplog):
    cfg = IDCConfig(**{**TINY, "feature_model": "edsr-tiny", "pretrain_steps": 2, "pretrain_batch": 2, "iters": 2,
                       "teacher_val": 0.3, "cache_dir": str(tmp_path / "cache")})
    out = tmp_path / "runs" / "a"
    run(cfg, str(out), images=photos)
    # a 2-step teacher is far below bicubic: said in one logged line and in the report
    below = [r for r in caplog.records if "BELOW bicubic" in r.getMessage()]
    assert len(below) == 1 and "held-out image(s)" in below[0].getMessage()
    scored = [r for r in caplog.records if "held-out image(s), bicubic" in r.getMessage()]
    assert scored == below and below[0].levelname == "WARNING"  # the CLI's default level shows it
    assert "BELOW bicubic" in _section((out / "report.html").read_text(), "Networks")
    teacher = json.loads((out / "manifest.json").read_text())["networks"]["teacher"]
    bicubic = teacher["val_bicubic"]
    assert bicubic["pairs"] == teacher["val"]["pairs"] == 12 and 10 < bicubic["psnr_y"] < 60
    networks = _section((out / "report.html").read_text(), "Networks")
    assert "bicubic PSNR Y (dB)" in networks and "PSNR Y (dB)" in networks
    for value in (teacher["val"]["psnr_y"], bicubic["psnr_y"], bicubic["psnr_rgb"]):
        assert f"{value:.4g}" in networks
    assert "../../cache/" in networks and str(tmp_path) not in networks
    # one network in two roles is one row, and a checkpoint outside the folder is said not to travel
    assert "feature_extractor + teacher" in networks and networks.count("../../cache/") == 1
    assert f"does not travel with it; cache key {teacher['cache_key']}" in networks
    assert "<i>B</i>: the images condensed together" in _section((out / "report.html").read_text(), "Per instance")
    # --portable (execution-only: the same folder resumes) copies it in once, and the report names the copy
    run(replace(cfg, portable=True), str(out), images=photos)
    copied = json.loads((out / "manifest.json").read_text())["networks"]
    assert copied["teacher"]["checkpoint"] == copied["feature_extractor"]["checkpoint"] == str(
        out / "networks" / f"edsr-tiny-{teacher['cache_key']}.safetensors")
    assert copied["teacher"]["copied_from"] == teacher["checkpoint"] and os.listdir(out / "networks") == [
        f"edsr-tiny-{teacher['cache_key']}.safetensors"]
    assert (out / "networks" / os.listdir(out / "networks")[0]).read_bytes() == open(teacher["checkpoint"], "rb").read()
    networks = _section((out / "report.html").read_text(), "Networks")
    assert f"networks/edsr-tiny-{teacher['cache_key']}.safetensors (copied from ../../cache/" in networks
    assert "does not travel" not in networks and "feature_extractor + teacher" in networks


def test_idc_is_registered_and_its_config_imports_without_torch():
    spec = get_method("idc")
    assert spec.config_class() is IDCConfig and spec.runner() is run
    cfg = IDCConfig()
    assert "device" not in cfg.settings() and "batch_instances" not in cfg.settings()
    assert cfg.settings()["ratio"] == cfg.ratio and cfg.to_dict()["device"] == "auto"
    import subprocess

    code = ("import sys; import irkernels.idc.config, irkernels.idc.cli, irkernels.idc; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
