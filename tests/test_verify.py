"""The verify report: committed records read from git HEAD, values compared exactly or within tolerance."""
import json
import subprocess

import pytest

from hudlib import verify


def _record(fid, f_p=0.99, weights="w0"):
    return {"weights_hash": weights, "wall_time_s": 1.0, "git_commit": "a",
            "metrics": {"FID": fid, "F_p": f_p, "note": "text is not compared"},
            "paper_exact": {"F_p": {"value": f_p, "draw_mean": f_p, "draw_std": 0.0}},
            "physical": {"negative_reflectance_share": 0.0, "has_abundances": True}}


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_committed_records_of_a_results_folder_below_the_top_of_the_work_tree(tmp_path):
    """results/ is a subfolder of the repository (as in the project): its committed records are found under their
    paths relative to results/ (git ls-tree from a subfolder used to give paths that could not be mapped)."""
    res = tmp_path / "results"
    (res / "IndianPines" / "HUD").mkdir(parents=True)
    (res / "IndianPines" / "HUD" / "quick.json").write_text(json.dumps(_record(20.0)))
    (res / "IndianPines" / "HUD" / "quick-abl-linear.json").write_text(json.dumps(_record(19.0)))
    (res / "IndianPines" / "HUD" / "smoke.json").write_text(json.dumps(_record(99.0)))
    (res / "tables_quick.md").write_text("not a record")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "records")
    (res / "IndianPines" / "HUD" / "quick.json").write_text(json.dumps(_record(21.0)))  # changed since HEAD
    got = verify.committed_records("quick", res)
    assert sorted(got) == ["IndianPines/HUD/quick-abl-linear.json", "IndianPines/HUD/quick.json"]
    assert got["IndianPines/HUD/quick.json"]["metrics"]["FID"] == 20.0  # HEAD's value, not the work tree's
    assert verify.collect("quick", res)["IndianPines/HUD/quick.json"]["metrics"]["FID"] == 21.0


def test_committed_records_outside_git_is_none(tmp_path):
    assert verify.committed_records("quick", tmp_path) is None


def test_compare_exact_within_tolerance_beyond_and_missing():
    committed = {"a.json": _record(20.0), "gone.json": _record(1.0)}
    now = {"a.json": _record(20.0 * (1 + 5e-4), f_p=0.99 + 5e-6), "new.json": _record(1.0)}
    rows = {(r["record"], r["value"]): r for r in verify.compare(committed, now)}
    assert rows[("a.json", "metrics.FID")]["agree"] == "within tolerance"  # 0.05 % < the default 0.1 %
    assert rows[("a.json", "metrics.F_p")]["agree"] == "no"  # F_p's tolerance is absolute 1e-6
    assert rows[("a.json", "physical.negative_reflectance_share")]["agree"] == "exact"
    assert ("a.json", "metrics.note") not in rows and ("a.json", "physical.has_abundances") not in rows
    assert rows[("gone.json", "(record)")]["agree"] == "missing"
    assert rows[("new.json", "(record)")]["why"] == "not committed"
    at, rt = verify._tolerance("metrics.FID")
    assert rows[("a.json", "metrics.FID")]["tolerance"] == pytest.approx(at + rt * 20.0)


def test_report_lists_disagreements_first(tmp_path):
    rows = verify.compare({"a.json": _record(20.0)}, {"a.json": _record(25.0)})
    text = verify.write_report("quick", rows, "git HEAD", tmp_path).read_text()
    head, rest = text.split("## Every record")
    assert "## Disagreements beyond tolerance" in head and "| a.json | metrics.FID | 20 | 25 |" in head
    assert "1 records" in head and "disagreeing or missing" in head
    ok = verify.write_report("quick", verify.compare({"a.json": _record(20.0)}, {"a.json": _record(20.0)}),
                             "git HEAD", tmp_path).read_text()
    assert "None." in ok.split("## Every record")[0]
