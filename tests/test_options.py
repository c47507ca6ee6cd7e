"""Every sub-command's flags come from its config dataclass (``Flag`` tables + ``add_config_flags``),
nested settings are set by dotted path (``configs.with_paths``), and every part of a run is seeded
one way (``seeds.derive_seed``)."""
from __future__ import annotations

import argparse
import zlib
from dataclasses import dataclass, field, fields, is_dataclass

import pytest

from irkernels.configs import EvalConfig, TrainConfig, path_value, with_paths
from irkernels.data.config import DegradationConfig
from irkernels.idc.config import IDCConfig
from irkernels.idc import cli as idc_cmd
from irkernels.pipeline import eval_cmd, train_cmd
from irkernels.tripled import cli as tripled_cmd
from irkernels.pipeline.__main__ import build_parser
from irkernels.pipeline.options import DEGRADATION_OPTIONS, Flag, add_config_flags, config_fields
from irkernels.seeds import derive_seed, seeded_generator
from irkernels.tripled.config import TrainSpec, TripleDConfig


def tripled_config(args: argparse.Namespace) -> TripleDConfig:
    return tripled_cmd.FLAGS.config(TripleDConfig, args)


def parse(command: str, *argv: str) -> argparse.Namespace:
    parser, _ = build_parser(command)
    return parser.parse_args([command, *argv])


@pytest.mark.parametrize("command, tables, defaults", [
    ("tripled", tripled_cmd.OPTIONS, TripleDConfig()),
    ("tripled", tripled_cmd.TRAIN_OPTIONS, TrainSpec()),
    ("idc", idc_cmd.OPTIONS, IDCConfig()),
    ("train", train_cmd.OPTIONS, TrainConfig()),
    ("train", DEGRADATION_OPTIONS, DegradationConfig()),
    ("eval", eval_cmd.OPTIONS, EvalConfig()),
])
def test_flag_defaults_are_the_config_defaults(command, tables, defaults):
    """No flag restates a default by hand: parsing nothing gives the dataclass's own values."""
    values = config_fields(parse(command), tables)
    assert values and values == {path: path_value(defaults, path) for path in values}


def test_tripled_flags_reach_nested_steps():
    args = parse("tripled", "--latent-steps", "7", "--cnn-lr", "0.5", "--backbone-kwargs", '{"depth": 2}', "--no-cnn",
                 "--cache-dir", "/tmp/c", "--freq-std", "0.25", "--seed", "3", "--train-steps", "4", "--lr", "0.01",
                 "--test", "a", "b")
    cfg = tripled_config(args)
    assert (cfg.latent.steps, cfg.finetune.lr, cfg.scorer_cfg.model_kwargs) == (7, 0.5, {"depth": 2})
    assert (cfg.use_cnn, cfg.cache_dir, cfg.freq_std, cfg.seed) == (False, "/tmp/c", 0.25, 3)
    spec = tripled_cmd.train_spec_from_args(args)
    assert (spec.train.steps, spec.train.lr, spec.test) == (4, 0.01, ["a", "b"])
    # the steps take the run's seed (and device) when the run starts, not from flags of their own
    run = cfg.for_run()
    assert {run.scorer_cfg.seed, run.latent.seed, run.finetune.seed} == {3} and cfg.latent.seed == 0


def test_a_bad_value_is_refused_by_the_config():
    with pytest.raises(ValueError, match="ratio"):
        tripled_config(parse("tripled", "--ratio", "0"))
    with pytest.raises(SystemExit):  # argparse: not JSON
        parse("tripled", "--backbone-kwargs", "{depth")


def test_renamed_flags_still_work(caplog):
    assert tripled_config(parse("tripled", "--p", "0.3")).ratio == 0.3
    args = parse("train", "--ema", "0.99")
    train_cmd.take_renamed_flags(args, train_cmd.RENAMED)
    assert args.ema_decay == 0.99
    assert any("--ema is deprecated" in r.getMessage() for r in caplog.records)


@dataclass
class _Inner:
    steps: int = 2
    on: bool = True


@dataclass
class _Outer:
    name: str | None = None
    size: float = 1.0
    tags: list[str] = field(default_factory=lambda: ["a"])
    off: bool = False
    inner: _Inner = field(default_factory=_Inner)

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ValueError(f"size must be > 0, got {self.size}")


def test_add_config_flags_types_from_the_annotations():
    p = argparse.ArgumentParser()
    table = {"g": [Flag("name", "h"), Flag("size", "h"), Flag("tags", "h"), Flag("off", "h"),
                   Flag("inner.steps", "h", "inner-steps"), Flag("inner.on", "h", "no-inner")]}
    add_config_flags(p, _Outer(), table)
    args = p.parse_args(["--name", "x", "--size", "2.5", "--tags", "b", "c", "--off", "--inner-steps", "5", "--no-inner"])
    cfg = with_paths(_Outer(), config_fields(args, table))
    assert cfg == _Outer(name="x", size=2.5, tags=["b", "c"], off=True, inner=_Inner(steps=5, on=False))
    assert with_paths(_Outer(), config_fields(p.parse_args([]), table)) == _Outer()
    with pytest.raises(ValueError, match="its flag is --no-<name>"):  # a True default needs a --no- flag
        add_config_flags(argparse.ArgumentParser(), _Outer(), {"g": [Flag("inner.on", "h", "inner-on")]})


def test_with_paths_copies_validates_and_names_unknown_paths():
    base = _Outer()
    new = with_paths(base, {"size": 3.0, "inner.steps": 9})
    assert (new.size, new.inner.steps, base.size, base.inner.steps) == (3.0, 9, 1.0, 2)  # the original is unchanged
    with pytest.raises(ValueError, match="size must be > 0"):
        with_paths(base, {"size": 0.0})
    with pytest.raises(TypeError, match=r"_Inner has no field 'nope' \(in 'inner.nope'\)"):
        with_paths(base, {"inner.nope": 1})


def _leaf_paths(config, prefix=""):
    for f in fields(config):
        value = getattr(config, f.name)
        if is_dataclass(value):
            yield from _leaf_paths(value, prefix + f.name + ".")
        else:
            yield prefix + f.name


def test_idc_and_tripled_flag_the_same_ideas_with_the_same_names():
    """One vocabulary: the settings both methods have carry the same field and flag names."""
    shared = {"ratio", "seed", "device", "backend", "progress", "feature_model", "feature_checkpoint", "cache_dir",
              "pretrain_steps", "pretrain_batch", "num_freqs", "freq_std"}
    tripled = {f.path: f.flag for fs in tripled_cmd.OPTIONS.values() for f in fs}
    idc = {f.path: f.flag for fs in idc_cmd.OPTIONS.values() for f in fs}
    assert shared <= set(_leaf_paths(TripleDConfig())) & set(_leaf_paths(IDCConfig()))
    assert {k: tripled[k] for k in shared} == {k: idc[k] for k in shared}


def test_derive_seed_is_one_fold_over_the_parts():
    assert derive_seed(3, "img") == (3 * 1_000_003 + zlib.crc32(b"img")) % 2**31  # IDC's per-image seed
    assert derive_seed(5) == 5
    assert derive_seed(0, "draw", 1) == derive_seed(derive_seed(0, "draw"), 1)
    seeds = {derive_seed(s, part, i) for s in range(3) for part in ("draw", "kmeans") for i in range(50)}
    assert len(seeds) == 300 and all(0 <= s < 2**31 for s in seeds)
    a, b = seeded_generator(1, "x"), seeded_generator(1, "x")
    assert a.initial_seed() == b.initial_seed() == derive_seed(1, "x")


def test_compare_flags_come_from_its_config_and_preset():
    """compare's flags through the same table (its defaults hang on --preset, so a flag not given
    parses to None and the preset fills it): parsing nothing is the cpu preset, the dataclass."""
    from irkernels.compare.config import CompareConfig, preset
    from irkernels.pipeline import compare_cmd

    assert compare_cmd.config_from_args(parse("compare")) == CompareConfig()
    tiny = compare_cmd.config_from_args(parse("compare", "--preset", "tiny", "--steps", "7", "--idc", "iters=3"))
    assert tiny.steps == 7 and tiny.ratio == preset("tiny")["ratio"] and tiny.idc == {**preset("tiny")["idc"], "iters": 3}
    assert {f.path for flags in compare_cmd.OPTIONS.values() for f in flags} <= {f.name for f in fields(CompareConfig)}
    budgets = compare_cmd.config_from_args(parse("compare", "--budgets", "0.002", "0.1", "--students-together", "4"))
    assert budgets.budgets == [0.002, 0.1] and budgets.students_together == 4
