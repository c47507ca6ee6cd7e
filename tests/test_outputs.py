"""The shared run folder: layout, atomic writes, resume markers, settings guard, report."""
import json
import os

import pytest
import torch

from irkernels.outputs import RunFolder, atomic_write_bytes, mosaic_html, table_html, write_report


def test_atomic_write_leaves_no_partial_file(tmp_path):
    path = tmp_path / "a.bin"
    atomic_write_bytes(str(path), b"first")
    with pytest.raises(TypeError):
        atomic_write_bytes(str(path), "not bytes")  # fails inside the write
    assert path.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]  # the temporary file is gone


def test_pairs_records_manifest_and_resume(tmp_path):
    gen = torch.Generator().manual_seed(0)
    settings = {"method": "idc", "ratio": 0.1, "seed": 0}
    run = RunFolder(str(tmp_path / "out"), settings, scale=2)
    lr, hr = torch.rand(3, 5, 7, generator=gen), torch.rand(3, 10, 14, generator=gen)
    run.write_pair("img1_000", lr, hr)
    assert not run.is_done("img1")
    run.finish_unit("img1", {"source": "img1.png", "losses": {"ins": 0.5}})
    assert run.is_done("img1") and run.done_units() == ["img1"]
    with pytest.raises(ValueError, match="scale=2"):
        run.write_pair("bad", lr, lr)
    # a restart with the same settings sees the finished unit
    again = RunFolder(str(tmp_path / "out"), settings, scale=2)
    assert again.is_done("img1")
    manifest = json.load(open(again.write_manifest({"timing_s": 1.5})))
    assert manifest["settings"] == settings and manifest["num_pairs"] == 1 and manifest["timing_s"] == 1.5
    assert manifest["units"][0]["losses"] == {"ins": 0.5} and "torch" in manifest["versions"]
    from PIL import Image

    back = Image.open(tmp_path / "out" / "LR_bicubic" / "X2" / "img1_000.png")
    assert back.size == (7, 5) and back.mode == "RGB"
    assert back.getpixel((0, 0))[0] == round(lr[0, 0, 0].item() * 255)


def test_other_settings_are_not_overwritten_silently(tmp_path):
    out = str(tmp_path / "out")
    run = RunFolder(out, {"ratio": 0.1}, scale=4)
    run.write_pair("x", torch.rand(3, 2, 2), torch.rand(3, 8, 8))
    run.finish_unit("x", {})
    with pytest.raises(FileExistsError, match=r"ratio: 0.1 → 0.2"):
        RunFolder(out, {"ratio": 0.2}, scale=4)
    assert os.path.exists(os.path.join(out, "HR", "x.png"))
    fresh = RunFolder(out, {"ratio": 0.2}, scale=4, overwrite=True)
    assert fresh.done_units() == [] and not os.listdir(fresh.hr_dir)


def test_foreign_folder_is_refused(tmp_path):
    (tmp_path / "mine.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="not an irkernels run folder"):
        RunFolder(str(tmp_path), {"a": 1}, scale=1)
    assert (tmp_path / "mine.txt").read_text() == "user data"


def test_report(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from irkernels.outputs import figure_html

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    path = write_report(str(tmp_path / "report.html"), "t", [
        ("figure", figure_html(fig)),
        ("mosaic", mosaic_html([torch.rand(3, 4, 4), torch.rand(3, 6, 6)], columns=2)),
        ("table", table_html([{"a": 1.23456, "b": "x"}])),
    ])
    text = open(path).read()
    assert text.count("data:image/png;base64,") == 2 and "<td>1.235</td>" in text
