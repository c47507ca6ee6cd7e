"""``benchmarks/common.compare_results``: the filing of a ``compare`` run under benchmarks/results/
names the command that makes the rows, also when it only reports them."""
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import benchmarks.common as common  # noqa: E402


def test_a_report_only_filing_names_the_command_that_made_the_rows(monkeypatch, tmp_path):
    import irkernels.compare.pipeline as pipeline

    summary = {"rows": [], "target_psnr": None, "checks": {}}
    monkeypatch.setattr(pipeline, "run", lambda *a, **k: SimpleNamespace(summary=summary, table="", text=lambda: ""))
    notes = {}
    monkeypatch.setattr(common, "write_results", lambda name, rows, table, text, **k: notes.setdefault(name, text))
    argv = ["--data", str(tmp_path), "--out", str(tmp_path / "run"), "--sets", "whole", "random"]
    common.compare_results([*argv, "--report-only"], "a", "A", "benchmarks/x.py")
    common.compare_results(argv, "b", "B", "benchmarks/x.py")
    made = f"`python benchmarks/x.py --data {tmp_path} --out {tmp_path / 'run'} --sets whole random`"
    assert f"Command: {made} (= " in notes["a"] and "reported with `--report-only`" in notes["a"]
    assert "--report-only " not in notes["a"].split("reported with")[0]
    assert f"Command: {made} (= " in notes["b"] and "report-only" not in notes["b"]
