"""A picture-only classifier over slice statistics, combined with a DWI ensemble's problem head.

The ensemble's CNNs see low resolution, noise and a cut field of view, but miss ghosts,
spikes, dropped slices and motion combs that the measurements of
:mod:`lcid.vlm.dwi.slice_statistics` show plainly (docs/vlm.md). One gradient-boosted tree
classifier per image-visible problem (scikit-learn's ``HistGradientBoostingClassifier``) reads
those statistics; its probability and the ensemble's mean head probability are combined as
two independent pieces of evidence (noisy-OR):

    p = 1 - (1 - p_ensemble) * (1 - p_statistics).

Noisy-OR has no weight to fit, and it never lowers what the ensemble says: a problem named by
``lcid check`` findings in the prompt (which the classifier cannot read) stays named. The
ensemble's thresholds are then chosen again for the combined probabilities.

The classifier is fitted on the pictures of the scans the members were fitted on (labels:
what the picture shows, :func:`lcid.vlm.dwi.probe.picture_labels`); when the members' recipe
adds a Rician noise floor (``scanner_augment.noise_floor``), each picture is used once more with
a floor drawn in the same range, so the classifier does not take a scanner's noise floor for
ringing. It is saved with skops (no pickle) as ``slice_statistics.skops`` beside
``slice_statistics.json`` in the ensemble folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lcid.errors import InputError
from lcid.io.estimator_files import read_estimator, write_estimator
from lcid.vlm.dwi.scanner_augment import ScannerAugment, draw_floor, rician_floor
from lcid.vlm.dwi.slice_statistics import STATISTICS, slice_statistics
from lcid.vlm.dwi.visibility import IMAGE_VISIBLE
from lcid.vlm.predict import Prediction

MODEL_FILE = "slice_statistics.skops"
RECORD_FILE = "slice_statistics.json"
#: Gradient boosting settings: scikit-learn's defaults with a slower learning rate, more rounds
#: and an L2 penalty, fixed before any held-out score was computed (docs/vlm.md).
BOOSTING = {"max_iter": 300, "learning_rate": 0.05, "max_leaf_nodes": 15, "l2_regularization": 1.0}
#: The one scikit-learn type of a fitted gradient-boosting model that skops does not trust by
#: default (its fitted trees); loading trusts it and nothing else beyond skops' defaults.
#: Fewest training pictures showing a problem, and not showing it, for the classifier to learn it;
#: problems with fewer are left to the ensemble alone.
MIN_PICTURES = 10
#: Seed of the noise floors drawn for the classifier's second copy of the training pictures.
FLOOR_SEED = 0
TRUSTED_TYPES = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]


def fit_classifier(statistics: np.ndarray, targets: np.ndarray) -> Any:
    """One gradient-boosted tree classifier per column of ``targets`` (``(N, P)`` booleans) on
    ``statistics`` (``(N, len(STATISTICS))``), as one scikit-learn ``MultiOutputClassifier``."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.multioutput import MultiOutputClassifier

    targets = np.asarray(targets, dtype=int)
    if statistics.shape[0] != targets.shape[0] or statistics.shape[1] != len(STATISTICS):
        raise InputError(f"{statistics.shape[0]} pictures of {statistics.shape[1]} statistics do not fit "
                         f"{targets.shape[0]} label rows of {len(STATISTICS)}-statistic pictures")
    lacking = [j for j in range(targets.shape[1]) if len(set(targets[:, j])) < 2]
    if lacking:
        raise InputError(f"the training pictures need both present and absent cases of every problem; "
                         f"column(s) {lacking} have one kind only")
    model = MultiOutputClassifier(HistGradientBoostingClassifier(**BOOSTING, random_state=0))
    return model.fit(statistics, targets)


class SliceStatisticsModel:
    """The fitted classifier, the problems it answers and how it was fitted."""

    def __init__(self, classifier: Any, problems: Sequence[str], record: dict[str, Any] | None = None) -> None:
        if len(classifier.estimators_) != len(problems):
            raise InputError(f"the slice-statistics classifier has {len(classifier.estimators_)} outputs "
                             f"for {len(problems)} problems")
        self.classifier = classifier
        self.problems = tuple(problems)
        self.record = dict(record or {})

    def probabilities(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """``(len(images), len(problems))`` probability that each picture shows each problem."""
        statistics = np.stack([slice_statistics(image) for image in images])
        return np.stack([p[:, 1] for p in self.classifier.predict_proba(statistics)], axis=1)

    def apply(self, predictions: Sequence[Prediction], images: Sequence[np.ndarray]) -> list[Prediction]:
        """The predictions with the problems' head probabilities combined by noisy-OR (:func:`noisy_or`);
        labels the classifier does not answer are unchanged."""
        ours = self.probabilities(images)
        out = []
        for prediction, row in zip(predictions, ours, strict=True):
            extra = dict(zip(self.problems, row, strict=True))
            head = [(label, noisy_or(p, extra[label]) if label in extra else p) for label, p in prediction.head]
            out.append(Prediction(generated=prediction.generated, head=tuple(sorted(head, key=lambda lp: -lp[1]))))
        return out

    # ------------------------------------------------------------------ files
    def save(self, folder: str | Path) -> None:
        """Write ``slice_statistics.skops`` and ``slice_statistics.json`` into ``folder``."""
        record = {**self.record, "problems": list(self.problems), "statistics": list(STATISTICS)}
        write_estimator(folder, MODEL_FILE, self.classifier, RECORD_FILE, record)

    @classmethod
    def load(cls, folder: str | Path) -> SliceStatisticsModel | None:
        """The classifier saved in ``folder``; ``None`` when it has none."""
        saved = read_estimator(folder, MODEL_FILE, RECORD_FILE, trusted=TRUSTED_TYPES)
        if saved is None:
            return None
        classifier, record = saved
        if list(record.get("statistics") or []) != list(STATISTICS):
            raise InputError(f"{Path(folder) / RECORD_FILE} was fitted on other slice statistics than this lcid "
                             "computes: refit it with lcid model statistics")
        return cls(classifier, record.get("problems") or [], record)


def floored_statistics(pictures: Sequence[np.ndarray], augment: ScannerAugment) -> np.ndarray:
    """The statistics of each picture again with a Rician noise floor drawn as the members' training
    drew it (:func:`lcid.vlm.dwi.scanner_augment.draw_floor` and ``rician_floor``; seeded with
    :data:`FLOOR_SEED`), so that the classifier learns the members' invariance: another scanner's
    noise floor is no artifact."""
    import torch

    from lcid.vlm.dwi.slice_statistics import display_scaled

    generator = torch.Generator().manual_seed(FLOOR_SEED)
    out = []
    for picture in tqdm(pictures, desc="slice statistics, noise floor", leave=False):
        relative, grain = draw_floor(augment, generator=generator)
        pixels = torch.from_numpy(display_scaled(picture))[None]
        floored = rician_floor(pixels, relative, grain, generator=generator)
        out.append(slice_statistics(floored[0].numpy()))
    return np.stack(out)


def noisy_or(p: float, q: float) -> float:
    """Probability that at least one of two independent pieces of evidence is right.

    >>> noisy_or(0.5, 0.5)
    0.75
    """
    return 1.0 - (1.0 - float(p)) * (1.0 - float(q))


def fit_ensemble_statistics(
    folder: str | Path, *, data_dir: str | Path | None = None, command: str = "", min_pictures: int = MIN_PICTURES
) -> tuple[SliceStatisticsModel, dict[str, Any]]:
    """Fit the slice-statistics classifier for a DWI ensemble, save it into the folder and choose
    the ensemble's thresholds again for the combined probabilities.

    Parameters
    ----------
    folder
        Ensemble folder with a multi-label problem head whose members kept training scans out
        of fitting (their ``training.json``).
    data_dir
        The data set the members were trained on (default: the recorded folder).
    command
        The command line, recorded in ``slice_statistics.json``.
    min_pictures
        Fewest training pictures with, and without, a problem for the classifier to learn it.

    Returns
    -------
    (model, thresholds record)
    """
    from lcid.vlm.dwi.build import read_manifest
    from lcid.vlm.dwi.calibrate import calibrate, fitted_record, validation_rows
    from lcid.vlm.dwi.probe import picture_labels
    from lcid.vlm.ensemble import ENSEMBLE_FILE, VLMEnsemble
    from lcid.vlm.image import load_image
    from lcid.vlm.model import write_thresholds

    folder = Path(folder)
    if not (folder / ENSEMBLE_FILE).is_file():
        raise InputError(f"{folder} is not an ensemble folder; slice statistics are added to one "
                         "(make it with lcid model ensemble)")
    ensemble = VLMEnsemble.from_pretrained(folder)
    if ensemble.cfg.head != "multilabel":
        raise InputError(f"{folder} has a {ensemble.cfg.head} head; slice statistics are for DWI problem heads")
    training = fitted_record(folder) or {}
    data = Path(data_dir) if data_dir is not None else Path(str((training.get("data") or {}).get("dir") or ""))
    if not (data / "manifest.jsonl").is_file():
        raise InputError(f"{data} is not a data set from lcid data build-vlm (no manifest.jsonl); give --data")
    validation, source = validation_rows(data, training, split=None)
    kept_out = {r["id"] for r in validation}
    fitted = [r for r in read_manifest(data, split="train") if r["id"] not in kept_out]
    labels = picture_labels(fitted, IMAGE_VISIBLE)
    keys = sorted(labels)
    counts = {p: sum(p in labels[k] for k in keys) for p in IMAGE_VISIBLE if p in ensemble.cfg.head_labels}
    problems = [p for p, n in counts.items() if min_pictures <= n <= len(keys) - min_pictures]
    if not problems:
        raise InputError(f"no image-visible problem is shown by at least {min_pictures} of the {len(keys)} "
                         "training pictures (and absent from as many): too little data for slice statistics")
    augment = ScannerAugment.from_dict((training.get("settings") or {}).get("scanner_augment") or {})
    pictures = [load_image(k) for k in tqdm(keys, desc="slice statistics", leave=False)]
    statistics = np.stack([slice_statistics(p) for p in pictures])
    targets = np.array([[p in labels[k] for p in problems] for k in keys])
    if augment.noise_floor > 0:
        statistics = np.concatenate([statistics, floored_statistics(pictures, augment)])
        targets = np.concatenate([targets, targets])
    classifier = fit_classifier(statistics, targets)
    record = {"command": command, "classifier": f"HistGradientBoostingClassifier per problem {BOOSTING}",
              "combine": "noisy-OR with the ensemble's mean head probability",
              "noise_floor": {"max": augment.noise_floor, "grain": list(augment.noise_grain), "seed": FLOOR_SEED}
              if augment.noise_floor > 0 else None,
              "data": {"dir": str(data), "pictures": len(keys), "positives": dict(zip(problems, map(int, targets.sum(0)), strict=True))}}
    model = SliceStatisticsModel(classifier, problems, record)
    ensemble.statistics = model
    thresholds = calibrate(ensemble, validation, source=source)
    model.save(folder)
    write_thresholds(folder, ensemble.thresholds, thresholds)
    return model, thresholds
