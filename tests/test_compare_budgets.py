"""``compare --budgets``: the data-efficiency sweep. Every row of a budget counts what its student
trains on; budgets a set cannot make are said in one line; a partly done sweep resumes; the curve,
its tables and the report are written from the finished rows."""
import json
import os

import pytest

from irkernels.compare.budgets import Budget, make_budgets
from irkernels.compare.report import gap

pytestmark = pytest.mark.usefixtures("one_thread")

# test_compare's tiny comparison: 4 training images of 64×96, ×2, 8-px LR patches → 24 patches each, 96 in all
SETS = ["whole", "random", "random+teacher", "idc", "random-images", "tripled-selection"]


def _tiny(**kw):
    from test_compare import tiny

    return tiny(**{"sets": SETS, "seeds": [0], "budgets": [0.02, 0.25], **kw})


def test_budget_counts():
    b = Budget(0.25, total=96, images=4)
    assert (b.pairs, b.ratio, b.tag, b.whole_images()) == (24, 0.25, "n24", 1)
    small = Budget(0.02, total=96, images=4)  # 2 patches: fewer than the 4 images, so 2 images' one patch each
    assert small.pairs == 2 and small.whole_images() == 0
    assert small.refusal("random") is None and small.refusal("idc") is None
    line = small.refusal("tripled")
    assert "tripled keeps whole images" in line and "0.02 (2 patches)" in line and "\n" not in line
    names = ["d", "a", "c", "b"]
    picks = small.image_subset(3, names)
    assert len(picks) == 2 and picks == sorted(picks)
    assert picks == small.image_subset(3, names) and b.image_subset(3, names) is None
    # a smaller budget's images are among a larger one's (one permutation per seed)
    assert set(picks) <= set(Budget(0.03, total=96, images=4).image_subset(3, names))
    assert {tuple(Budget(0.02, 96, 4).image_subset(s, names)) for s in range(8)} != {tuple(picks)}  # seeds differ
    assert Budget(1e-6, total=96, images=4).pairs == 1
    assert [x.share for x in make_budgets([0.25, 0.02], 96, 4)] == [0.02, 0.25]
    with pytest.raises(ValueError, match="both keep 24"):
        make_budgets([0.25, 0.251], 96, 4)


def test_budgets_are_checked_in_the_config():
    from test_compare import tiny

    with pytest.raises(ValueError, match="budgets must be distinct shares in"):
        tiny(budgets=[0.0])
    with pytest.raises(ValueError, match="budgets must be distinct"):
        tiny(budgets=[0.1, 0.1])


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):

    from irkernels.compare.pipeline import run
    from test_compare import write_photos

    root = write_photos(tmp_path_factory.mktemp("photos"))
    out = str(tmp_path_factory.mktemp("sweep") / "s")
    return run(_tiny(), out, data=root), out, root


def _read_rows(out):
    rows = {}
    for f in sorted(os.listdir(os.path.join(out, "rows"))):
        with open(os.path.join(out, "rows", f)) as fh:
            rows[f] = json.load(fh)
    return rows


def test_every_row_counts_what_its_student_trains_on(sweep):
    result, out, _ = sweep
    rows = _read_rows(out)
    # whole, bicubic and the teacher once; the patch-level sets at both budgets; the image-level ones at 24 only
    assert sorted(rows) == sorted(["bicubic.json", "teacher.json", "whole-seed0.json"]
                                  + [f"{s}-n{n}-seed0.json" for s in ("random", "random+teacher", "idc") for n in (2, 24)]
                                  + ["random-images-n24-seed0.json", "tripled-selection-n24-seed0.json"])
    assert rows["whole-seed0.json"]["pairs"] == 96 and rows["whole-seed0.json"]["share"] == 1.0
    for n in (2, 24):
        for s in ("random", "random+teacher", "idc"):
            row = rows[f"{s}-n{n}-seed0.json"]
            assert row["pairs"] == n and row["share"] == n / 96 and row["budget"]["pairs"] == n
    for s in ("random-images", "tripled-selection"):  # one whole image of 24 patches
        assert rows[f"{s}-n24-seed0.json"]["pairs"] == 24
    # the patch sets' pairs are what the student trained on: the stored IDC folder holds that many
    assert len(os.listdir(os.path.join(out, "sets", "idc-n2-seed0", "HR"))) == 2
    assert rows["idc-n2-seed0.json"]["idc_settings"]["ratio"] == pytest.approx(2 / 96)
    # below one patch per image: random, random+teacher and IDC draw the same 2 images
    manifest = json.load(open(os.path.join(out, "sets", "idc-n2-seed0", "manifest.json")))
    assert len(manifest["settings"]["images"]) == 2


def test_refusals_are_said_and_the_outputs_written(sweep):
    result, out, _ = sweep
    for name in ("budgets.json", "budgets.md", "budgets.png", "report.html", "tables/n2.md", "tables/n24.md",
                 "tables/n2-curves.png", "tables/n24-curves.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    with open(os.path.join(out, "budgets.png"), "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    bs = result.summary
    assert [b["pairs"] for b in bs["budgets"]] == [2, 24]
    assert len(bs["refused"]) == 2 and all("below half an image" in line for line in bs["refused"])
    assert set(bs["curves"]) == {"random", "random+teacher", "idc", "random-images", "tripled-selection"}
    assert [p["budget"] for p in bs["curves"]["idc"]] == [2, 24]
    assert set(bs["once"]) == {"bicubic", "teacher", "whole"}
    md = open(os.path.join(out, "budgets.md")).read()
    assert "| idc |" in md and "below half an image" in md and "IDC's condensation" in md
    steps = {(g["row"], g["control"]) for b in bs["budgets"] for g in b["own_steps"]}
    assert ("idc", "random+teacher") in steps and ("tripled-selection", "random-images") in steps
    assert result.verdict == [] and result.text().count("not made: random-images") == 1  # said once, in the table
    assert "budgets.md" not in result.text() and "| idc |" in result.text()


def test_a_partly_done_sweep_resumes(sweep, tmp_path, monkeypatch):
    """Interrupted in a budget row's student and run again: the rows equal the uninterrupted sweep's,
    and a second budget list adds only the new budget's rows."""
    import irkernels.compare.pipeline as pipeline

    from test_compare import run_interrupted_at_score

    _, ref, data = sweep
    out = str(tmp_path / "s")
    # the 6th scoring: bicubic, teacher, whole (3, 6), random-n2 at step 3, then its step 6
    run_interrupted_at_score(monkeypatch, 6, _tiny(), out, data=data)
    assert os.path.exists(os.path.join(out, "train", "random-n2-seed0", "last.pt"))
    # the rows finished so far, reported without making or training anything
    report = pipeline.run(_tiny(), out, data=data, report_only=True)
    assert report.rows_done == 0 and report.rows_skipped == 3 and report.summary["curves"] == {}
    assert set(report.summary["once"]) == {"bicubic", "teacher", "whole"}
    assert not os.path.exists(os.path.join(out, "rows", "random-n2-seed0.json"))
    with pytest.raises(FileNotFoundError, match="holds no comparison"):
        pipeline.run(_tiny(), str(tmp_path / "none"), data=data, report_only=True)
    again = pipeline.run(_tiny(), out, data=data)
    assert again.rows_skipped == 3

    def strip(rows):
        return {k: {f: v for f, v in r.items() if f not in ("make_s", "train_s", "train_segments_s", "score_s", "patches_per_s")}
                for k, r in rows.items()}

    assert strip(_read_rows(out)) == strip(_read_rows(ref))
    more = pipeline.run(_tiny(sets=["random"], budgets=[0.02, 0.5]), out, data=data)
    assert more.rows_done == 1 and [b["pairs"] for b in more.summary["budgets"]] == [2, 48]


def test_gap_pays_only_beyond_twice_the_larger_spread():
    def entry(mean, std, seeds=3):
        return {"seeds": list(range(seeds)), "scores": {"val": {"psnr_y": (mean, std)}}}

    g = gap({"idc": entry(30.2, 0.02), "random+teacher": entry(30.1, 0.04)}, "idc", "random+teacher")
    assert g["gap_db"] == pytest.approx(0.1) and g["twice_spread_db"] == pytest.approx(0.08) and g["pays"]
    g = gap({"idc": entry(30.05, 0.02), "random+teacher": entry(30.1, 0.04)}, "idc", "random+teacher")
    assert not g["pays"] and not g["loses"]
    assert not gap({"a": entry(31, 0, 1), "b": entry(30, 0, 1)}, "a", "b")["pays"]  # one seed: no spread
    assert gap({"a": entry(31, 0)}, "a", "b") is None


def test_test_sets_get_their_own_table_and_gaps():
    """Rows scored on a test set: the budget table has that set's PSNR-Y per set and budget, and each
    step's gap to its control is judged on it too, beside the validation split's."""
    from irkernels.compare.budgets import make_budgets
    from irkernels.compare.report import budget_markdown, budget_summary

    def scores(psnr_y):
        return {"psnr_rgb": psnr_y - 1, "ssim_rgb": 0.9, "psnr_y": psnr_y, "ssim_y": 0.9}

    def row(kind, seed, val, set5, pairs=None):
        r = {"row": kind, "kind": kind, "seed": seed, "device": "cpu", "make_s": 0.0, "train_s": 0.0,
             "pairs": pairs, "val": scores(val), "test": {"Set5": scores(set5)}}
        if pairs is not None:
            r |= {"budget": {"share": 0.02, "pairs": pairs, "total": 100}, "share": pairs / 100}
        return r

    rows = [row("bicubic", None, 28.0, 33.0), row("whole", 0, 30.0, 36.0), row("whole", 1, 30.0, 36.0)]
    for seed in (0, 1, 2):
        rows += [row("random+teacher", seed, 29.90 + 0.01 * seed, 35.50 + 0.01 * seed, 2),
                 row("idc", seed, 29.91 + 0.01 * seed, 35.80 + 0.01 * seed, 2)]
    bs = budget_summary(rows, make_budgets([0.02], 100, 4), None, [], tests=["Set5"])
    gaps = {(g["row"], g["split"]): g for g in bs["budgets"][0]["own_steps"]}
    assert gaps[("idc", "val")]["gap_db"] == pytest.approx(0.01) and not gaps[("idc", "val")]["pays"]
    assert gaps[("idc", "Set5")]["gap_db"] == pytest.approx(0.30) and gaps[("idc", "Set5")]["pays"]
    md = budget_markdown(bs)
    assert "Set5 PSNR-Y" in md and "| idc | 35.81 ± 0.01 |" in md and "| whole (once) | 36.00 ± 0.00 |" in md
    assert "| 2 | IDC's condensation over its relabelled initial patches | idc − random+teacher | Set5 | +0.300 | 0.020 | **pays** |" in md


def test_titles_name_the_teacher_where_a_set_learns_from_it():
    from irkernels.compare.report import _title

    assert "edsr-small teacher" in _title(_tiny(teacher_model="edsr-small"), "2 budgets")
    assert "teacher" not in _title(_tiny(sets=["whole", "random", "random-images"]), "2 budgets")


def test_global_sets_pick_the_budget_over_the_whole_split(tmp_path):
    """kcenter+teacher / herding+teacher: exactly the budget's patches, chosen over all images at
    once (so fewer patches than images need no image draw), relabelled by the teacher; the same
    patches for every seed (a deterministic selection)."""
    import torch

    from irkernels.compare.pipeline import make_set, make_teacher, split_images, task_instances
    from irkernels.compare.sets import global_selection
    from test_compare import tiny, write_photos

    (tmp_path / "photos").mkdir()
    cfg = tiny(sets=["kcenter+teacher", "herding+teacher"], budgets=[0.02])
    train_images, _ = split_images(cfg, write_photos(tmp_path / "photos"))
    instances = task_instances(cfg, train_images)
    teacher, info = make_teacher(cfg, instances, str(tmp_path / "cache"))
    device = torch.device("cpu")
    for kind in ("kcenter+teacher", "herding+teacher"):
        picks = global_selection(kind, instances, 3, teacher, device)
        assert len(picks) == 4 and sum(len(p) for p in picks) == 3  # 3 patches over 4 images
        assert picks == global_selection(kind, instances, 3, teacher, device)
        pairs = make_set(kind, cfg, 0, train_images, instances, teacher, info, str(tmp_path / kind), count=3)
        again = make_set(kind, cfg, 1, train_images, instances, teacher, info, str(tmp_path / kind), count=3)
        assert len(pairs) == 3 and torch.equal(pairs.lq, again.lq)
        real_hr = torch.cat([i.hr[p] for i, p in zip(instances, picks)])
        assert torch.equal(pairs.lq, torch.cat([i.lr[p] for i, p in zip(instances, picks)]))
        assert not torch.equal(pairs.hq, real_hr)  # the teacher's targets, not the real HR
    # no patch twice
    picked = global_selection("kcenter+teacher", instances, 20, teacher, device)
    assert len({(k, j) for k, p in enumerate(picked) for j in p}) == 20


def test_the_budget_table_says_cells_of_fewer_seeds(monkeypatch):
    """A sweep still running: a cell of fewer seeds than the most any cell has says how many."""
    import irkernels.compare.report as report

    def point(budget, seeds, mean, pairs=None):
        pairs = pairs or budget
        return {"budget": budget, "share": pairs / 100, "pairs": pairs, "seeds": seeds, "psnr_y": [mean, 0.01]}

    bs = {"total": 100, "once": {}, "refused": [],
          "budgets": [{"pairs": p, "summary": {"rows": []}, "own_steps": [], "versus_controls": []} for p in (4, 15)],
          "curves": {"random": [point(4, 3, 29.0), point(15, 2, 29.5)], "tripled": [point(15, 1, 29.6, pairs=16)]}}
    monkeypatch.setattr(report, "verdict_lines", lambda summary: [])  # no rows to check here
    md = report.budget_markdown(bs)
    assert "| random | 29.00 ± 0.01 | 29.50 ± 0.01 [2 seeds] |" in md
    assert "| tripled |  | 29.60 ± 0.01 (16: 16 %) [1 seed] |" in md
