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


def test_one_guard_for_every_commands_folder(tmp_path):
    """guard_folder, which RunFolder, compare and train use: resume the same settings, refuse other
    settings unless overwrite (then clear), never mix another command's output, replace a foreign
    folder only with overwrite; every refusal one line."""
    from irkernels.outputs import guard_folder

    root = str(tmp_path / "f")
    assert guard_folder(root, "compare", "a comparison", {"a": 1}, None, overwrite=False) is False  # missing: fresh
    assert guard_folder(root, "compare", "a comparison", {"a": 1}, {"a": 1}, overwrite=False) is False  # resume
    with pytest.raises(FileExistsError, match=r"holds a comparison with other settings \(a: 2 → 1\)") as exc:
        guard_folder(root, "compare", "a comparison", {"a": 1}, {"a": 2}, overwrite=False)
    assert "\n" not in str(exc.value)
    assert guard_folder(root, "compare", "a comparison", {"a": 1}, {"a": 2}, overwrite=True) is True
    run = RunFolder(root, {"method": "idc", "ratio": 0.1}, scale=2)
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="holds the output of `idc`; choose another --out"):
            guard_folder(root, "train", "a training run", {"lr": 1}, None, overwrite=overwrite)
    assert guard_folder(run.root, "idc", "a run", run.settings, dict(run.settings), overwrite=False) is False
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(FileExistsError, match="does not hold a training run"):
        guard_folder(str(tmp_path / "mine"), "train", "a training run", {"lr": 1}, None, overwrite=False)
    assert guard_folder(str(tmp_path / "mine"), "train", "a training run", {"lr": 1}, None, overwrite=True) is True


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


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_every_output_file_honours_the_umask(tmp_path, umask):
    """PNGs, records, manifest, report, checkpoints and logs get the umask's mode (0644 under 022),
    not the owner-only 0600 of a temporary file."""
    from irkernels.models import save_checkpoint
    from irkernels.train import CsvLog, atomic_torch_save

    old = os.umask(umask)
    try:
        run = RunFolder(str(tmp_path / "out"), {"a": 1}, scale=2)
        run.write_pair("p", torch.rand(3, 2, 2), torch.rand(3, 4, 4))
        run.finish_unit("u", {})
        run.write_manifest()
        write_report(os.path.join(run.root, "report.html"), "t", [])
        save_checkpoint({"w": torch.ones(2)}, str(tmp_path / "net" / "model.safetensors"))
        atomic_torch_save({"step": 1}, str(tmp_path / "net" / "last.pt"))
        CsvLog(str(tmp_path / "net" / "log.csv"), 0)
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 9 and not [p for p in files if p.name.startswith(".tmp")]
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in files} == {p.name: oct(0o666 & ~umask) for p in files}


def test_thumbnails_are_readable_nearest_neighbour_blocks():
    from irkernels.outputs import thumbnail

    img = torch.rand(3, 16, 20, generator=torch.Generator().manual_seed(1))
    big = thumbnail(img)
    assert big.shape == (3, 96, 120)  # factor 6: the short side reaches 96
    assert torch.equal(big[:, ::6, ::6], img) and torch.equal(big[:, 5::6, 5::6], img)
    assert thumbnail(torch.rand(3, 7, 100), min_side=20).shape == (3, 21, 300)
    large = torch.rand(3, 128, 128)
    assert thumbnail(large) is large


def _pngs(text):
    """The decoded inline PNGs of an HTML fragment, as (width, height)."""
    import base64
    import io
    import re

    from PIL import Image

    return [Image.open(io.BytesIO(base64.b64decode(m))).size for m in re.findall(r"base64,([A-Za-z0-9+/=]+)", text)]


def test_mosaic_and_pair_rows_state_counts_at_a_readable_size():
    from irkernels.outputs import pair_rows_html

    gen = torch.Generator().manual_seed(2)
    text = mosaic_html([torch.rand(3, 16, 16, generator=gen) for _ in range(8)], columns=4,
                       title="img: real LR patches", total=64)
    assert "img: real LR patches (showing 8 of 64)" in text
    assert _pngs(text) == [(4 * (96 + 2), 2 * (96 + 2))]
    assert "(8)</figcaption>" in mosaic_html([torch.rand(3, 16, 16)] * 8, title="all", total=8)

    rows = [(f"img_{k:03d}", [torch.rand(3, 64, 64, generator=gen), torch.rand(3, 16, 16, generator=gen),
                              torch.rand(3, 64, 64, generator=gen)]) for k in range(3)]
    text = pair_rows_html(rows, ["initial real patch", "synthetic LR", "teacher HR"], total=12)
    assert "showing 3 of 12" in text and text.count("<tr>") == 4 and "<th>teacher HR</th>" in text
    assert _pngs(text) == [(128, 128), (96, 96), (128, 128)] * 3  # every thumbnail ≥ 96 px, integer factor
    assert "16×16" in text and "64×64" in text
    with pytest.raises(ValueError, match="2 images for 3 columns"):
        pair_rows_html([("x", rows[0][1][:2])], ["a", "b", "c"])


def test_relative_paths(tmp_path, monkeypatch):
    from irkernels.outputs import relative_path

    report = tmp_path / "run" / "report.html"
    assert relative_path(str(tmp_path / "run" / "HR" / "a.png"), str(report)) == os.path.join("HR", "a.png")
    assert relative_path(str(tmp_path / "data" / "b.png"), str(report)) == os.path.join("..", "data", "b.png")
    # far away: under the home folder as ~/..., elsewhere absolute (not a chain of ../)
    deep = tmp_path / "a" / "b" / "c" / "run" / "report.html"
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    assert relative_path(str(home / ".cache" / "m.pt"), str(deep)) == os.path.join("~", ".cache", "m.pt")
    assert relative_path("/opt/models/m.pt", str(deep)) == "/opt/models/m.pt"


def test_cf_modulus_and_distribution_figure():
    import numpy as np

    from irkernels.outputs import cf_modulus, distribution_figure_html

    gen = torch.Generator().manual_seed(3)
    x, t = torch.randn(50, 6, generator=gen), torch.randn(9, 6, generator=gen)
    ref = np.abs(np.exp(1j * (x.double().numpy() @ t.double().numpy().T)).mean(0))
    assert np.allclose(cf_modulus(x, t).numpy(), ref, atol=1e-12)
    assert cf_modulus(x, torch.zeros(2, 6)).tolist() == [1.0, 1.0]  # φ(0) = 1
    with pytest.raises(ValueError, match="same D"):
        cf_modulus(x, t[:, :5])
    text = distribution_figure_html(x, torch.randn(7, 6, generator=gen) * 2)
    assert len(_pngs(text)) == 1
    with pytest.raises(ValueError, match="real and synthetic"):
        distribution_figure_html(x, torch.randn(7, 5))
