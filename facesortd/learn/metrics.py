"""Honest measures for unbalanced emotion data.

Plain accuracy is banned here: where one emotion makes up a large share of the faces, always
answering it scores that share (README, "The measure is out of source"). Balanced accuracy (mean
per-class recall) and accuracy at a given coverage are what tell whether the model helps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facesortd.config import AdoptMetric


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (truth, pred), 1)
    return cm


def balanced_accuracy(cm: np.ndarray) -> float:
    """Mean recall over the classes that occur; chance level is 1 / number of classes."""
    support = cm.sum(axis=1)
    present = support > 0
    if not present.any():
        return 0.0
    return float(np.mean(np.diag(cm)[present] / support[present]))


def coverage_curve(correct: np.ndarray, confidence: np.ndarray) -> list[tuple[float, float, float]]:
    """(threshold, coverage, accuracy of the covered) for each distinct confidence, most confident first.

    Coverage is the share of faces that would be auto-sorted at that threshold.
    """
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(correct[order])
    n = len(order)
    return [(float(confidence[order[i]]), (i + 1) / n, float(hits[i] / (i + 1))) for i in range(n)]


def at_threshold(correct: np.ndarray, confidence: np.ndarray, threshold: float) -> tuple[float, float]:
    """(coverage, accuracy of the covered) when faces below ``threshold`` go to quarantine."""
    take = confidence >= threshold
    coverage = float(take.mean()) if len(take) else 0.0
    accuracy = float(correct[take].mean()) if take.any() else float("nan")
    return coverage, accuracy


def reliability(
    correct: np.ndarray, confidence: np.ndarray, bins: int = 10
) -> list[tuple[float, float, int]]:
    """(mean confidence, accuracy, faces) per non-empty confidence bin: the reliability curve.

    Kept with the held-out figures so a model's calibration can be drawn later without its faces.
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    return [
        (float(confidence[sel].mean()), float(correct[sel].mean()), int(sel.sum()))
        for sel in (idx == b for b in range(bins))
        if sel.any()
    ]


def expected_calibration_error(correct: np.ndarray, confidence: np.ndarray, bins: int = 10) -> float:
    """Mean |confidence - accuracy| over confidence bins, weighted by bin size (0 = perfectly calibrated)."""
    total = sum(n * abs(conf - acc) for conf, acc, n in reliability(correct, confidence, bins))
    return float(total / max(1, len(confidence)))


def share_upper_bound(hits: float, n: float, z: float) -> float:
    """Wilson score upper bound of the share ``hits / n``: the highest true share that ``hits`` of
    ``n`` does not rule out (1.0 when n is 0). Few faces leave it high, so a check against it needs
    evidence, not luck, to fail. ``n`` may be an effective number of faces (weighted ones,
    :meth:`Evaluation.sorted_right_capped`), not a whole one."""
    if n <= 0:
        return 1.0
    p, z2 = hits / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return float(min(1.0, centre + half))


@dataclass
class Evaluation:
    """Everything `train` and `eval` report about predictions on held-out faces."""

    labels: list[str]
    confusion: np.ndarray
    sorted_confusion: np.ndarray = field(repr=False)
    """The confusion of the faces auto-sorted at the threshold alone (rows: true, columns: predicted)."""
    balanced_accuracy: float
    threshold: float
    coverage: float
    accuracy_at_threshold: float
    ece: float
    curve: list[tuple[float, float, float]] = field(repr=False)
    reliability: list[tuple[float, float, int]] = field(default_factory=list, repr=False)

    @classmethod
    def of(
        cls, labels: list[str], truth: np.ndarray, pred: np.ndarray, conf: np.ndarray, threshold: float
    ) -> Evaluation:
        correct = (truth == pred).astype(np.float64)
        cm = confusion_matrix(truth, pred, len(labels))
        coverage, acc = at_threshold(correct, conf, threshold)
        sure = conf >= threshold
        return cls(
            labels=list(labels),
            confusion=cm,
            sorted_confusion=confusion_matrix(truth[sure], pred[sure], len(labels)),
            balanced_accuracy=balanced_accuracy(cm),
            threshold=threshold,
            coverage=coverage,
            accuracy_at_threshold=acc,
            ece=expected_calibration_error(correct, conf),
            curve=coverage_curve(correct, conf),
            reliability=reliability(correct, conf),
        )

    def coverage_at(self, accuracy: float) -> tuple[float, float]:
        """(largest share auto-sorted with at least ``accuracy`` of them right, the threshold that
        gives it); (0, 1) when no threshold gets there."""
        ok = [(c, t) for t, c, a in self.curve if a >= accuracy]
        return max(ok) if ok else (0.0, 1.0)

    @property
    def auto_sorted(self) -> tuple[int, int]:
        """(faces auto-sorted at the threshold, of them right)."""
        n = round(self.coverage * int(self.confusion.sum()))
        right = 0 if n == 0 else round(self.accuracy_at_threshold * n)
        return n, right

    @property
    def support(self) -> np.ndarray:
        """Faces per emotion (of :attr:`labels`), sure or not."""
        return self.confusion.sum(axis=1)

    def sorted_right_capped(self) -> tuple[float, float]:
        """(auto-sorted faces, of them right) with the faces of an emotion that makes up more than
        half of them all counted only as many as all the others' together (each weighs less).

        The plain count is mostly the majority emotion's: of 20 happy faces and 1 sad one, a model
        calling every face happy is right on 20 of the 21 it sorts, whatever it does to sad faces.
        Capped, such a model is right on exactly half of what counts (its majority's, all right; the
        others, all wrong), below any share right asked above 50 %; a model right on the others
        too keeps its share. Labels all of one emotion count as nothing: they cannot tell such a
        model from a good one. Counting every emotion alike instead made one wrong face of an
        emotion labelled once cost a sixth of the share, and refused a retrain that put 29 of 29
        screenshots with a labelled face into the right folder (README, "Reviewing")."""
        support = self.support.astype(np.float64)
        others = support.sum() - support
        weight = np.minimum(1.0, np.divide(others, support, out=np.ones_like(support), where=support > 0))
        return (
            float(weight @ self.sorted_confusion.sum(axis=1)),
            float(weight @ np.diag(self.sorted_confusion)),
        )

    def sorted_right_bounds(self, z: float) -> tuple[float, float]:
        """(lowest, highest) share right of the auto-sorted faces that these labels leave possible at
        confidence ``z`` (:func:`share_upper_bound`), counted both plainly and capped
        (:meth:`sorted_right_capped`): a share is shown only when both counts show it. The retrain
        asks evidence to sort more of the lowest and refuses on the highest, one rule for both sides.
        The plain count alone let the majority's free hits hide a model calling every face so; the
        capped one alone would weigh the majority's mistakes less, and they are files in a wrong
        folder all the same."""
        counts = [self.auto_sorted, self.sorted_right_capped()]
        return (
            min(1 - share_upper_bound(n - right, n, z) for n, right in counts),
            min(share_upper_bound(right, n, z) for n, right in counts),
        )

    def majority(self) -> str | None:
        """The emotion of more than half of the faces (what :meth:`sorted_right_capped` counts less)."""
        support = self.support
        most = int(support.argmax())
        return self.labels[most] if support[most] * 2 > support.sum() else None

    def score(self, metric: AdoptMetric) -> float:
        """One number to compare models by; ``sorted_right`` counts nothing sorted as nothing right."""
        if metric == "balanced_accuracy":
            return self.balanced_accuracy
        if np.isnan(self.accuracy_at_threshold):
            return 0.0
        return self.coverage * self.accuracy_at_threshold

    def summary(self) -> dict[str, object]:
        """JSON-ready figures (stored in model files and printed by --json)."""
        return {
            "balanced_accuracy": round(self.balanced_accuracy, 4),
            "chance": round(1.0 / max(1, len(self.labels)), 4),
            "threshold": self.threshold,
            "coverage": round(self.coverage, 4),
            "accuracy_at_threshold": None
            if np.isnan(self.accuracy_at_threshold)
            else round(self.accuracy_at_threshold, 4),
            "ece": round(self.ece, 4),
            "n": int(self.confusion.sum()),
            "labels": self.labels,
            "confusion": self.confusion.tolist(),
            "reliability": [[round(c, 4), round(a, 4), n] for c, a, n in self.reliability],
        }

    def reliability_text(self) -> str:
        """The reliability curve in words: higher confidence must mean more often right, or the
        threshold means nothing."""
        return ", ".join(f"~{conf:.2f}: {acc:.0%} of {n}" for conf, acc, n in self.reliability)

    def report(self, faces: str) -> str:
        """A human-readable block: headline figures, then the confusion matrix. ``faces`` names what
        was predicted: "held-out faces" for `train`'s cross-validation, plain "faces" for `eval`, which
        may be given the model's own training data (it called every face held out)."""
        s = self.summary()
        width = max(8, *(len(lbl) for lbl in self.labels))
        lines = [
            f"{faces}: {s['n']}",
            f"balanced accuracy: {self.balanced_accuracy:.3f} (chance {s['chance']:.3f})",
            f"at threshold {self.threshold:.2f}: auto-sorts {self.coverage:.1%}, "
            + (
                f"{self.accuracy_at_threshold:.1%} of them right"
                if s["accuracy_at_threshold"] is not None
                else "none sorted"
            ),
            "auto-sorted with 90 % of them right: {:.1%} (threshold {:.2f})".format(*self.coverage_at(0.9)),
            f"calibration error (ECE): {self.ece:.3f}",
            f"share right by confidence: {self.reliability_text()}",
            "confusion matrix (rows: true, columns: predicted):",
            " " * width + " " + " ".join(f"{lbl[:6]:>6}" for lbl in self.labels),
        ]
        for lbl, row in zip(self.labels, self.confusion, strict=True):
            lines.append(f"{lbl:>{width}} " + " ".join(f"{v:>6d}" for v in row))
        return "\n".join(lines)


def headline(summary: object) -> str:
    """One line from a stored :meth:`Evaluation.summary` ("" when there is none): for listings."""
    if not isinstance(summary, dict) or "balanced_accuracy" not in summary:
        return ""
    return (
        f"balanced accuracy {summary['balanced_accuracy']:.2f}, auto-sorts {summary['coverage']:.0%} at "
        f"threshold {summary['threshold']:.2f}"
    )


CHANCE_MARGIN = 0.05
"""A model whose balanced accuracy is within this of chance has learnt next to nothing."""


def near_chance(summary: object) -> bool:
    """Is a stored :meth:`Evaluation.summary` barely better than guessing? (False without figures.)"""
    if not isinstance(summary, dict) or "balanced_accuracy" not in summary:
        return False
    return float(summary["balanced_accuracy"]) < float(summary["chance"]) + CHANCE_MARGIN
