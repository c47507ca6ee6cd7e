"""The method contract (``irkernels.methods``) and the CLI's registry (``irkernels.registry``):
both methods register next to their config and through their CLI files,
their configs split settings from execution knobs, and a third method is one sub-package plus one
CLI file (shown with a toy method written here, run end to end through the CLI)."""
import dataclasses
import json
import textwrap

import pytest

import irkernels.pipeline as pipeline_pkg
from irkernels.methods import MethodConfig, RunResult
from irkernels.registry import get_method, registry, run_method
from irkernels.pipeline.__main__ import main


def test_idc_and_tripled_are_registered_with_their_contract():
    methods = registry()
    assert {"idc", "tripled"} <= set(methods)
    for name, spec in methods.items():
        cls = spec.config_class()
        assert dataclasses.is_dataclass(cls) and issubclass(cls, MethodConfig), name
        cfg = cls()
        settings = cfg.settings()
        assert not set(cls.EXECUTION) & set(settings), name  # execution knobs never guard a run folder
        json.dumps(settings)  # JSON-able: stored in the run folder
        assert callable(spec.runner())
    with pytest.raises(ValueError, match="method must be one of"):
        get_method("nope")


def test_execution_knobs_are_dropped_at_every_level():
    from irkernels.tripled.config import TripleDConfig

    cfg = TripleDConfig(device="cpu", progress=False)
    s = cfg.settings()
    assert "device" not in s and "cache_dir" not in s
    assert "device" not in s["latent"] and "progress" not in s["scorer_cfg"] and "steps" in s["finetune"]
    # the same run on another device or with progress bars guards the same folder
    assert TripleDConfig(device="cuda", progress=True).settings() == s
    assert TripleDConfig(seed=1).settings() != s
    # for_run gives the steps the run's device and progress, on a copy
    run = cfg.for_run()
    assert run.latent.device == run.finetune.device == run.scorer_cfg.device == "cpu" and not run.latent.progress
    assert cfg.latent.device == "auto" and cfg.latent.progress


def test_run_method_checks_the_config_type(tmp_path):
    from irkernels.tripled.config import TripleDConfig

    with pytest.raises(TypeError, match="IDCConfig"):
        run_method("idc", TripleDConfig(), str(tmp_path / "x"))


TOY_CONFIG = '''
from dataclasses import dataclass
from irkernels.methods import MethodConfig

@dataclass
class ToyConfig(MethodConfig):
    """Centre crops of the embedded photos as LR/HR pairs."""
    count: int = 2
    side: int = 32
    progress: bool = True
    EXECUTION = ("progress",)

    def __post_init__(self):
        if self.count < 1:
            raise ValueError(f"count must be >= 1, got {self.count}")
'''
TOY_PIPELINE = '''
import os
from irkernels.data import sample_images, to_float, to_tensor
from irkernels.data.degrade import bicubic_downsample
from irkernels.methods import RunResult
from irkernels.outputs import RunFolder, table_html, write_report

def run(cfg, out, *, data=None, overwrite=False):
    folder = RunFolder(out, {"method": "toy", **cfg.settings()}, 4, overwrite=overwrite)
    before = len(folder.done_units())
    images = sample_images(limit=cfg.count)
    for im in images:
        if folder.is_done(im.name):
            continue
        hr = to_float(to_tensor(im.pixels[:cfg.side, :cfg.side]))
        folder.write_pair(im.name, bicubic_downsample(hr, 4).clamp(0, 1), hr)
        folder.finish_unit(im.name, {"source": im.name})
    manifest = folder.write_manifest({"method": "toy"})
    report = write_report(os.path.join(folder.root, "report.html"), "toy", [("Units", table_html(folder.records()))])
    return RunResult("toy", folder.root, 4, len(images), before, manifest, report, len(os.listdir(folder.hr_dir)))
'''
TOY_CMD = '''
"""A toy method: centre crops of the embedded photos."""
import argparse
from irkernels.methods import MethodSpec

NAME = "toy"
HELP = "toy method (tests)"
METHOD = MethodSpec(name=NAME, help=HELP, config="toymethod.config:ToyConfig", run="toymethod.pipeline:run")

def add_arguments(p):
    p.add_argument("--count", type=int, default=2)
    p.add_argument("--out", default="runs/toy")

def run(args):
    from toymethod.config import ToyConfig
    from toymethod.pipeline import run as run_toy
    print(run_toy(ToyConfig(count=args.count), args.out).summary())
    return 0
'''


def test_a_third_method_is_one_sub_package_and_one_cli_file(tmp_path, monkeypatch, capsys):
    package = tmp_path / "pkgs" / "toymethod"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "config.py").write_text(textwrap.dedent(TOY_CONFIG))
    (package / "pipeline.py").write_text(textwrap.dedent(TOY_PIPELINE))
    commands = tmp_path / "commands"
    commands.mkdir()
    (commands / "toy_cmd.py").write_text(textwrap.dedent(TOY_CMD))
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    monkeypatch.setattr(pipeline_pkg, "__path__", [*pipeline_pkg.__path__, str(commands)])

    assert "toy" in registry() and {"idc", "tripled"} <= set(registry())
    out = tmp_path / "run"
    assert main(["toy", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "toy: 2 LR/HR pairs from 2 unit(s)" in text and "next: python -m irkernels.pipeline train" in text
    assert json.loads((out / "manifest.json").read_text())["num_pairs"] == 2
    # through the registry, a second call resumes (both units finished)
    spec = get_method("toy")
    result = run_method("toy", spec.config_class()(), str(out))
    assert isinstance(result, RunResult) and result.skipped == 2 and result.pairs == 2
    with pytest.raises(SystemExit):
        main(["toy", "--count", "0", "--out", str(tmp_path / "bad")])
    assert "count must be >= 1" in capsys.readouterr().err
