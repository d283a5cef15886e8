"""What `facesortd train` runs: hold out a validation set, measure the model out of source by grouped
cross-validation, then fit it on every other face and calibrate it on those out-of-source predictions.

The command line only reads the options and shows the result, so a benchmark can run the same training.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from facesortd.cores import usable_cores
from facesortd.descriptors import LEARNT
from facesortd.durable import replace_dropping
from facesortd.ensemble import Model
from facesortd.faces import FaceSpec
from facesortd.learn.datasets import DatasetError
from facesortd.learn.feature_net_training import NetSettings
from facesortd.learn.metrics import Evaluation
from facesortd.learn.training import (
    FaceSet,
    Predictions,
    described,
    described_mirrors,
    emotion_fitter,
    fit_and_validate,
    holdout_split,
    predict_set,
)
from facesortd.model_store import validation_path


@dataclass
class TrainRun:
    """A trained model and the figures it was judged by."""

    model: Model
    data: FaceSet
    """The faces it was trained on (the validation set held out)."""
    validation: FaceSet | None
    predictions: Predictions
    """Every face of ``data``, predicted by a model that never saw its source."""
    held_out: Evaluation | None
    """The model on ``validation``."""
    seconds: float

    def save(self, out: Path) -> None:
        """The model file, and beside it the validation set that retraining must not get worse on
        (see learn/retrain.py). A set already there was held out from the model ``out`` replaces,
        and its faces may be in this one's training data: it goes before the new model takes the
        name, also when none is held out now (``--validation-share 0``), so no retrain (nor `model
        use`, which copies it along) ever judges the new model on faces it has seen."""
        replace_dropping(out, self.model.save, stale=validation_path(out))
        self.save_validation(out)

    def save_validation(self, model: Path) -> None:
        """The validation set beside ``model`` (just written under a new name): none held out, any
        file of that name is another's, left by a model deleted since, and goes."""
        held = validation_path(model)
        if self.validation is not None:
            self.validation.save(held)
        else:
            held.unlink(missing_ok=True)


def train_model(
    collected: FaceSet,
    *,
    spec: FaceSpec,
    descriptors: Sequence[str],
    pca: int,
    net_settings: NetSettings | None,
    source_balance: float,
    folds: int,
    validation_share: float,
    threshold: float,
    info: Mapping[str, object],
    mirror: bool = False,
) -> TrainRun:
    """A model from ``collected``; ``model.info`` keeps ``info`` (what the caller trained it from),
    then the out-of-source figures. A net is trained per fold and for the model only when
    ``net_settings`` is given; ``mirror``: see :func:`emotion_fitter`."""
    data, validation = holdout_split(collected, validation_share)
    if len(left := set(data.labels)) < 2:  # fit's own ValueError was a traceback
        # none left was "faces of one emotion only ()"
        leaves = f"faces of one emotion only ({', '.join(left)})" if left else "no faces"
        raise DatasetError(
            f"too few faces: the validation set held out (--validation-share {validation_share}) leaves "
            f"{leaves} to train on: add faces, or --validation-share 0"
        )
    fit = emotion_fitter(spec, descriptors, pca, net_settings, source_balance, mirror)
    started = time.perf_counter()
    trains_net = net_settings is not None
    # Every fold sees the same features of a descriptor, so they are computed once (not a net
    # that is being trained: each fold has its own). Folds are fitted side by side, except while
    # training nets: PyTorch's seeded generator is one for the whole process.
    cores = usable_cores()
    fixed = [d for d in descriptors if not (trains_net and d == LEARNT)]
    data.features = described(data.faces, fixed, cores)
    if mirror:
        data.features |= described_mirrors(data.faces, fixed, cores)
    # Without a net to train, the fits read only those features: each fold's part then copies no
    # images (0.3 GB a fold at 20,000 faces, two folds at once).
    fitted = data if trains_net else data.features_only()
    model, predictions = fit_and_validate(fitted, fit, folds, 1 if trains_net else cores)
    evaluation = predictions.evaluation(threshold)
    seconds = time.perf_counter() - started
    model.info.update(
        {
            **info,
            "held_out": evaluation.summary(),
            "validation": f"grouped {folds}-fold cross-validation"
            + (", a feature net trained per fold" if trains_net else ""),
            "train_seconds": round(seconds, 1),
        }
    )
    if predictions.members:
        model.info["members_held_out"] = {
            d: p.evaluation(threshold).summary() for d, p in predictions.members.items()
        }
    held_out = predict_set(model, validation).evaluation(threshold) if validation is not None else None
    if held_out is not None:
        model.info["bootstrap_validation"] = held_out.summary()
    return TrainRun(model, data, validation, predictions, held_out, seconds)
