"""The trainer: loss goes down, accumulation is exact, resume after a crash is bit-identical."""
import csv
import os
import signal

import pytest
import torch
import torch.nn.functional as F

from irkernels.data import DegradationConfig, PatchConfig, make_pairs, sample_images
from irkernels.models import EDSR, load_checkpoint
from irkernels.train import TrainConfig, accumulate_gradients, train


@pytest.fixture(scope="module")
def pairs():
    images = sample_images(include_sklearn=False, names=["astronaut", "coffee"])
    return make_pairs(images, DegradationConfig("bicubic", scale=2), PatchConfig(32, 64))


def tiny_model() -> EDSR:
    torch.manual_seed(0)
    return EDSR(scale=2, n_resblocks=2, n_feats=16)


def config(tmp_path, **kw) -> TrainConfig:
    base = dict(out_dir=str(tmp_path), steps=6, batch_size=8, device="cpu", progress=False, log_every=1,
                ckpt_every=100, seed=3)
    return TrainConfig(**{**base, **kw})


def test_tiny_training_reduces_loss(tmp_path, pairs):
    result = train(tiny_model(), pairs, config(tmp_path, steps=20, lr=1e-3))
    first, last = sum(result.losses[:5]) / 5, sum(result.losses[-5:]) / 5
    assert last < 0.7 * first
    with open(tmp_path / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == list(range(1, 21))
    assert float(rows[-1]["lr"]) == pytest.approx(1e-6)  # cosine schedule ends at min_lr
    saved = load_checkpoint(tiny_model(), result.model_path).state_dict()
    resumable = torch.load(tmp_path / "last.pt", weights_only=False)["model"]
    assert all(torch.equal(saved[k], resumable[k]) for k in saved)


def test_a_long_run_says_up_front_what_it_will_cost(tmp_path, pairs, monkeypatch, caplog):
    """After a few timed steps a run whose remaining steps would exceed ``LONG_STAGE_S`` logs its
    estimate once; a short one stays quiet. The bar is lowered instead of timing anything long."""
    import irkernels.costs as costs

    train(tiny_model(), pairs, config(tmp_path / "a", steps=12))
    assert not [r for r in caplog.records if "steps left" in r.getMessage()]
    monkeypatch.setattr(costs, "LONG_STAGE_S", 0.0)
    train(tiny_model(), pairs, config(tmp_path / "b", steps=12))
    said = [r.getMessage() for r in caplog.records if "steps left" in r.getMessage()]
    assert len(said) == 1 and "the 4 steps left" in said[0] and "s a step, measured over 5 steps" in said[0]


def test_gradient_accumulation_equals_full_batch(pairs):
    idx = torch.arange(8)
    grads = {}
    for accum in (1, 4, 8):
        model = tiny_model()
        loss = accumulate_gradients(model, pairs.lq[idx], pairs.hq[idx], None, accum, F.l1_loss)
        grads[accum] = (float(loss), [p.grad.clone() for p in model.parameters() if p.requires_grad])
    for accum in (4, 8):  # float32: equal up to summation order
        assert grads[accum][0] == pytest.approx(grads[1][0], rel=1e-5)
        for a, b in zip(grads[accum][1], grads[1][1]):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))


class Crash(RuntimeError):
    pass


def test_resume_after_crash_is_exact(tmp_path, pairs):
    full = tiny_model()
    train(full, pairs, config(tmp_path / "full", ema_decay=0.9, accum_steps=2))

    crashing = tiny_model()
    calls = {"n": 0}

    def crash_on_step_5(module, inputs):
        calls["n"] += 1
        if calls["n"] > 4 * 2:  # 4 steps × 2 micro-batches went through; the 5th step dies
            raise Crash

    handle = crashing.register_forward_pre_hook(crash_on_step_5)
    with pytest.raises(Crash):
        train(crashing, pairs, config(tmp_path / "cut", ema_decay=0.9, accum_steps=2, ckpt_every=2))
    handle.remove()
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=False)["step"] == 4

    resumed = tiny_model()  # a new process: fresh weights, state comes from last.pt
    result = train(resumed, pairs, config(tmp_path / "cut", ema_decay=0.9, accum_steps=2, ckpt_every=2))
    assert result.start_step == 4 and len(result.losses) == 2
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    with open(tmp_path / "cut" / "log.csv") as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_before_the_first_checkpoint_loses_nothing(tmp_path, pairs, signum):
    """Ctrl-C (or a scheduler's SIGTERM) at step 3 of 6 with checkpoints every 100 steps: the run
    writes step 3's checkpoint and stops; the rerun continues from step 3 and ends with the weights,
    losses and log of an uninterrupted run."""
    full = tiny_model()
    losses = train(full, pairs, config(tmp_path / "full", ema_decay=0.9)).losses

    def signal_at_step_3(done, net):
        if done == 3:
            os.kill(os.getpid(), signum)  # arrives in the middle of the step's work, as a real one would

    with pytest.raises(KeyboardInterrupt, match=f"{signal.Signals(signum).name}: training stopped after step 3 of 6"):
        train(tiny_model(), pairs, config(tmp_path / "cut", ema_decay=0.9), on_step=signal_at_step_3)
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=False)["step"] == 3
    assert signal.getsignal(signum) is not None and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    resumed = tiny_model()
    result = train(resumed, pairs, config(tmp_path / "cut", ema_decay=0.9))
    assert result.start_step == 3 and losses[3:] == result.losses
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    with open(tmp_path / "cut" / "log.csv") as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == [1, 2, 3, 4, 5, 6]


def test_a_second_interrupt_stops_at_once():
    from irkernels.stopping import stop_at_step_boundary

    with pytest.raises(KeyboardInterrupt):
        with stop_at_step_boundary() as stop:
            os.kill(os.getpid(), signal.SIGINT)
            assert stop.requested and stop.signal == signal.SIGINT
            os.kill(os.getpid(), signal.SIGINT)  # the impatient second Ctrl-C
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_networks_trained_together_equal_networks_trained_alone(tmp_path, pairs):
    """Three networks (other seeds, data, EMA or not; one resumed from step 2) trained together
    end as each would alone: weights, losses, logs and checkpoints, within float tolerance."""
    from irkernels.data import PairSet
    from irkernels.train import train_together

    halves = [pairs, PairSet(pairs.lq[::2], pairs.hq[::2]), PairSet(pairs.lq[1::2], pairs.hq[1::2])]
    cfgs = [config(tmp_path / f"{mode}{k}", seed=k, ema_decay=0.9 if k == 1 else 0.0, ckpt_every=2)
            for mode in ("alone", "together") for k in range(3)]
    curves = {mode: [[] for _ in range(3)] for mode in ("alone", "together")}

    def recorder(mode, k):
        return lambda done, net: curves[mode][k].append((done, float(next(net.parameters()).sum())))

    alone = []
    for k in range(3):
        net = tiny_model()
        alone.append((net, train(net, halves[k], cfgs[k], on_step=recorder("alone", k))))
    # the third network of the together run was stopped at step 2 of a run on its own: it resumes there
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(), halves[2], cfgs[5], on_step=lambda done, net: done == 2 and os.kill(os.getpid(), signal.SIGINT))
    curves["together"][2] = curves["alone"][2][:2]
    nets = [tiny_model() for _ in range(3)]
    results = train_together(nets, halves, cfgs[3:], [recorder("together", k) for k in range(3)])
    assert [r.start_step for r in results] == [0, 0, 2]
    for k, ((net_a, res_a), net_t, res_t) in enumerate(zip(alone, nets, results)):
        assert res_t.losses == pytest.approx(res_a.losses[res_t.start_step:], rel=1e-4, abs=1e-6)
        for a, b in zip(net_a.state_dict().values(), net_t.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        assert [d for d, _ in curves["together"][k]] == [1, 2, 3, 4, 5, 6]
        assert [v for _, v in curves["together"][k]] == pytest.approx([v for _, v in curves["alone"][k]], rel=1e-4)
        state = torch.load(tmp_path / f"together{k}" / "last.pt", weights_only=False)
        assert state["step"] == 6 and (state["ema"] is not None) == (k == 1)
        assert (tmp_path / f"together{k}" / "model.safetensors").exists()
        with open(tmp_path / f"together{k}" / "log.csv") as fh:
            assert [int(r["step"]) for r in csv.DictReader(fh)] == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="share device, batch_size"):
        train_together(nets[:2], halves[:2], [cfgs[3], config(tmp_path / "x", batch_size=4)])


def test_an_interrupt_of_networks_trained_together_checkpoints_each(tmp_path, pairs):
    from irkernels.train import train_together

    def signal_at_step_3(done, net):
        if done == 3:
            os.kill(os.getpid(), signal.SIGINT)

    cfgs = [config(tmp_path / f"n{k}", seed=k) for k in range(2)]
    with pytest.raises(KeyboardInterrupt, match="SIGINT: training stopped; 2 checkpoints written"):
        train_together([tiny_model(), tiny_model()], [pairs, pairs], cfgs, [signal_at_step_3, None])
    assert [torch.load(tmp_path / f"n{k}" / "last.pt", weights_only=False)["step"] for k in range(2)] == [3, 3]


def test_config_errors(tmp_path, pairs):
    with pytest.raises(ValueError, match="loss"):
        TrainConfig(loss="huber")
    with pytest.raises(ValueError, match="divisible"):
        train(tiny_model(), pairs, config(tmp_path, batch_size=6, accum_steps=4))


def test_ddp_two_ranks_match_one_process(tmp_path):
    """torchrun with 2 CPU ranks (gloo): each rank takes half of every global batch; the averaged
    gradients are the full batch's, so the weights match a single-process run."""
    import os
    import subprocess
    import sys

    from irkernels.pipeline.__main__ import main

    args = ["train", "--max-images", "1", "--patch-size", "48", "--steps", "3", "--batch-size", "4",
            "--accum-steps", "2", "--no-progress", "--device", "cpu", "--scale", "4"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m",
                           "irkernels.pipeline", *args, "--out", str(tmp_path / "ddp")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert main([*args, "--out", str(tmp_path / "single")]) == 0
    from irkernels.models import read_state_dict

    ddp, single = read_state_dict(str(tmp_path / "ddp" / "model.safetensors")), read_state_dict(
        str(tmp_path / "single" / "model.safetensors"))
    assert ddp.keys() == single.keys()
    for k in ddp:
        assert torch.allclose(ddp[k], single[k], rtol=0, atol=1e-5), k  # Adam on ~1e-7 gradient noise
