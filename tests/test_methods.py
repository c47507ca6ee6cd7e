"""The method contract (``irkernels.methods``) and the registry (``irkernels.registry``): both
methods register next to their config, their configs split settings from execution knobs, and a
third method is one package and nothing else (shown with a toy method written here, registered
as an installed package would be, run end to end through the CLI and ``compare``; and a sub-package
of the tree found as IDC and TripleD are)."""
import dataclasses
import json
import textwrap

import pytest

from irkernels.methods import MethodConfig, RunResult
from irkernels.registry import get_method, registry, run_method
from irkernels.pipeline.__main__ import build_parser, main


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
        assert callable(spec.runner()) and callable(spec.reporter()) and spec.flag_table().groups
        assert spec.compare and set(spec.fixed) <= {f.name for f in dataclasses.fields(cls)}
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
from irkernels.methods import CompareSet, MethodConfig, MethodSpec

@dataclass
class ToyConfig(MethodConfig):
    """Centre crops of the images as LR/HR pairs."""
    count: int = 2
    side: int = 32
    scale: int = 4
    progress: bool = True
    EXECUTION = ("progress",)

    def __post_init__(self):
        if self.count < 1:
            raise ValueError(f"count must be >= 1, got {self.count}")

METHOD = MethodSpec(name="toy", help="toy method (tests)", config="toymethod.config:ToyConfig",
                    run="toymethod.pipeline:run", report="toymethod.pipeline:write_toy_report",
                    flags="toymethod.cli:FLAGS", compare={"toy": CompareSet("toymethod.pipeline:make_set", teacher=False)},
                    fixed=("scale",))
'''
TOY_CLI = '''
from irkernels.flags import PROGRESS, Flag, FlagTable, at_least_one

FLAGS = FlagTable("A toy method: centre crops of the images.", {"toy": [
    Flag("count", "images to crop (default: %(default)s)", type=at_least_one),
    Flag("side", "HR crop side (default: %(default)s)"),
    PROGRESS]})
'''
TOY_PIPELINE = '''
import os
from irkernels.data import load_folder, sample_images, to_float, to_tensor
from irkernels.data.degrade import bicubic_downsample
from irkernels.methods import RunResult
from irkernels.outputs import RunFolder, table_html, write_report
from .config import ToyConfig

def run(cfg, out, *, data=None, images=None, overwrite=False):
    folder = RunFolder(out, {"method": "toy", **cfg.settings()}, cfg.scale, overwrite=overwrite)
    before = len(folder.done_units())
    if images is None:
        images = load_folder(data) if data else sample_images(limit=cfg.count)
    images = images[:cfg.count]
    for im in images:
        if folder.is_done(im.name):
            continue
        hr = to_float(to_tensor(im.pixels[:cfg.side, :cfg.side]))
        folder.write_pair(im.name, bicubic_downsample(hr, cfg.scale).clamp(0, 1), hr)
        folder.finish_unit(im.name, {"source": im.name})
    manifest = folder.write_manifest({"method": "toy"})
    report = write_toy_report(folder)
    return RunResult("toy", folder.root, cfg.scale, len(images), before, manifest, report, len(os.listdir(folder.hr_dir)))

def write_toy_report(folder):
    return write_report(os.path.join(folder.root, "report.html"), "toy", [("Units", table_html(folder.records()))])

def make_set(request):
    """compare's row: every training image's top-left 2x2 patches of the comparison's grid."""
    cfg = ToyConfig(count=len(request.images), side=2 * request.lr_patch * request.scale, scale=request.scale,
                    progress=request.progress, **request.settings)
    run(cfg, request.folder, images=request.images)
    request.record["toy_settings"] = cfg.settings()
    return request.stored_pairs()
'''


def install_toy(root) -> None:
    """The toy method as a package of its own in ``root``, registered as an installed distribution
    would be: a ``dist-info`` with an ``irkernels.methods`` entry point."""
    package = root / "toymethod"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name, text in (("config", TOY_CONFIG), ("cli", TOY_CLI), ("pipeline", TOY_PIPELINE)):
        (package / f"{name}.py").write_text(textwrap.dedent(text))
    info = root / "toymethod-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toymethod\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[irkernels.methods]\ntoy = toymethod.config:METHOD\n")


@pytest.fixture
def toy(tmp_path, monkeypatch):
    install_toy(tmp_path / "pkgs")
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    yield get_method("toy")


def test_a_third_method_is_one_package_run_through_the_cli(toy, tmp_path, capsys):
    assert "toy" in registry() and {"idc", "tripled"} <= set(registry())
    assert toy.reporter().__name__ == "write_toy_report" and toy.flag_table().groups["toy"][0].path == "count"
    _, subs = build_parser("toy")
    assert "--side" in subs["toy"].format_help() and "centre crops" in subs["toy"].format_help()
    out = tmp_path / "run"
    assert main(["toy", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "toy: 2 LR/HR pairs from 2 unit(s)" in text and "next: python -m irkernels.pipeline train" in text
    assert json.loads((out / "manifest.json").read_text())["num_pairs"] == 2
    # through the registry, a second call resumes (both units finished)
    result = run_method("toy", toy.config_class()(), str(out))
    assert isinstance(result, RunResult) and result.skipped == 2 and result.pairs == 2
    with pytest.raises(SystemExit):
        main(["toy", "--count", "0", "--out", str(tmp_path / "bad")])
    assert "--count: must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the same folder with other settings: the one guard of every command
        main(["toy", "--count", "1", "--out", str(out)])
    assert "other settings" in capsys.readouterr().err


def test_a_third_method_adds_its_rows_to_compare(toy, tmp_path, capsys):
    """The toy's set in compare, with no edit of compare: a row beside whole, made in its own run
    folder under sets/ (resumed by a rerun), with the settings it ran with recorded (its config's
    defaults; the comparison sets the scale and the patch grid)."""
    from irkernels.compare.config import compare_sets
    from test_compare import write_photos

    assert "toy" in compare_sets() and not compare_sets()["toy"].teacher
    (tmp_path / "photos").mkdir()
    out = tmp_path / "cmp"
    argv = ["compare", "--data", write_photos(tmp_path / "photos"), "--preset", "tiny", "--val-images", "2", "--steps",
            "2", "--eval-every", "2", "--seeds", "0", "--sets", "whole", "toy", "--lr-patch", "8", "--lr-stride", "8",
            "--device", "cpu", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    assert "| toy |" in capsys.readouterr().out
    row = json.loads((out / "rows" / "toy-seed0.json").read_text())
    assert row["pairs"] == 4 * 4 and row["toy_settings"] == {"count": 4, "side": 32, "scale": 2}
    assert (out / "sets" / "toy-seed0" / "manifest.json").exists() and not (out / "rows" / "teacher.json").exists()
    assert main(argv) == 0 and "rows: 0 trained now, 3 found finished" in capsys.readouterr().out


def test_a_method_sub_package_is_found_in_the_tree(tmp_path, monkeypatch):
    """A sub-package of irkernels whose config.py defines METHOD is registered (no other edit);
    one without METHOD is not."""
    import irkernels

    for name, text in (("toyintree", TOY_CONFIG.replace('name="toy"', 'name="toyintree"')), ("notamethod", "X = 1\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
        (tmp_path / name / "config.py").write_text(textwrap.dedent(text))
    monkeypatch.setattr(irkernels, "__path__", [*irkernels.__path__, str(tmp_path)])
    assert "toyintree" in registry() and "notamethod" not in registry()
    assert get_method("toyintree").config == "toymethod.config:ToyConfig"
