"""Problems the real source series already have are labelled in the DWI VLM data set."""

from __future__ import annotations

import json

import pytest

from lcid.vlm.dwi.build import BuildSettings, build, read_manifest
from lcid.vlm.dwi.native import native_problems, with_native
from lcid.vlm.dwi.text import problems_named
from tests.conftest import real_scan

FOV = {"problem": "fov_cutoff", "severity": "mild", "parameters": {"axis": 2}, "where": {}, "native": True}


def test_with_native_adds_only_what_was_not_injected():
    injected = {"problem": "fov_cutoff", "severity": "severe", "parameters": {"axis": 2}, "where": {}}
    truth = {"problems": [injected], "kept_volumes": [0, 3]}
    assert with_native(truth, [FOV]) == truth
    assert with_native({"problems": [], "kept_volumes": [0]}, [FOV])["problems"] == [FOV]
    clean = {"problems": [], "kept_volumes": [0]}
    assert with_native(clean, []) is clean and clean["problems"] == []


@pytest.mark.integration
def test_the_achieva_vertex_cut_is_native_and_the_elition_is_clean():
    achieva = native_problems(real_scan("philips_achieva")[0])
    assert [(e["problem"], e["severity"], e["parameters"]["axis"]) for e in achieva] == [("fov_cutoff", "mild", 2)]
    assert achieva[0]["parameters"]["edges"] == ["superior"] and achieva[0]["native"]
    assert native_problems(real_scan("philips_elition")[0]) == []


@pytest.mark.integration
def test_pictures_of_a_cut_series_are_labelled_where_the_cut_shows(tmp_path):
    settings = BuildSettings(n=16, seed=3, sources=("philips_achieva",), views_per_scan=8)
    out = build(tmp_path / "data", settings=settings, cache=tmp_path / "cache", progress=False)
    assert json.loads((out / "build.json").read_text())["native"] == {"philips_achieva": {"fov_cutoff": "mild"}}
    rows = read_manifest(out)
    assert {r["plane"] for r in rows} == {"axial", "coronal", "sagittal"}
    for r in rows:
        assert r["native"] == {"fov_cutoff": "mild"}
        if "fov_cutoff" in r["injected"] or (r["findings"] and "fov_cutoff" in r["findings"]):
            continue
        # the superior-inferior axis lies in coronal and sagittal pictures only
        assert ("fov_cutoff" in r["labels"]) == (r["plane"] != "axial"), r
        if "fov_cutoff" in r["labels"]:
            assert r["severities"]["fov_cutoff"] == "mild" and "fov_cutoff" in problems_named(r["answer"])
