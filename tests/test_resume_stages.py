"""Ctrl-C / SIGTERM in the long stages outside the trainer (IDC's condensation, TripleD's VAE
training, latent distillation and CNN fine-tuning): the step in progress is finished, the stage's
state written, and the same call again continues from that step and ends as an uninterrupted run.
Each stage has no periodic checkpoint, so every stop here is "before the first one"."""
import json
import os
import signal

import numpy as np
import pytest
import torch

from irkernels.resume import StepCheckpoint

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
    with pytest.raises(KeyboardInterrupt, match="SIGTERM: the stage stopped after step 2 of 5; checkpoint"):
        with ckpt:
            for step in ckpt.steps(lambda: {"done": list(done)}):
                done.append(step)
                if step == 1:
                    os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers are put back
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
    from irkernels.idc.instances import make_instances

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


def _pngs(root):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            if f.endswith(".png"):
                with open(os.path.join(d, f), "rb") as fh:
                    out[os.path.relpath(os.path.join(d, f), root)] = fh.read()
    return out


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
    assert _pngs(out) == _pngs(full)
    losses = [{r["unit"]: r["loss_curve"] for r in json.load(open(os.path.join(d, "manifest.json")))["units"]}
              for d in (full, out)]
    assert losses[0] == losses[1]
