"""``python -m irkernels.pipeline tripled`` end to end on tiny settings: layout, manifest, report
(warnings, VAE and scorer checks), read-back by ``train``, resume, a loaded VAE, the pre-trained
feature network's cache, dynamic selection as one run, all-in-one balance and bad inputs."""
import json

import numpy as np
import pytest
import torch

import irkernels.tripled.pipeline as tripled_pipeline
import irkernels.tripled.scoring as scoring
from irkernels.pipeline.__main__ import build_parser, main
from irkernels.tripled.selection import balanced_counts

pytestmark = pytest.mark.usefixtures("one_thread", "cache")


TINY = ["--img-size", "32", "--backbone-kwargs", '{"depth": 2, "embed_dim": 48, "num_heads": 3, "patch_size": 8}',
        "--scorer-steps", "4", "--scorer-batch", "4", "--crop-min", "16", "--crop-max", "48",
        "--feature-model", "edsr-tiny", "--pretrain-steps", "2", "--num-freqs", "32", "--syn-size", "32",
        "--vae-steps", "2", "--vae-crop", "32", "--latent-steps", "2", "--latent-batch", "2",
        "--cnn-steps", "2", "--cnn-channels", "8", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """The pre-trained feature networks of this module's runs (not the user's ~/.cache)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("IRKERNELS_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(8):
        grey = np.clip(128 + rng.integers(-12 * i, 12 * i + 1, (44, 52)), 0, 255).astype(np.uint8)
        Image.fromarray(np.repeat(grey[..., None], 3, axis=2)).save(root / f"img{i}.png")
    return root


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["tripled", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for action in build_parser()[1]["tripled"]._actions:
        assert action.help, f"{action.option_strings} has no help text"
        for flag in action.option_strings:
            assert flag in out


def test_end_to_end_layout_report_readback_and_resume(folder, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    argv = ["tripled", "--data", str(folder), "--out", str(out), "--ratio", "0.25", "--scorer", "vit", *TINY]
    assert main(argv) == 0
    assert "selected 2 of 8 images" in capsys.readouterr().out
    hr = sorted(p.name for p in (out / "HR").iterdir())
    lr = sorted(p.name for p in (out / "LR_bicubic" / "X4").iterdir())
    assert hr == lr and len([n for n in hr if n.startswith("real_")]) == 2 and len([n for n in hr if n.startswith("syn_")]) == 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["method"] == "tripled" and manifest["task"] == "sr4" and manifest["scale"] == 4
    assert manifest["num_selected"] == 2 and manifest["num_pairs"] == 4 and "torch" in manifest["versions"]
    units = {u["unit"]: u for u in manifest["units"]}
    scores = np.asarray(units["scores"]["scores"])
    top = np.argsort(-scores, kind="stable")[:2].tolist()
    assert [i for i, _ in units["scores"]["selected"]] == top
    # a 4-step ViT ranks held-out crops far below the 0.9 bar: the run ranks by exact entropy
    info = units["scores"]["scorer_info"]
    assert -1 <= info["spearman_heldout"] < 0.9 and info["fallback"] and info["used"] == manifest["scorer_used"] == "entropy"
    from irkernels.tripled.scoring import entropy_scores

    assert np.allclose(scores, entropy_scores(sorted(str(p) for p in folder.iterdir())))
    syn = units["synthetic"]
    assert {"initial", "after_latent", "after_cnn", "latent_losses", "cnn_losses", "projection"} <= set(syn)
    # the feature network pre-trained here is scored where it is made: on img7 (held out), next to bicubic
    net = syn["feature_network"]
    assert net["val_images"] == ["img7"] and net["val_baseline"]["name"] == "bicubic"
    assert net["val"]["pairs"] == net["val_baseline"]["pairs"] > 0 and 5 < net["val_baseline"]["psnr_y"] < 60
    # a 2-step VAE is far below the 30 dB bar: said in the manifest and report, pixel space used
    assert manifest["vae"]["trusted"] is False and manifest["vae"]["reconstruction_psnr"] < 30
    assert manifest["distillation_space"] == syn["distillation_space"] == "pixel"
    assert manifest["feature_network"]["trained_here"] and manifest["feature_network"]["steps"] == 2
    assert syn["cf_modulus_median"] > 0.1 and set(syn["psnr_vs_input"]) == {"before_cnn", "final"}
    report = (out / "report.html").read_text()
    for heading in ("WARNING: VAE not trusted", "WARNING: ViT scorer not used", "Score histogram", "Selected",
                    "Rejected", "Feature network", "Before / after", "Real vs synthetic feature distributions",
                    "Networks trained on the result", "data:image/png;base64"):
        assert heading in report
    # counts are stated, and no path in the report is absolute (it stays valid when the folder moves)
    assert "selected images (2)" in report and "rejected images (6)" in report and "<table class='pairs'>" in report
    assert str(tmp_path) not in report
    assert (out / "scorer.safetensors").exists()

    # a restart skips every finished unit and reuses the scorer
    def fail(*a, **k):
        raise AssertionError("finished work was redone")

    monkeypatch.setattr(tripled_pipeline, "distill", fail)
    monkeypatch.setattr(scoring, "train_scorer", fail)
    (out / "manifest.json").unlink()
    assert main(argv) == 0
    assert json.loads((out / "manifest.json").read_text())["num_pairs"] == 4
    # an unfinished unit is redone: remove one real pair's record, the scorer file is reused
    (out / "records" / "real-00001.json").unlink()
    (out / "records" / "scores.json").unlink()
    monkeypatch.setattr(scoring, "score_images", lambda *a, **k: scores)
    assert main(argv) == 0
    assert (out / "records" / "real-00001.json").exists()
    capsys.readouterr()
    # the feature network lives in the cache: the report says it does not travel; --portable (execution
    # only: the same folder, nothing redone) copies it in and the manifest and report name the copy
    cached = json.loads((out / "manifest.json").read_text())["feature_network"]
    assert f"does not travel with it; cache key {cached['cache_key']}" in (out / "report.html").read_text()
    assert main(argv + ["--portable"]) == 0
    kept = json.loads((out / "manifest.json").read_text())["feature_network"]
    copy = out / "networks" / f"edsr-tiny-{cached['cache_key']}.safetensors"
    assert kept["checkpoint"] == str(copy) and kept["copied_from"] == cached["checkpoint"]
    assert copy.read_bytes() == open(cached["checkpoint"], "rb").read()
    assert "does not travel" not in (out / "report.html").read_text() and str(tmp_path) not in (out / "report.html").read_text()

    # the substrate's trainer reads the output back
    assert main(["train", "--data", str(out), "--scale", "4", "--steps", "1", "--batch-size", "2", "--patch-size", "32",
                 "--out", str(tmp_path / "train"), "--device", "cpu", "--no-progress"]) == 0
    assert "trained 1 steps" in capsys.readouterr().out


def test_allinone_balance_and_training(folder, tmp_path, capsys):
    out = tmp_path / "aio"
    assert main(["tripled", "--data", str(folder), "--out", str(out), "--task", "allinone", "--ratio", "0.7",
                 "--scorer", "entropy", "--no-latent", "--no-cnn", "--device", "cpu", "--no-progress",
                 "--train-steps", "1", "--batch-size", "2", "--patch-size", "32", "--test", str(folder)]) == 0
    text = capsys.readouterr().out
    assert "selected 6 of 8 images" in text and "[derain]" in text
    names = [p.name for p in (out / "HR").iterdir()]
    types = ["denoise25", "deblur", "derain", "jpeg"]
    counts = {t: sum(n.startswith(f"real_{t}_") for n in names) for t in types}
    assert counts == balanced_counts(6, types) == {"denoise25": 2, "deblur": 2, "derain": 1, "jpeg": 1}
    assert (out / "LR_bicubic" / "X1").is_dir() and (out / "train" / "model.safetensors").exists()
    scores = json.loads((out / "eval.json").read_text())
    assert set(scores) == set(types) and all(v["baseline_name"] == "degraded input" for v in scores.values())
    # the report was re-written after training: the network's PSNR next to the degraded input's
    report = (out / "report.html").read_text()
    assert "trained on the distilled set" in report and "degraded input PSNR-RGB" in report


@pytest.mark.parametrize("extra, message", [
    (["--ratio", "0"], "ratio must be a fraction"),
    (["--ratio", "1.5"], "ratio must be a fraction"),
    (["--syn-size", "30"], "multiple of the scale 4"),
    (["--pretrain-steps", "0"], "pretrain_steps"),
])
def test_bad_inputs_give_clear_errors(folder, tmp_path, extra, message):
    with pytest.raises(SystemExit, match=message):
        main(["tripled", "--data", str(folder), "--out", str(tmp_path / "o"), "--scorer", "entropy", *TINY, *extra])


@pytest.mark.parametrize("extra, message", [
    (["--vae", "missing/"], "--vae must be a local diffusers folder"),
    (["--feature-checkpoint", "missing.safetensors"], "--feature-checkpoint 'missing.safetensors' does not exist"),
    (["--syn-size", "64"], r"smaller than the synthetic crop size 64x64: pass --syn-size \d+ or less"),
])
def test_missing_files_are_named_before_any_work(folder, tmp_path, extra, message):
    """Missing files and images too small for --syn-size (read from the headers) end the run before
    the run folder, the scoring or the pre-training."""
    with pytest.raises(SystemExit, match=message):
        main(["tripled", "--data", str(folder), "--out", str(tmp_path / "o"), "--scorer", "entropy", *TINY, *extra])
    assert not (tmp_path / "o").exists()  # no run folder, no scoring, no pre-training


def test_bad_folder_task_and_changed_settings(folder, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit, match="holds no images"):
        main(["tripled", "--data", str(empty), "--out", str(tmp_path / "o1")])
    with pytest.raises(SystemExit) as exc:
        main(["tripled", "--task", "dehaze", "--out", str(tmp_path / "o2")])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err
    base = ["tripled", "--data", str(folder), "--out", str(tmp_path / "o3"), "--scorer", "entropy", "--no-latent",
            "--no-cnn", "--device", "cpu", "--no-progress"]
    assert main(base) == 0
    with pytest.raises(SystemExit, match="other settings"):
        main([*base, "--ratio", "0.5"])
    assert main([*base, "--ratio", "0.5", "--overwrite"]) == 0
    (folder / "img7.png").rename(folder / "img7.bak")  # the folder changed under the same settings
    try:
        with pytest.raises(SystemExit, match="images in .* changed"):
            main([*base, "--ratio", "0.5"])
    finally:
        (folder / "img7.bak").rename(folder / "img7.png")


def test_ratio_is_the_name_and_p_still_works_for_a_release(folder, tmp_path, caplog):
    """``--ratio`` (as idc and compare say it); ``--p`` still works with a deprecation warning, and a
    folder written when the setting was called ``p`` resumes instead of being refused."""
    out = tmp_path / "o"
    base = ["tripled", "--data", str(folder), "--out", str(out), "--scorer", "entropy", "--no-latent", "--no-cnn",
            "--device", "cpu", "--no-progress"]
    assert main([*base, "--ratio", "0.25"]) == 0
    settings_path = out / "records" / "_settings.json"
    settings = json.loads(settings_path.read_text())
    settings["p"] = settings.pop("ratio")  # as the previous release wrote it
    settings_path.write_text(json.dumps(settings))
    assert main([*base, "--p", "0.25"]) == 0
    assert any("--p is deprecated" in r.getMessage() for r in caplog.records)
    assert json.loads(settings_path.read_text())["ratio"] == 0.25  # resumed, and written with the new name


def test_dynamic_selection_training_is_one_run(folder, tmp_path, capsys):
    out = tmp_path / "dyn"
    argv = ["tripled", "--data", str(folder), "--out", str(out), "--ratio", "0.25", "--no-latent",
            "--no-cnn", "--device", "cpu", "--no-progress", "--train-steps", "3", "--dynamic-epochs", "2",
            "--q-start", "0.75", "--batch-size", "2", "--patch-size", "32", "--test", str(folder)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "epoch 0: q = 0.7500, 2 images" in text and "epoch 1: q = 0.2500, 2 images" in text
    assert "trained 3 steps in one run" in text and "[sr4] bicubic" in text
    report = (out / "report.html").read_text()  # re-written: the trained network's PSNR next to bicubic's
    assert "trained with dynamic selection" in report and "bicubic PSNR-Y" in report
    run = out / "train_dynamic"
    log = (run / "log.csv").read_text().splitlines()  # one log and one schedule over both epochs
    assert [line.split(",")[0] for line in log[1:]] == ["3"] and not (run / "epoch000").exists()
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["step"] == 3 and state["scheduler"]["last_epoch"] == 3
    mtime = (run / "last.pt").stat().st_mtime_ns
    assert main(argv) == 0  # finished: not trained again
    assert (run / "last.pt").stat().st_mtime_ns == mtime
    with pytest.raises(SystemExit, match="q_start must be >= p"):
        main([*argv, "--q-start", "0.1"])
    with pytest.raises(SystemExit, match="needs ×4"):
        main([*argv, "--model", "tripled-cnn"])


def test_loaded_vae_is_used_when_it_passes_the_bar(folder, tmp_path):
    from irkernels.tripled.latent import tiny_autoencoder

    torch.manual_seed(0)
    tiny_autoencoder().save_pretrained(str(tmp_path / "vae"))
    out = tmp_path / "vae_run"
    assert main(["tripled", "--data", str(folder), "--out", str(out), "--ratio", "0.25", *TINY,
                 "--vae", str(tmp_path / "vae"), "--vae-min-psnr", "0"]) == 0
    syn = json.loads((out / "records" / "synthetic.json").read_text())
    assert syn["distillation_space"] == "latent" and syn["vae"]["source"] == str(tmp_path / "vae")
    assert syn["vae"]["trusted"] and "after_vae_reconstruction" in syn
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["vae"]["reconstruction_psnr"] == syn["vae"]["reconstruction_psnr"]
    # the same data and pre-training settings: the feature network came from the cache
    assert manifest["feature_network"]["reused"]


def test_restoration_loss_through_the_pipeline(folder, tmp_path, capsys):
    from irkernels.models import TripleDCNN, save_checkpoint

    torch.manual_seed(0)
    ckpt = save_checkpoint(TripleDCNN(), str(tmp_path / "cnn.safetensors"))
    out = tmp_path / "rest"
    assert main(["tripled", "--data", str(folder), "--out", str(out), "--task", "denoise25", "--ratio", "0.25", *TINY,
                 "--feature-model", "tripled-cnn", "--no-latent", "--feature-checkpoint", ckpt,
                 "--restoration-weight", "0.5"]) == 0
    syn = json.loads((out / "records" / "synthetic.json").read_text())
    losses = syn["cnn_losses"]
    assert all(t > a + b for t, a, b in zip(losses["loss"], losses["l2"], losses["kl"]))
    assert syn["feature_network"]["checkpoint"] == ckpt
    with pytest.raises(SystemExit, match="JPEG"):
        main(["tripled", "--data", str(folder), "--out", str(tmp_path / "j"), "--task", "jpeg", *TINY,
              "--feature-checkpoint", ckpt, "--restoration-weight", "0.5"])


@pytest.mark.cuda
def test_end_to_end_on_cuda_matches_cpu_selection(folder, tmp_path, capsys):
    """On the GPU machine: the same tiny run on CUDA (Triton NCFD) writes the same layout, and the
    trained scorer ranks the images as on the CPU."""
    from irkernels.tripled.scoring import load_scorer, score_images

    out = tmp_path / "gpu"
    tiny = [a if a != "cpu" else "cuda" for a in TINY]
    assert main(["tripled", "--data", str(folder), "--out", str(out), "--ratio", "0.25", *tiny]) == 0
    assert len(list((out / "HR").iterdir())) == 4 and (out / "report.html").exists()
    scorer = load_scorer(str(out / "scorer.safetensors"))
    paths = sorted(str(p) for p in folder.iterdir())
    on_gpu = score_images(scorer, paths, device="cuda", num_workers=2)
    on_cpu = score_images(scorer, paths, device="cpu")
    assert np.allclose(on_gpu, on_cpu, atol=2e-3)
    syn = json.loads((out / "records" / "synthetic.json").read_text())
    assert all(np.isfinite(v) for v in syn["latent_losses"])


def test_same_seed_same_output(folder, tmp_path):
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert main(["tripled", "--data", str(folder), "--out", str(out), "--task", "derain", "--ratio", "0.25", *TINY,
                     "--scorer", "entropy"]) == 0
        runs.append({p.relative_to(out): p.read_bytes() for p in out.rglob("*.png")})
    assert len(runs[0]) == 8 and runs[0] == runs[1]


def test_backend_flag_reaches_the_feature_matching(folder, tmp_path, monkeypatch):
    """``--backend`` (as idc's): the feature target and every matching against it run that backend."""
    import irkernels.tripled.features as features
    import irkernels.tripled.latent as latent

    seen = []
    for module in (features, latent):
        real = module.cf_stats
        monkeypatch.setattr(module, "cf_stats",
                            lambda *a, real=real, **kw: seen.append(kw.get("backend")) or real(*a, **kw))
    main(["tripled", "--data", str(folder), "--out", str(tmp_path / "o"), "--scorer", "entropy", *TINY,
          "--backend", "torch"])
    assert seen and set(seen) == {"torch"}
    with pytest.raises(SystemExit):
        main(["tripled", "--data", str(folder), "--out", str(tmp_path / "p"), *TINY, "--backend", "cuda"])
