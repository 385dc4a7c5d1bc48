"""The DWI VLM data set: honest labels, acquisition text, answers, a seeded build with a manifest."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from lcid.cli import app
from lcid.dwi.vocabulary import PROBLEM_IDS
from lcid.vlm.dwi.build import BuildSettings, build, check_findings, read_manifest, split_of
from lcid.vlm.dwi.text import (
    QUESTIONS,
    acquisition_facts,
    acquisition_text,
    problems_named,
    random_acquisition,
    reference_answer,
)
from lcid.vlm.dwi.visibility import IMAGE_VISIBLE, INVISIBLE, TEXT_VISIBLE, SliceView, visible_labels

AXIAL, CORONAL = 2, 1


def view(volume: int, axis: int, index: int) -> SliceView:
    return SliceView(volume=volume, axis=axis, index=index, slice_axis=2, pe_axis=1)


def test_every_problem_is_classified_once():
    assert sorted((*IMAGE_VISIBLE, *TEXT_VISIBLE, *INVISIBLE)) == sorted(PROBLEM_IDS)


def test_dropout_is_labelled_only_where_the_picture_shows_it():
    truth = {"problems": [{"problem": "missing_slices", "severity": "severe",
                           "parameters": {"events": [{"volume": 3, "slices": [17], "fraction_lost": 0.9},
                                                     {"volume": 5, "slices": [9], "fraction_lost": 0.4}]},
                           "where": {"pairs": [[3, 17], [5, 9]]}}]}
    assert visible_labels(truth, view(3, AXIAL, 17), acq_facts=None) == ("missing_slices",)
    assert visible_labels(truth, view(3, AXIAL, 16), acq_facts=None) == ()  # another slice
    assert visible_labels(truth, view(2, CORONAL, 30), acq_facts=None) == ()  # another volume
    assert visible_labels(truth, view(3, CORONAL, 30), acq_facts=None) == ("missing_slices",)  # a dark band
    # a 40 % loss is rescaled away in its own slice's picture, but shows as a band across others
    assert visible_labels(truth, view(5, AXIAL, 9), acq_facts=None) == ()
    assert visible_labels(truth, view(5, CORONAL, 30), acq_facts=None) == ("missing_slices",)


def test_motion_eddy_and_tables_are_not_read_from_one_image():
    truth = {"problems": [
        {"problem": "motion", "parameters": {"mode": "inter_volume"}, "where": {"volumes": [2]}},
        {"problem": "eddy_current", "parameters": {}, "where": {"volumes": [1, 2]}},
        {"problem": "few_directions", "parameters": {}, "where": {}},
    ]}
    assert visible_labels(truth, view(2, CORONAL, 10), acq_facts=None) == ()
    interleaved = {"problems": [{"problem": "motion", "parameters": {"mode": "interleaved"}, "where": {"volumes": [2]}}]}
    assert visible_labels(interleaved, view(2, AXIAL, 10), acq_facts=None) == ()
    assert visible_labels(interleaved, view(2, CORONAL, 10), acq_facts=None) == ("motion",)
    facts = {"best_directions": 12, "bad_vectors": 2}
    assert visible_labels({"problems": []}, view(0, AXIAL, 5), acq_facts=facts) == ("few_directions", "gradient_table")
    assert visible_labels({"problems": []}, view(0, AXIAL, 5), acq_facts={"best_directions": 64, "bad_vectors": 0}) == ()


def test_acquisition_facts_and_text():
    bvals = np.array([0, 1000, 1000, 2000, 2000])
    bvecs = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0.5]])
    facts = acquisition_facts(bvals, bvecs)
    assert facts["dw_shells"] == [1000, 2000] and facts["n_b0"] == 1 and facts["bad_vectors"] == 2
    assert acquisition_text(facts, style=0).startswith("2 directions, b = 0 to 2000; 2 b-vectors")
    assert "bvec file" in acquisition_text(facts, style=2)


def test_answers_name_exactly_their_problems():
    for i, question in enumerate(QUESTIONS):
        for labels in [(), ("noise",), ("ghosting", "spikes"), ("few_directions",)]:
            answer = reference_answer(question, labels, severities={}, fields={}, variant=i)
            assert set(problems_named(answer)) == set(labels), answer
            assert "{" not in answer


def test_findings_add_what_the_series_check_reports():
    truth = {"problems": [{"problem": "eddy_current", "severity": "moderate"}]}
    assert check_findings(truth, {"best_directions": 20}) == {"eddy_current": "moderate", "few_directions": "mild"}
    assert split_of("philips_achieva") == "test" and split_of("philips_elition") == "train"
    # an injected cut follows the stated table: a 64-direction text is not short of directions
    cut = {"problems": [{"problem": "few_directions", "severity": "severe"}]}
    assert check_findings(cut, {"best_directions": 64}) == {}
    assert check_findings(cut, {"best_directions": 4}) == {"few_directions": "severe"}


def test_random_acquisitions_cross_the_30_direction_rule():
    rng = np.random.default_rng(0)
    own = {"n_volumes": 17, "n_b0": 1, "dw_shells": [1000], "best_directions": 16, "bad_vectors": 2, "voxel_mm": [2, 2, 2]}
    drawn = [random_acquisition(rng, own) for _ in range(200)]
    counts = [d["best_directions"] for d in drawn]
    assert min(counts) >= 6 and max(counts) <= 150
    assert 0.3 < np.mean([c < 30 for c in counts]) < 0.7  # both sides of the rule, often
    assert len({tuple(d["dw_shells"]) for d in drawn}) > 20
    assert all(d["bad_vectors"] == 2 and d["voxel_mm"] == [2, 2, 2] for d in drawn)  # kept from the series
    for d in drawn[:20]:
        labels = visible_labels({"problems": []}, view(0, AXIAL, 5), acq_facts=d)
        assert ("few_directions" in labels) == (d["best_directions"] < 30)
        assert f"{d['best_directions']} directions" in acquisition_text(d, style=0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("dwi")
    settings = BuildSettings(n=20, seed=7, sources=("phantom_0", "phantom_2"), views_per_scan=4,
                             phantom_shape=(24, 24, 16))
    first = build(root / "a", settings=settings, cache=root / "cache", progress=False)
    second = build(root / "b", settings=settings, cache=root / "cache", progress=False)  # from the cache
    return first, second


def test_build_is_deterministic_and_the_manifest_valid(tiny):
    first, second = tiny
    assert (first / "manifest.jsonl").read_bytes() == (second / "manifest.jsonl").read_bytes()
    images = sorted(p.name for p in (first / "images").iterdir())
    assert len(images) == 20
    assert all((first / "images" / n).read_bytes() == (second / "images" / n).read_bytes() for n in images)
    rows = read_manifest(first)
    assert len(rows) == 40
    for r in rows:
        assert set(r["labels"]) <= set(PROBLEM_IDS)
        assert set(problems_named(r["answer"])) == set(r["labels"])
        assert r["plane"] in ("axial", "coronal", "sagittal") and r["question"] in QUESTIONS
        assert r["split"] == ("test" if r["source"] == "phantom_2" else "train")
        if r["acq"] is None:
            assert not set(r["labels"]) & {"few_directions", "gradient_table"} or r["findings"]
        if r["acq"] is not None and not r["findings"]:  # the text's count decides few_directions
            count = int(re.search(r"(\d+) directions", r["acq"]).group(1))
            assert ("few_directions" in r["labels"]) == (count < 30), r["acq"]
        for p in r["labels"]:
            assert p in IMAGE_VISIBLE or p in TEXT_VISIBLE or (r["findings"] and p in r["findings"])
    assert {r["split"] for r in rows} == {"train", "test"}
    assert json.loads((first / "build.json").read_text())["seed"] == 7
    counts = [int(re.search(r"(\d+) directions", r["acq"]).group(1)) for r in rows if r["acq"]]
    assert any(c >= 30 for c in counts) and any(c < 30 for c in counts)


def test_stats_command_plots_and_prints(tiny):
    first, _ = tiny
    result = CliRunner().invoke(app, ["data", "stats", str(first), "--examples", "2"])
    assert result.exit_code == 0, result.output
    assert "questions on 20 pictures" in result.output and "Q: " in result.output
    assert (first / "stats.png").stat().st_size > 1000


def test_build_refuses_an_unknown_source(tmp_path):
    result = CliRunner().invoke(app, ["data", "build-vlm", "--out", str(tmp_path / "x"), "--n", "2",
                                      "--sources", "nonsense", "--no-cache"])
    assert result.exit_code == 2 and "unknown source nonsense" in result.output
