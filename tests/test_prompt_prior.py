"""The prompt prior: a text-only answer model multiplied into a VQA ensemble's answers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from lcid.cli import app
from lcid.errors import InputError
from lcid.io.vqa import read_vqa_split
from lcid.vlm.ensemble import VLMEnsemble
from lcid.vlm.inference import load_model, resolve_model
from lcid.vlm.predict import Prediction, final_answer
from lcid.vlm.prompt import build_prompt
from lcid.vlm.prompt_prior import PromptPrior, blend, choose_weight, fit_classifier, head_matrix, training_split
from tests.conftest import SHARED_DATA
from tests.test_vlm_cli_train import RECIPE, _data

PROMPTS = ["question: is there a mass? answer:", "question: is there a mass in the lung? answer:",
           "question: is this normal? answer:", "question: is the study normal? answer:",
           "question: which lobe? answer:", "question: which lobe is affected? answer:"]
ANSWERS = ["yes", "yes", "no", "no", "left lobe", "left lobe"]
runner = CliRunner()


def test_blend_is_a_normalised_weighted_geometric_mean():
    model = np.array([[0.8, 0.2], [0.5, 0.5]])
    prior = np.array([[0.2, 0.8], [0.9, 0.1]])
    assert blend(model, prior, 0.0) == pytest.approx(model)
    assert blend(model, prior, 0.5)[0] == pytest.approx([0.5, 0.5])
    raw = model[1] ** 0.75 * prior[1] ** 0.25
    assert blend(model, prior, 0.25)[1] == pytest.approx(raw / raw.sum())
    assert blend(model, prior, 0.3).sum(axis=1) == pytest.approx([1.0, 1.0])


def test_choose_weight_maximises_the_held_out_likelihood():
    confident_right = np.array([[0.9, 0.1], [0.1, 0.9]])
    uniform = np.full((2, 2), 0.5)
    # a prior that knows nothing should get no weight; a model that knows nothing, the most
    assert choose_weight(confident_right, uniform, [0, 1])[0] == 0.0
    weight, nll = choose_weight(uniform, confident_right, [0, 1, None])
    assert weight == 0.9 and nll[0.9] < nll[0.5] < nll[0.0] == pytest.approx(np.log(2))
    with pytest.raises(InputError, match="no held-out question"):
        choose_weight(uniform, uniform, [None, None])


def test_prior_follows_the_head_labels_and_saves_and_loads(tmp_path):
    prior = PromptPrior(fit_classifier(PROMPTS, ANSWERS), 0.3, {"questions": 6})
    labels = ("no", "yes", "never seen", "left lobe")
    probs = prior.probabilities(["question: is there a mass in the brain? answer:"], labels)
    assert probs.shape == (1, 4) and probs.sum() == pytest.approx(1.0)
    assert probs[0, 1] > probs[0, 0] and probs[0, 2] < 1e-4
    mean = Prediction(generated="no", head=(("no", 0.6), ("yes", 0.3), ("left lobe", 0.1), ("never seen", 0.0)))
    blended = prior.apply([mean], ["question: is there a mass in the brain? answer:"], labels)[0]
    assert blended.generated == "no" and [p for _, p in blended.head] == sorted((p for _, p in blended.head), reverse=True)
    assert dict(blended.head)["yes"] > 0.3
    assert head_matrix([blended], labels) == pytest.approx(blend(head_matrix([mean], labels), probs, 0.3))

    assert PromptPrior.load(tmp_path) is None
    prior.save(tmp_path)
    loaded = PromptPrior.load(tmp_path)
    assert loaded.weight == 0.3 and loaded.record["questions"] == 6
    assert loaded.probabilities(PROMPTS, labels) == pytest.approx(prior.probabilities(PROMPTS, labels))
    record = json.loads((tmp_path / "prompt_prior.json").read_text())
    (tmp_path / "prompt_prior.json").write_text(json.dumps({**record, "weight": "heavy"}))
    with pytest.raises(InputError, match="no numeric weight"):
        PromptPrior.load(tmp_path)
    (tmp_path / "prompt_prior.skops").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="cannot read .*prompt_prior.skops"):
        PromptPrior.load(tmp_path)
    with pytest.raises(InputError, match=r"weight must be in \[0, 1\)"):
        PromptPrior(prior.classifier, 1.0)
    with pytest.raises(InputError, match="two different answers"):
        fit_classifier(PROMPTS[:2], ANSWERS[:2])


def _train(tmp_path, name: str, extra: str = "") -> str:
    (tmp_path / f"{name}.yaml").write_text(RECIPE + extra)
    out = runner.invoke(app, ["train", "vqa", "--data", "vqa-rad", str(tmp_path / "data"), "--config",
                              str(tmp_path / f"{name}.yaml"), "--out", str(tmp_path / name)])
    assert out.exit_code == 0, out.output
    return str(tmp_path / name / "model")


def test_cli_prior_on_a_trained_ensemble(tmp_path):
    _data(tmp_path / "data")
    held = _train(tmp_path, "held", "holdout_fraction: 0.34\n")
    out = runner.invoke(app, ["model", "ensemble", held, held, "--out", str(tmp_path / "ens")])
    assert out.exit_code == 0, out.output
    before = VLMEnsemble.from_pretrained(tmp_path / "ens")
    assert before.prior is None

    out = runner.invoke(app, ["model", "prior", str(tmp_path / "ens")])
    assert out.exit_code == 0, out.output
    assert "<- chosen" in out.stdout and "4 training questions" in out.stdout
    record = json.loads((tmp_path / "ens" / "prompt_prior.json").read_text())
    assert record["questions"] == 4 and record["weight_chosen_on"]["held_out_questions"] == 2
    assert "lcid model prior" in record["command"] and record["data"]["holdout_fraction"] == 0.34
    assert "text-only answer model" in (tmp_path / "ens" / "README.md").read_text()
    after = VLMEnsemble.from_pretrained(tmp_path / "ens")
    assert after.prior is not None and after.prior.weight == record["weight"]
    image, prompt = [np.zeros((40, 48), np.float32)], ["question: is there a mass? answer:"]
    assert dict(after.predict_images(image, prompt)[0].head) == pytest.approx(
        dict(after.prior.apply(before.predict_images(image, prompt), prompt, before.cfg.head_labels)[0].head))

    # a fixed weight; refusals: no hold-out to choose on, a single model, a weight out of range
    out = runner.invoke(app, ["model", "prior", str(tmp_path / "ens"), "--weight", "0.5"])
    assert out.exit_code == 0 and VLMEnsemble.from_pretrained(tmp_path / "ens").prior.weight == 0.5
    full = _train(tmp_path, "full")
    runner.invoke(app, ["model", "ensemble", full, full, "--out", str(tmp_path / "ens-full")])
    for args, message in [([str(tmp_path / "ens-full")], "held out no questions"),
                          ([full], "not an ensemble folder"),
                          ([str(tmp_path / "ens"), "--weight", "1.5"], "weight must be in")]:
        out = runner.invoke(app, ["model", "prior", *args])
        assert out.exit_code == 2 and out.stderr.count("\n") == 1 and message in out.stderr, out.output
    assert not (tmp_path / "ens-full" / "prompt_prior.json").exists()


@pytest.mark.integration
@pytest.mark.slow
def test_shipped_vqa_rad_prior_is_reproduced_from_its_record():
    folder = resolve_model("vqa-rad")
    shipped = PromptPrior.load(folder)
    assert shipped.weight == 0.3 and shipped.record["questions"] == 3064 and "lcid model prior" in shipped.record["command"]
    model = load_model("vqa-rad")
    assert model.prior is not None
    kept, held, source = training_split(folder, data_dir=SHARED_DATA / "vqa_rad")
    assert len(kept) == 3064 and not held and source["format"] == "vqa-rad"
    refit = PromptPrior(fit_classifier([build_prompt(s.question) for s in kept], [s.answer for s in kept],
                                       C=shipped.record["C"]), shipped.weight)
    test = read_vqa_split(SHARED_DATA / "vqa_rad", split="test")[:40]
    prompts, labels = [build_prompt(s.question) for s in test], model.cfg.head_labels
    assert refit.probabilities(prompts, labels) == pytest.approx(shipped.probabilities(prompts, labels), abs=1e-4)
    # the text alone answers closed test questions well above the majority answer (docs/vqa.md)
    closed = [s for s in test if s.answer_type == "closed"]
    probs = shipped.probabilities([build_prompt(s.question) for s in closed], labels)
    answers = [final_answer(model, Prediction("", tuple(sorted(zip(labels, row), key=lambda t: -t[1]))),
                            question=s.question) for s, row in zip(closed, probs, strict=True)]
    assert sum(a == s.answer for a, s in zip(answers, closed, strict=True)) / len(closed) > 0.6
