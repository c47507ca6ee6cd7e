"""A command's cost estimate (``irkernels.costs``): the plan's arithmetic on a fake clock (measured
and unmeasured stages, shares summing to 100 %), the bar's postfix and its refresh, and tiny runs
of ``tripled`` (its log), ``idc`` (its bars) and ``compare`` (its teacher's warning) carrying the
whole command's estimate, every flag it
suggests parsing on the command that prints it."""
import logging
import re

import pytest

import irkernels.costs as costs
from irkernels.costs import CommandPlan, CostEstimate, command_plan

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is faster on the shared CPU


class FakeTime:
    """The module's clock, advanced by hand (``time.perf_counter`` in ``irkernels.costs``)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def perf_counter(self) -> float:
        return self.t


class FakeBar:
    """What a stage uses of a tqdm bar; records every postfix set."""

    def __init__(self, *args, **kwargs) -> None:
        self.desc = kwargs.get("desc")
        self.postfixes: list[dict] = []
        FakeBar.made.append(self)

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs) -> None:
        self.postfixes.append({**(ordered_dict or {}), **kwargs})

    def update(self, n=1) -> None:
        pass

    def close(self) -> None:
        pass

    made: list = []


@pytest.fixture
def clock(monkeypatch):
    fake = FakeTime()
    monkeypatch.setattr(costs, "time", fake)
    return fake


def run_stage(estimate: CostEstimate, clock: FakeTime, steps: range, seconds: float) -> None:
    for step in steps:
        estimate.tick(step)
        clock.t += seconds


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "steps left" in r.getMessage()]


def test_the_plan_counts_measured_stages_at_their_rate_and_the_others_at_the_latest(clock, caplog):
    """Pre-training measured at 2 s a step (timed from step 3, estimated at step 8) and the VAE and
    distillation not run yet: all three at 2 s a step, said so; then the VAE measured at 1 s a step
    (pre-training over) and distillation counted at the VAE's rate."""
    stages = [("pre-training", 100), ("VAE", 50), ("distillation", 10)]
    with command_plan("tripled", stages) as plan:
        pre = CostEstimate("training edsr-tiny on cpu", 100, "fewer --pretrain-steps make it shorter",
                           stage="pre-training")
        run_stage(pre, clock, range(9), 2.0)
        assert plan.remaining() == {"pre-training": 92 * 2.0, "VAE": 50 * 2.0, "distillation": 10 * 2.0}
        assert plan.shares() == {"pre-training": 60, "VAE": 33, "distillation": 7}  # 60.5, 32.9, 6.6 %
        (said,) = warnings_of(caplog)  # 304 s > LONG_STAGE_S: one line, the stage's then the command's
        assert said.startswith("training edsr-tiny on cpu: about 3 min for the 92 steps left (2.00 s a step, "
                               "measured over 5 steps); fewer --pretrain-steps make it shorter. ")
        assert said.endswith("tripled: about 5 min left in all (pre-training 60 %, VAE 33 %, distillation 7 %; "
                             "measured: pre-training; not run yet, counted at pre-training's rate a step: "
                             "VAE, distillation)")
        vae = CostEstimate("tiny-VAE training on cpu", 50, "--vae-steps 0 skips it", stage="VAE")
        assert "pre-training" not in plan.remaining()  # a later stage began: it is over
        run_stage(vae, clock, range(9), 1.0)
        assert plan.remaining() == {"VAE": 42 * 1.0, "distillation": 10 * 1.0}
        assert "measured: VAE; not run yet, counted at VAE's rate a step: distillation" in plan.describe()
        assert len(warnings_of(caplog)) == 1  # 52 s left for the command: quiet
    assert costs.active_plan() is None


def test_a_stage_skipped_or_found_done_is_over_and_a_real_count_replaces_the_declared_one(clock):
    with command_plan("idc", [("pre-training", 16000), ("condensation", 500)]) as plan:
        assert plan.remaining() is None and plan.describe() is None  # nothing measured: no claim
        # the pre-trained network came from the cache: the condensation begins, with 3 batches left
        run_stage(CostEstimate("condensing", 300, "fewer --iters", stage="condensation"), clock, range(9), 0.5)
        assert plan.remaining() == {"condensation": (300 - 8) * 0.5}
        assert plan.shares() == {"condensation": 100}


@pytest.mark.parametrize("seconds", [(1, 1, 1), (1, 2, 3, 4, 5, 6, 7), (0.001, 1000), (5,) * 7])
def test_shares_are_whole_per_cent_summing_to_100(seconds, clock):
    names = costs.STAGES[:len(seconds)]
    plan = CommandPlan("cmd", [(n, 10) for n in names])
    for name, s in zip(names, seconds):
        plan.measured(name, 0, s)
    shares = plan.shares()
    assert sum(shares.values()) == 100 and list(shares) == list(names)
    for name, s in zip(names, seconds):  # each within one point of its exact share
        assert abs(shares[name] - 100 * s / sum(seconds)) < 1


def test_the_bar_shows_the_commands_time_left_refreshed_every_few_seconds(clock):
    """The first estimate sets the bar's postfix; a step less than ``REFRESH_S`` after the last
    refresh leaves it; one after refreshes it with the rate measured so far."""
    bar = FakeBar()
    with command_plan("tripled", [("distillation", 100), ("fine-tuning", 100)]):
        estimate = CostEstimate("pixel distillation on cpu", 100, "fewer --latent-steps", stage="distillation", bar=bar)
        run_stage(estimate, clock, range(8), 2.0)
        assert bar.postfixes == []  # warm-up and timing: nothing to show yet
        estimate.tick(8)  # 5 steps timed at 2 s: 92·2 + 100·2 s
        assert bar.postfixes == [{"left": "6 min for 2 stages"}] and estimate.postfix == bar.postfixes[-1]
        clock.t += costs.REFRESH_S - 1  # this step took longer, but the bar is not redrawn yet
        estimate.tick(9)
        assert len(bar.postfixes) == 1
        clock.t += 100
        estimate.tick(10)  # 7 steps timed in 10 + 4 + 100 s
        per_step = (10 + costs.REFRESH_S - 1 + 100) / 7
        assert bar.postfixes[-1] == {"left": costs.format_duration(per_step * (90 + 100)) + " for 2 stages"}


def test_without_a_plan_a_stage_is_its_own_and_says_what_it_always_said(clock, caplog):
    bar = FakeBar()
    estimate = CostEstimate("CNN fine-tuning on cpu", 400, "fewer --cnn-steps make it shorter", bar=bar)
    run_stage(estimate, clock, range(9), 1.0)
    (said,) = warnings_of(caplog)
    assert said == ("CNN fine-tuning on cpu: about 7 min for the 392 steps left (1.00 s a step, measured over 5 "
                    "steps); fewer --cnn-steps make it shorter")
    assert bar.postfixes == [{"left": "7 min"}]  # 392 s: one stage, no count of stages


def test_an_outer_commands_plan_is_the_one_in_force():
    """``compare`` declares the teacher's pre-training and its student rows: a row's ``idc`` run
    keeps its condensation's estimate to itself, not claiming to be the whole command."""
    with command_plan("compare", [("pre-training", 0), ("students", 0)]) as outer:
        with command_plan("idc", [("pre-training", 10), ("condensation", 10)]) as inner:
            assert inner is outer and "condensation" not in inner
            estimate = CostEstimate("condensing", 10, "fewer --iters", stage="condensation")
            assert estimate.plan is not outer
    with pytest.raises(ValueError, match="unknown stage"):
        CostEstimate("x", 10, "", stage="pretraining")
    with pytest.raises(ValueError, match="unknown stage"):
        CommandPlan("x", [("teacher", 10)])


@pytest.fixture
def quick_estimates(monkeypatch):
    """Every stage reports after one timed step, none untimed, and every command counts as long."""
    monkeypatch.setattr(costs, "LONG_STAGE_S", 0.0)
    monkeypatch.setattr(costs, "ESTIMATE_AFTER_STEPS", 1)
    monkeypatch.setattr(costs, "WARMUP_STEPS", 0)


def test_a_tripled_run_estimates_the_whole_command_and_its_flags_parse(tmp_path, monkeypatch, caplog,
                                                                       quick_estimates):
    """A tiny ``tripled`` (ViT scorer, pre-training, VAE, distillation, fine-tuning, training on the
    output): its first stage's warning names every stage of the command; each stage warns once;
    every flag the warnings name parses on ``tripled``."""
    import numpy as np
    from PIL import Image

    from irkernels.pipeline.__main__ import build_parser, main

    monkeypatch.setenv("IRKERNELS_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "photos"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(data / f"img{i}.png")
    argv = ["tripled", "--data", str(data), "--out", str(tmp_path / "out"), "--ratio", "0.5", "--scorer", "vit",
            "--img-size", "32", "--backbone-kwargs", '{"depth": 1, "embed_dim": 48, "num_heads": 3, "patch_size": 8}',
            "--scorer-steps", "3", "--scorer-batch", "2", "--crop-min", "16", "--crop-max", "32",
            "--feature-model", "edsr-tiny", "--pretrain-steps", "3", "--pretrain-batch", "2", "--num-freqs", "8",
            "--syn-size", "32", "--vae-steps", "3", "--vae-crop", "32", "--latent-steps", "3", "--latent-batch", "2",
            "--cnn-steps", "3", "--cnn-channels", "8", "--train-steps", "3", "--model", "edsr-tiny",
            "--batch-size", "2", "--patch-size", "32", "--device", "cpu", "--no-progress"]
    with caplog.at_level(logging.WARNING):
        assert main(argv) == 0
    said = warnings_of(caplog)
    stages = ["scorer", "pre-training", "VAE", "distillation", "fine-tuning", "training"]
    assert [s.split(":")[0] for s in said] == ["scorer training on cpu", "training edsr-tiny on cpu",
                                               "tiny-VAE training on cpu (at most)", "pixel distillation on cpu",
                                               "CNN fine-tuning on cpu", "training edsr-tiny on cpu"]
    whole = said[0].split(". tripled: about ")[1]
    assert re.findall(r"([a-zA-Z-]+) \d+ %", whole) == stages and "measured: scorer;" in whole
    assert "counted at scorer's rate a step: " + ", ".join(stages[1:]) in whole
    assert "tripled: about" in said[-2] and "tripled: about" not in said[-1]  # the last stage is alone
    flags = {f for s in said for f in re.findall(r"--[a-z][a-z-]+", s)}
    assert {"--scorer", "--pretrain-steps", "--vae-steps", "--latent-steps", "--cnn-steps", "--train-steps"} <= flags
    known = set(build_parser(only="tripled")[1]["tripled"]._option_string_actions)
    assert flags <= known, sorted(flags - known)


def test_an_idc_run_shows_the_whole_commands_time_left_on_its_bars(photos, tmp_path, monkeypatch, caplog,
                                                                     quick_estimates):
    """``idc`` pre-training its feature network then condensing: the trainer's bar shows its loss and
    the time left for both stages, the instances' bar the condensation's; the warning names both."""
    import tqdm.auto

    from irkernels.idc.config import IDCConfig
    from irkernels.idc.pipeline import run
    from irkernels.pipeline.__main__ import build_parser

    FakeBar.made = []
    monkeypatch.setattr(tqdm.auto, "tqdm", FakeBar)
    cfg = IDCConfig(scale=4, ratio=0.25, lr_patch=8, lr_stride=8, iters=3, rlff_channels=16, num_freqs=32, num_groups=3,
                    kmeans_iters=5, resample_every=6, reassign_every=3, backend="torch", device="cpu", progress=True,
                    feature_model="edsr-tiny", pretrain_steps=3, pretrain_batch=2, batch_instances=3,
                    cache_dir=str(tmp_path / "cache"))
    with caplog.at_level(logging.WARNING):
        run(cfg, str(tmp_path / "out"), images=photos)
    bars = {b.desc: b for b in FakeBar.made}
    train_bar, instances_bar = bars["train"], bars["idc instances"]
    assert train_bar.postfixes[0] == {"loss": train_bar.postfixes[0]["loss"]}  # before the estimate: the loss
    last = train_bar.postfixes[-1]
    assert set(last) == {"loss", "left"} and last["left"].endswith(" for 2 stages")
    assert instances_bar.postfixes and all(set(p) == {"left"} and "stages" not in p["left"]
                                           for p in instances_bar.postfixes)
    said = warnings_of(caplog)
    assert "idc: about" in said[0] and re.findall(r"([a-zA-Z-]+) \d+ %", said[0]) == ["pre-training", "condensation"]
    known = set(build_parser(only="idc")[1]["idc"]._option_string_actions)
    assert {f for s in said for f in re.findall(r"--[a-z][a-z-]+", s)} <= known


def test_compare_estimates_its_student_rows_while_the_teacher_trains(tmp_path, monkeypatch, caplog,
                                                                   quick_estimates):
    """A tiny ``compare`` with a teacher to train: the teacher's warning gives the whole command's
    time, its student rows (3 rows × 6 training steps, declared before the teacher trains) counted at
    the teacher's rate a step; then a line after each row counts the rows left."""
    from test_compare import tiny, write_photos

    from irkernels.compare.pipeline import run

    monkeypatch.setenv("IRKERNELS_CACHE", str(tmp_path / "cache"))
    declared = []
    measured = CommandPlan.measured

    def record(plan, name, done, per_step):
        declared.append((plan.command, name, plan.stages[name].steps))
        measured(plan, name, done, per_step)

    monkeypatch.setattr(CommandPlan, "measured", record)
    (tmp_path / "photos").mkdir()
    with caplog.at_level(logging.INFO):
        run(tiny(sets=["random", "random+teacher", "idc"], seeds=[0]), str(tmp_path / "out"),
            data=write_photos(tmp_path / "photos"))
    whole = [s for s in warnings_of(caplog) if ". compare: about " in s]
    assert whole and whole[0].startswith("training edsr-tiny on cpu")
    stages = whole[0].split(". compare: about ")[1]
    assert re.findall(r"([a-zA-Z-]+) \d+ %", stages) == ["pre-training", "students"]
    assert "measured: pre-training; not run yet, counted at pre-training's rate a step: students" in stages
    assert ("compare", "pre-training", 6) in declared and ("compare", "students", 3 * 6) in declared
    rows = [r.getMessage() for r in caplog.records if "student rows made" in r.getMessage()]
    assert [m.split(";")[0] for m in rows] == [f"compare: {k} of 3 student rows made" for k in (1, 2, 3)]
