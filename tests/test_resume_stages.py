"""Ctrl-C / SIGTERM in the long stages outside the trainer (IDC's condensation, TripleD's scorer
and VAE training, latent distillation and CNN fine-tuning): the step in progress is finished, the stage's
state written, and the same call again continues from that step and ends as an uninterrupted run.
Each stage has no periodic checkpoint, so every stop here is "before the first one"."""
import json
import os
import signal

import numpy as np
import pytest
import torch

from irkernels.resume import StepCheckpoint
from test_idc import _tree

pytestmark = pytest.mark.usefixtures("one_thread")


def kill_at(n: int, signum: int = signal.SIGINT):
    """A callable that sends ``signum`` to this process on its ``n``-th call (1-based), i.e. in the
    middle of a step's work, as a real Ctrl-C would arrive."""
    calls = [0]

    def maybe_kill(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            os.kill(os.getpid(), signum)

    return maybe_kill


def assert_same(a, b):
    """Equal nested results: tensors and floats exactly (CPU runs are deterministic)."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b


# ------------------------------------------------------------------------------------ the helper
def test_step_checkpoint_resumes_ignores_other_keys_and_catches_nothing_without_a_path(tmp_path, caplog):
    path = str(tmp_path / "partial" / "stage.pt")
    done = []
    ckpt = StepCheckpoint(path, "the stage", 5, key={"a": 1})
    assert ckpt.state is None and ckpt.start == 0
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM: the stage stopped after step 2 of 5; checkpoint"):
        with ckpt:
            for step in ckpt.steps(lambda: {"done": list(done)}):
                done.append(step)
                if step == 1:
                    os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == handler  # handlers are put back
    again = StepCheckpoint(path, "the stage", 5, key={"a": 1})
    assert again.start == 2 and again.state == {"done": [0, 1]} and not again.finished
    with again:
        assert list(again.steps(dict)) == [2, 3, 4]
    again.finish(lambda: {"done": [0, 1, 2, 3, 4]})
    finished = StepCheckpoint(path, "the stage", 5, key={"a": 1})
    assert finished.finished and list(finished.steps(dict)) == [] and finished.state["done"] == [0, 1, 2, 3, 4]
    other = StepCheckpoint(path, "the stage", 5, key={"a": 2})  # other settings: not resumed
    assert other.state is None and other.start == 0 and "other settings" in caplog.text
    finished.discard()
    assert not os.path.exists(path)
    # a loop that ends early (break) in the step asked to stop: finish keeps the state, then stops
    early = StepCheckpoint(str(tmp_path / "early.pt"), "the stage", 5)
    with pytest.raises(KeyboardInterrupt, match="the stage stopped after step 2, its last"):
        with early:
            for step in early.steps(dict):
                if step == 1:
                    os.kill(os.getpid(), signal.SIGINT)
                    break
        early.finish(dict, step=2)
    assert StepCheckpoint(str(tmp_path / "early.pt"), "the stage", 5).finished
    plain = StepCheckpoint(None, "the stage", 3)
    with plain:
        assert list(plain.steps(dict)) == [0, 1, 2]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # nothing caught
    plain.finish(dict)  # writes nothing


# ------------------------------------------------------------------------------------------- IDC
IDC_TINY = dict(scale=4, ratio=0.25, lr_patch=8, lr_stride=8, iters=14, rlff_channels=16, num_freqs=32,
                num_groups=3, kmeans_iters=5, resample_every=6, reassign_every=3, warmup=0.25, assigning=0.25,
                backend="torch", device="cpu", progress=False, log_every=2)


def idc_results_equal(a, b):
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.synthetic, y.synthetic) and torch.equal(x.history, y.history)
        assert x.init_index == y.init_index and x.loss_scales == y.loss_scales and x.group_keep == y.group_keep


@pytest.mark.parametrize("stop_after", [2, 8])  # in the warm-up; between two re-draws, after re-assignments
def test_idc_condensation_stopped_and_resumed_equals_uninterrupted(photos, nets, tmp_path, stop_after):
    from irkernels.idc.condense import Condenser
    from irkernels.idc.config import IDCConfig
    from irkernels.patches import make_instances

    cfg = IDCConfig(**IDC_TINY)
    inst = make_instances(photos[:2], cfg)
    cond = Condenser(nets.feature_extractor, cfg, torch.device("cpu"))
    full = cond.run(inst, 3)
    path = str(tmp_path / "partial" / "batch.pt")
    with pytest.raises(KeyboardInterrupt, match=f"IDC's condensation stopped after step {stop_after} of 14"):
        cond.run(inst, 3, on_step=kill_at(stop_after), checkpoint=path)
    assert torch.load(path, weights_only=True)["step"] == stop_after
    steps = []
    resumed = cond.run(inst, 3, on_step=steps.append, checkpoint=path)
    assert steps == list(range(stop_after, 14))
    idc_results_equal(full, resumed)
    # the finished state is kept (the caller deletes it once the results are written): a call
    # again returns the same results without a step
    steps.clear()
    idc_results_equal(full, cond.run(inst, 3, on_step=steps.append, checkpoint=path))
    assert steps == []


def test_idc_run_stopped_inside_a_batch_resumes_it(photos, nets, tmp_path, monkeypatch):
    """Through ``run``: SIGTERM at step 5 of the second batch's 14; the rerun keeps the first batch,
    continues the second from step 5, removes ``partial/`` and writes what an uninterrupted run writes."""
    from irkernels.idc import pipeline
    from irkernels.idc.config import IDCConfig

    cfg = IDCConfig(**{**IDC_TINY, "batch_instances": 2})
    full = pipeline.run(cfg, str(tmp_path / "full"), images=photos, networks=nets).out
    out = str(tmp_path / "cut")
    ticks = kill_at(14 + 5, signal.SIGTERM)
    monkeypatch.setattr(pipeline.CostEstimate, "tick", lambda self, step: ticks())
    with pytest.raises(KeyboardInterrupt, match="SIGTERM: IDC's condensation stopped after step 5 of 14"):
        pipeline.run(cfg, out, images=photos, networks=nets)
    monkeypatch.undo()
    assert len(os.listdir(os.path.join(out, "records"))) == 1 + 2  # settings + the first batch
    assert len(os.listdir(os.path.join(out, "partial"))) == 1
    resumed = pipeline.run(cfg, out, images=photos, networks=nets)
    assert resumed.skipped == 2 and not os.path.exists(os.path.join(out, "partial"))
    assert _tree(out) == _tree(full)
    losses = [{r["unit"]: r["loss_curve"] for r in json.load(open(os.path.join(d, "manifest.json")))["units"]}
              for d in (full, out)]
    assert losses[0] == losses[1]


# --------------------------------------------------------------------------------------- TripleD
def tiny_target():
    from irkernels.models.tripled_cnn import TripleDCNN
    from irkernels.tripled.features import feature_target

    torch.manual_seed(0)
    extractor = TripleDCNN(channels=8, layers=3).eval()
    target = feature_target(extractor, [torch.rand(3, 16, 16) ** 0.5 for _ in range(4)], num_freqs=32, seed=0)
    return extractor, target


def states_equal(a: torch.nn.Module, b: torch.nn.Module):
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_vae_training_stopped_and_resumed_equals_uninterrupted(tmp_path, monkeypatch, signum):
    """Stopped at step 3 of 7, before the first PSNR check (step 4): weights, losses and PSNR
    history as uninterrupted; the finished state is then reused without a step."""
    from irkernels.tripled import latent

    torch.manual_seed(0)
    images = [torch.rand(3, 20, 24) for _ in range(3)]
    held = latent.random_crops(images[2:], 2, 16, np.random.default_rng(0))
    cfg = latent.LatentConfig(vae_steps=7, vae_check_every=4, vae_batch=2, vae_crop=16, vae_min_psnr=99.0,
                              device="cpu", progress=False)

    def fresh():
        torch.manual_seed(0)
        return latent.tiny_autoencoder()

    full_vae = fresh()
    full = latent.train_vae(full_vae, images[:2], cfg, held)
    path = str(tmp_path / "vae.pt")
    crops = latent.random_crops
    steps = kill_at(3, signum)
    monkeypatch.setattr(latent, "random_crops", lambda *a: (steps(), crops(*a))[1])
    with pytest.raises(KeyboardInterrupt, match=f"{signal.Signals(signum).name}: VAE training stopped after "
                                                 "step 3 of 7"):
        latent.train_vae(fresh(), images[:2], cfg, held, checkpoint=path)
    counted = []
    monkeypatch.setattr(latent, "random_crops", lambda *a: (counted.append(1), crops(*a))[1])
    resumed_vae = fresh()
    resumed = latent.train_vae(resumed_vae, images[:2], cfg, held, checkpoint=path)
    assert len(counted) == 7 - 3 and [s for s, _ in resumed["psnr_history"]] == [4, 7]
    assert_same(full, resumed)
    states_equal(full_vae, resumed_vae)
    counted.clear()
    again_vae = fresh()
    assert_same(full, latent.train_vae(again_vae, images[:2], cfg, held, checkpoint=path))
    assert counted == []
    states_equal(full_vae, again_vae)


@pytest.mark.parametrize("space", ["latent", "pixel"])
def test_distillation_stopped_and_resumed_equals_uninterrupted(tmp_path, monkeypatch, space):
    """Stopped at step 2 of 5 (in the middle of a pass over the images' permutation): images and
    losses as uninterrupted."""
    from irkernels.tripled import latent

    extractor, target = tiny_target()
    torch.manual_seed(1)
    vae = latent.tiny_autoencoder().eval() if space == "latent" else None
    start = torch.rand(5, 3, 16, 16) * 0.5
    cfg = latent.LatentConfig(steps=5, lr=0.1, pixel_lr=0.02, batch_size=2, max_samples=64, seed=0, device="cpu",
                              progress=False)
    full, full_losses = latent.distill_latents(start, vae, extractor, target, cfg)
    path = str(tmp_path / "latent.pt")
    loss, stop = latent.matching_loss, kill_at(2)
    monkeypatch.setattr(latent, "matching_loss", lambda *a: (stop(), loss(*a))[1])
    with pytest.raises(KeyboardInterrupt, match=f"SIGINT: {space} distillation stopped after step 2 of 5"):
        latent.distill_latents(start, vae, extractor, target, cfg, checkpoint=path)
    counted = []
    monkeypatch.setattr(latent, "matching_loss", lambda *a: (counted.append(1), loss(*a))[1])
    out, losses = latent.distill_latents(start, vae, extractor, target, cfg, checkpoint=path)
    assert torch.equal(out, full) and losses == full_losses and len(counted) == 5 - 2


def test_cnn_finetuning_stopped_and_resumed_equals_uninterrupted(tmp_path, monkeypatch):
    from irkernels.tripled import finetune

    extractor, target = tiny_target()
    images = torch.rand(5, 3, 16, 16)
    cfg = finetune.FinetuneConfig(steps=5, lr=1e-3, batch_size=2, channels=8, layers=3, device="cpu", progress=False)
    full, full_cnn, full_history = finetune.finetune_images(images, extractor, target, cfg)
    path = str(tmp_path / "cnn.pt")
    terms = finetune.distribution_terms
    stop = kill_at(3, signal.SIGTERM)
    monkeypatch.setattr(finetune, "distribution_terms", lambda *a: (stop(), terms(*a))[1])
    with pytest.raises(KeyboardInterrupt, match="SIGTERM: CNN fine-tuning stopped after step 3 of 5"):
        finetune.finetune_images(images, extractor, target, cfg, checkpoint=path)
    counted = []
    monkeypatch.setattr(finetune, "distribution_terms", lambda *a: (counted.append(1), terms(*a))[1])
    out, cnn, history = finetune.finetune_images(images, extractor, target, cfg, checkpoint=path)
    assert torch.equal(out, full) and history == full_history and len(counted) == 5 - 3
    states_equal(full_cnn, cnn)


def test_scorer_training_stopped_and_resumed_equals_uninterrupted(tmp_path, monkeypatch):
    """TripleD's ViT scorer (``--scorer vit``) stopped at step 3 of 6: weights, losses and the
    entropy range as uninterrupted; ``get_scorer`` removes the state once the scorer is saved."""
    from irkernels.data.images import Image
    from irkernels.tripled import scoring
    from test_tripled import TINY_VIT

    rng = np.random.default_rng(0)
    images = [Image(f"im{i}", rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)) for i in range(3)]
    cfg = scoring.ScorerConfig(img_size=16, model_kwargs=TINY_VIT, steps=6, batch_size=3, crop_min=12, crop_max=32,
                               device="cpu", progress=False)
    full, full_losses = scoring.train_scorer(images, cfg)
    path = str(tmp_path / "scorer.pt")
    crops = scoring.random_crop_batch
    stop = kill_at(1 + 3)  # the first call draws the normalisation probe, then one a step
    monkeypatch.setattr(scoring, "random_crop_batch", lambda *a: (stop(), crops(*a))[1])
    with pytest.raises(KeyboardInterrupt, match="SIGINT: scorer training stopped after step 3 of 6"):
        scoring.train_scorer(images, cfg, checkpoint=path)
    counted = []
    monkeypatch.setattr(scoring, "random_crop_batch", lambda *a: (counted.append(1), crops(*a))[1])
    resumed, losses = scoring.train_scorer(images, cfg, checkpoint=path)
    assert losses == full_losses and len(counted) == 1 + 6 - 3
    assert resumed.entropy_range == full.entropy_range
    states_equal(full, resumed)
    tdc = scoring.TripleDConfig(scorer="vit", scorer_cfg=cfg, scorer_images=3, seed=0)
    scoring.get_scorer(images, tdc, str(tmp_path / "scorer.safetensors"), [0, 1, 2], checkpoint=path)
    assert not os.path.exists(path) and os.path.exists(tmp_path / "scorer.safetensors")


@pytest.fixture
def grey_photos(tmp_path):
    from PIL import Image

    root = tmp_path / "photos"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        grey = np.clip(128 + rng.integers(-12 * i, 12 * i + 1, (44, 52)), 0, 255).astype(np.uint8)
        Image.fromarray(np.repeat(grey[..., None], 3, axis=2)).save(root / f"img{i}.png")
    return root


TRIPLED_TINY = ["--ratio", "0.25", "--feature-model", "edsr-tiny", "--pretrain-steps", "2", "--num-freqs", "32",
                "--syn-size", "32", "--vae-steps", "3", "--vae-crop", "32", "--latent-steps", "3",
                "--latent-batch", "2", "--cnn-steps", "3", "--cnn-channels", "8", "--device", "cpu", "--no-progress"]


def test_tripled_command_stopped_in_finetuning_resumes_it(grey_photos, tmp_path, monkeypatch, capsys):
    """``tripled`` stopped by Ctrl-C at step 2 of the CNN fine-tuning's 3: exit 130 with a message
    naming the stage and step; the same command again redoes neither the VAE nor the distillation
    (their finished states are kept), continues the fine-tuning from step 2, removes ``partial/``,
    and writes the pairs and curves of an uninterrupted run."""
    from irkernels.pipeline.__main__ import main
    from irkernels.tripled import finetune, latent

    monkeypatch.setenv("IRKERNELS_CACHE", str(tmp_path / "cache"))
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert main(["tripled", "--data", str(grey_photos), "--out", str(full), *TRIPLED_TINY]) == 0
    terms, stop = finetune.distribution_terms, kill_at(2)
    monkeypatch.setattr(finetune, "distribution_terms", lambda *a: (stop(), terms(*a))[1])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["tripled", "--data", str(grey_photos), "--out", str(cut), *TRIPLED_TINY])
    assert exc.value.code == 130
    err = capsys.readouterr().err
    assert "interrupted (SIGINT: CNN fine-tuning stopped after step 2 of 3; checkpoint " in err
    assert err.endswith("; run the same command again to resume\n")
    assert sorted(os.listdir(cut / "partial")) == ["cnn.pt", "latent.pt", "vae.pt"]
    steps = {"vae": 0, "latent": 0, "cnn": 0}

    def counting(stage, fn):
        return lambda *a: (steps.__setitem__(stage, steps[stage] + 1), fn(*a))[1]

    monkeypatch.setattr(latent, "random_crops", counting("vae", latent.random_crops))
    monkeypatch.setattr(latent, "matching_loss", counting("latent", latent.matching_loss))
    monkeypatch.setattr(finetune, "distribution_terms", counting("cnn", terms))
    assert main(["tripled", "--data", str(grey_photos), "--out", str(cut), *TRIPLED_TINY]) == 0
    # the VAE's one call draws its held-out crops (vae_split), not a training step
    assert steps == {"vae": 1, "latent": 0, "cnn": 1} and not (cut / "partial").exists()
    assert _tree(str(cut)) == _tree(str(full))
    records = [{u["unit"]: u for u in json.loads((d / "manifest.json").read_text())["units"]}["synthetic"]
               for d in (full, cut)]
    for key in ("latent_losses", "cnn_losses", "after_latent", "after_cnn", "psnr_vs_input", "projection"):
        assert records[0][key] == records[1][key], key
    assert records[0]["vae"]["losses"] == records[1]["vae"]["losses"]


# ------------------------------------------------------------------- pre-training (through train)
def test_pretraining_stopped_resumes_in_its_cache_folder(tmp_path, monkeypatch):
    """The feature network's / teacher's pre-training is ``train`` in its cache folder: stopped at
    step 2 of 5 (checkpoints every 500), the same call continues from step 2 and ends with the
    weights of an uninterrupted pre-training."""
    from irkernels import pretrained
    from irkernels.data.images import PairSet

    g = torch.Generator().manual_seed(0)
    pairs = PairSet(torch.randint(0, 256, (6, 3, 8, 8), generator=g, dtype=torch.uint8),
                    torch.randint(0, 256, (6, 3, 16, 16), generator=g, dtype=torch.uint8))
    cfg = pretrained.PretrainConfig(model="edsr-tiny", scale=2, steps=5, batch_size=2, device="cpu", progress=False)
    full, _ = pretrained.pretrained_network(cfg, pairs, cache_dir=str(tmp_path / "full"))
    train, started = pretrained.train, []

    def stopped_at_2(*args, **kwargs):
        return train(*args, on_step=lambda done, net: done == 2 and os.kill(os.getpid(), signal.SIGINT), **kwargs)

    monkeypatch.setattr(pretrained, "train", stopped_at_2)
    with pytest.raises(KeyboardInterrupt, match="training stopped after step 2 of 5"):
        pretrained.pretrained_network(cfg, pairs, cache_dir=str(tmp_path / "cut"))

    def recording_start(*args, **kwargs):
        result = train(*args, **kwargs)
        started.append(result.start_step)
        return result

    monkeypatch.setattr(pretrained, "train", recording_start)
    resumed, info = pretrained.pretrained_network(cfg, pairs, cache_dir=str(tmp_path / "cut"))
    assert started == [2] and not info["reused"]
    states_equal(full, resumed)
