"""hudlib/paper_audit.json and hudlib.audit: complete, consistent with the transcribed tables, every flag explained."""
from __future__ import annotations

import math

import pytest

from hudlib import audit
from hudlib.data import SCENES as SCENE_INFO
from hudlib.metrics.paper_exact import inception_score_cap
from hudlib.tables import paper_results

SCENES = ["IndianPines", "KSC", "Pavia", "PaviaU", "Salinas"]
MODELS = ["GAN", "VAE", "MPRNet", "UD", "UBF", "HUD"]
METRICS = ["F_p", "D_b", "D_b/F_p", "IS", "FID"]
TABLE = {"F_p": "table1", "D_b": "table1", "D_b/F_p": "table1", "IS": "table2", "FID": "table3"}


def test_every_cell_once():
    cells = audit.load_audit()["cells"]
    keys = [(c["scene"], c["model"], c["metric"]) for c in cells]
    assert len(keys) == len(set(keys)) == 150
    assert set(keys) == {(s, m, k) for s in SCENES for m in MODELS for k in METRICS}


def test_paper_values_are_the_transcribed_tables():
    pr = paper_results()
    for c in audit.load_audit()["cells"]:
        assert c["paper"] == pr[TABLE[c["metric"]]][c["metric"]][c["scene"]][c["model"]]


def test_flags_have_reason_and_source_and_agreement_is_consistent():
    for c in audit.load_audit()["cells"]:
        for f in c["flags"]:
            assert f["code"] and len(f["reason"]) > 10 and len(f["source"]) > 5
        if c["log"] is not None:
            assert c["log_source"]
        if c["agreement"] in ("differs", "no_log", "swapped"):
            assert any(f["code"] in ("log_differs", "no_log", "fid_swapped") for f in c["flags"])
        if c["agreement"] == "rounded":
            assert abs(c["log"] - c["paper"]) <= 0.5 * 10 ** -(3 if TABLE[c["metric"]] == "table1" else 2) + 1e-9


def test_is_cap_and_standard_is():
    for c in audit.load_audit()["cells"]:
        if c["metric"] != "IS":
            continue
        C = SCENE_INFO[c["scene"]].n_classes + 1  # their classifier: the classes and the background
        assert c["C"] == C
        assert abs(c["is_cap"] - math.exp(math.log(C) / C)) < 1e-12
        assert abs(inception_score_cap(C) - c["is_cap"]) < 1e-12
        assert c["paper"] <= c["is_cap"] + 0.005  # every printed IS respects the code's cap
        if c["log"] is not None:
            assert c["log"] <= c["is_cap"] and abs(c["log_is_standard"] - c["log"] ** C) < 1e-9
        assert any(f["code"] == "is_capped" for f in c["flags"])


def test_known_findings_are_in_the_data():
    cells = {(c["scene"], c["model"], c["metric"]): c for c in audit.load_audit()["cells"]}
    gan, hud = cells["IndianPines", "GAN", "FID"], cells["IndianPines", "HUD", "FID"]
    assert round(gan["log"], 2) == hud["paper"] and round(hud["log"], 2) == gan["paper"]  # swapped
    assert gan["agreement"] == hud["agreement"] == "swapped"
    assert cells["Pavia", "HUD", "FID"]["agreement"] == "no_log"
    assert cells["IndianPines", "UD", "D_b"]["agreement"] == "differs"
    ud = next(a for a in audit.load_audit()["averages"] if a["metric"] == "F_p" and a["model"] == "UD")
    assert ud["paper_avg"] == 0.537 and abs(ud["mean_of_paper_rows"] - 0.7378) < 1e-9 and ud["flags"]


def test_views():
    rows = audit.audit_rows("IndianPines")
    assert len(rows) == 30 and {r["scene"] for r in rows} == {"IndianPines"}
    md = audit.audit_markdown("IndianPines")
    assert md.count("\n") == 31 and "fid_swapped" in md
    assert audit.audit_markdown().count("\n") == 151
    f = audit.findings()
    assert len(f) >= 5 and all("[source: " in s for s in f)
    with pytest.raises(ValueError, match="scene"):
        audit.audit_rows("Mars")
