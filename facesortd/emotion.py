"""EmotionModel: the Fisherface method (PCA then LDA, nearest class mean) with calibrated confidence.

Written in numpy rather than wrapping ``cv2.face.FisherFaceRecognizer``: OpenCV's version
eigen-decomposes full matrices, far too slow for the faces a training set holds; a truncated PCA
plus a small LDA is not (README, "Architecture", has the times). ``tests/test_emotion.py`` checks
that both agree on a small set.

Confidence: the LDA space is whitened within classes, so a class's log-likelihood is
``-0.5 * squared distance`` to its mean. A single temperature, fitted on held-out faces, turns the
softmax of those into probabilities that match observed accuracy (temperature scaling).
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from facesortd.advice import advised
from facesortd.descriptors import LEARNT, describe
from facesortd.durable import open_regular, read_npz, write_npz
from facesortd.faces import FaceSpec, mirror_faces
from facesortd.feature_net import NET_PREFIX, FeatureNet, FeatureNetError, shipped_net

FORMAT_VERSION = 2
"""2: one pooled within-class scatter matrix instead of one per class (files smaller by about
the class count); version 1 files are still read (their per-class matrices are summed on loading)."""
MODEL_SUFFIX = ".fsm.npz"
PCA_COMPONENTS = 150
"""Most PCA components kept before LDA: `train --pca`'s default, and what a retrain with no model to
update fits with."""
FORMAT = "facesortd-emotion-model"


class ModelError(Exception):
    """A model file is missing, corrupt or of another format version; the message says what to do."""


@dataclass
class ClassStats:
    """Weighted count and mean of each class in PCA space, and the within-class scatter pooled over
    classes: all LDA needs.

    Kept in the model file so a model can be updated with new labelled faces (a user's reviews,
    a new emotion folder) without the data it was first trained on, which users do not have. One
    pooled (k, k) matrix suffices for exact updates because merging adds each class's between-
    sample term to the sum; per-class matrices would multiply the file size by the class count.
    """

    weight: np.ndarray
    mean: np.ndarray
    scatter: np.ndarray

    @classmethod
    def of(cls, z: np.ndarray, y: np.ndarray, w: np.ndarray, n_classes: int) -> ClassStats:
        k = z.shape[1]
        weight, mean, scatter = np.zeros(n_classes), np.zeros((n_classes, k)), np.zeros((k, k))
        for c in range(n_classes):
            zc, wc = z[y == c], w[y == c]
            if len(zc):
                weight[c] = wc.sum()
                mean[c] = np.average(zc, axis=0, weights=wc)
                d = zc - mean[c]
                scatter += (d * wc[:, None]).T @ d
        return cls(weight, mean, scatter)

    def merged(self, other: ClassStats) -> ClassStats:
        """Statistics of the union of both samples (the parallel-variance formula, summed over classes)."""
        w = self.weight + other.weight
        safe = np.where(w > 0, w, 1.0)
        mean = (self.weight[:, None] * self.mean + other.weight[:, None] * other.mean) / safe[:, None]
        delta = self.mean - other.mean
        cross = (delta * (self.weight * other.weight / safe)[:, None]).T @ delta
        return ClassStats(w, mean, self.scatter + other.scatter + cross)

    def padded(self, n_classes: int) -> ClassStats:
        """The same statistics with empty classes appended (for labels the model has not seen)."""
        extra = n_classes - len(self.weight)
        k = self.mean.shape[1]
        return ClassStats(
            np.r_[self.weight, np.zeros(extra)], np.r_[self.mean, np.zeros((extra, k))], self.scatter
        )


class Calibrated:
    """What every emotion model answers, given its ``logits``, ``labels``, ``temperature`` and ``info``:
    calibrated probabilities, one (emotion, confidence) per face, and a version for logs."""

    labels: list[str]
    temperature: float
    info: dict[str, Any]

    def logits(self, faces: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        """(n, classes) calibrated probabilities, columns in ``self.labels`` order."""
        return softmax(self.logits(faces) / self.temperature)

    def predict(self, faces: np.ndarray) -> list[tuple[str, float]]:
        """(emotion, confidence in [0, 1]) per face."""
        if len(faces) == 0:
            return []
        proba = self.predict_proba(faces)
        best = proba.argmax(axis=1)
        return [(self.labels[b], float(proba[i, b])) for i, b in enumerate(best)]

    @property
    def version(self) -> str:
        """Short identifier shown in logs and status (creation time, or 'unsaved')."""
        return str(self.info.get("created", "unsaved"))


def mirror_adds(descriptor: str) -> bool:
    """Whether a face's mirror image is a new training row for this descriptor: not for ``cnn``,
    whose net's features are those of a face and its mirror averaged."""
    return descriptor != LEARNT


@dataclass
class EmotionModel(Calibrated):
    """A trained emotion classifier over normalised faces (see faces.normalise_face).

    ``projection`` (features -> LDA space) and ``class_means`` are derived from the PCA basis and
    the class statistics; they are computed once at construction. ``net`` is the feature net of
    a ``cnn`` model, kept in the model file so a later change of the shipped net cannot
    silently change what an existing model sees.
    """

    labels: list[str]
    spec: FaceSpec
    descriptor: str
    mean: np.ndarray
    pca: np.ndarray
    stats: ClassStats
    regularisation: float = 1e-3
    temperature: float = 1.0
    info: dict[str, Any] = field(default_factory=dict)
    net: FeatureNet | None = None
    projection: np.ndarray = field(init=False, repr=False)
    class_means: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        lda = _lda_basis(self.stats, self.regularisation)
        self.projection = (self.pca @ lda).astype(np.float32)
        self.class_means = (self.stats.mean @ lda).astype(np.float32)

    @classmethod
    def fit(
        cls,
        faces: np.ndarray,
        labels: Sequence[str],
        spec: FaceSpec,
        descriptor: str = "pixels",
        pca_components: int = PCA_COMPONENTS,
        regularisation: float = 1e-3,
        weights: np.ndarray | None = None,
        net: FeatureNet | None = None,
        features: np.ndarray | None = None,
        mirror: bool = False,
        mirrored_features: np.ndarray | None = None,
    ) -> EmotionModel:
        """Fit PCA (to at most n - classes dims, the Fisherface rule) then LDA.

        ``weights`` lets some faces count more (a user's own labels outweigh bootstrap data).
        ``net``: the feature net of a ``cnn`` model (default: the shipped one). ``features``: the
        faces already described this way, which cross-validation computes once for all folds.

        ``mirror``: every face's mirror image is a training face too (same label and weight): better
        balanced accuracy on other artists' art, but more files in wrong folders after a review,
        so `train` does it only when asked (README, "Mirrored faces in the Fisherface fit");
        ``mirrored_features`` are those mirrors described, when computed up front. The model
        remembers it, so :meth:`updated` mirrors a person's labels alike: otherwise they would
        weigh half as much against the faces it was fitted on. Only where :func:`mirror_adds`.
        """
        names = sorted(set(labels))
        if len(names) < 2:
            raise ValueError(f"need faces of at least 2 emotions to train, got {names}")
        if descriptor == LEARNT and net is None:
            net = shipped_net()
        mirror = mirror and mirror_adds(descriptor)
        y = np.array([names.index(lbl) for lbl in labels])
        counts = {n: int((y == i).sum()) for i, n in enumerate(names)}
        x = describe(faces, descriptor, net) if features is None else features
        w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
        sides = [x]
        if mirror:
            if mirrored_features is None:
                mirrored_features = describe(mirror_faces(faces), descriptor, net)
            sides.append(mirrored_features)
        mean = sum(_weighted_sum(w, side) for side in sides) / (w.sum() * len(sides))
        k = max(1, min(pca_components, len(y) - len(names), x.shape[1]))
        # Each face once, either way round (a seeded coin), in the first half: the PCA basis is
        # found on it alone, at the cost of a fit without mirrors; the mean and the class statistics
        # take both halves (a row and its mirror share label and weight).
        other = np.random.default_rng(0).random(len(y))[:, None] >= 0.5 if mirror else None

        def centred(half: int) -> np.ndarray:
            # A float64 copy of one half at a time, centred in place: both halves at once (or
            # np.average's weighted copy) would add 600 MB per 20,000 HOG + LBP rows.
            rows = sides[half].astype(np.float64)
            if other is not None:
                np.copyto(rows, sides[1 - half], where=other)
            rows -= mean
            return rows

        first = centred(0)
        pca = _pca_basis(first, k)
        z = [first @ pca]
        del first
        z += [centred(half) @ pca for half in range(1, len(sides))]
        stats = ClassStats.of(np.concatenate(z), np.tile(y, len(sides)), np.tile(w, len(sides)), len(names))
        return cls(
            names,
            spec,
            descriptor,
            mean.astype(np.float32),
            pca.astype(np.float32),
            stats,
            regularisation,
            info={"counts": counts, "pca_components": k, **({"mirrored": True} if mirror else {})},
            net=net if descriptor == LEARNT else None,
        )

    def updated(
        self, faces: np.ndarray, labels: Sequence[str], weight: float | np.ndarray = 1.0
    ) -> EmotionModel:
        """This model with more labelled faces added (new labels become new classes).

        The PCA basis stays; the class statistics absorb the new faces and LDA is solved again,
        so the result equals training on old and new faces together in this basis (their mirror
        images too when the model was fitted with them).
        """
        names = sorted(set(self.labels) | set(labels))
        order = [names.index(lbl) for lbl in self.labels]
        old = self.stats.padded(len(names))
        perm = np.argsort(order + [i for i in range(len(names)) if i not in order])
        old = ClassStats(old.weight[perm], old.mean[perm], old.scatter)
        y = np.array([names.index(lbl) for lbl in labels])
        w = np.broadcast_to(np.asarray(weight, dtype=np.float64), (len(y),))
        counts = {
            n: int(self.info.get("counts", {}).get(n, 0)) + int((y == i).sum()) for i, n in enumerate(names)
        }
        if self.info.get("mirrored"):
            faces = np.concatenate([faces, mirror_faces(faces)])
            y, w = np.concatenate([y, y]), np.concatenate([w, w])
        z = (self.describe(faces).astype(np.float64) - self.mean) @ self.pca
        new = ClassStats.of(z, y, w, len(names))
        info = {**self.info, "counts": counts}
        info.pop("created", None)
        return EmotionModel(
            names,
            self.spec,
            self.descriptor,
            self.mean,
            self.pca,
            old.merged(new),
            self.regularisation,
            self.temperature,
            info,
            self.net,
        )

    def describe(self, faces: np.ndarray) -> np.ndarray:
        """The features this model looks at (its descriptor, with its own net if it has one)."""
        return describe(faces, self.descriptor, self.net)

    def logits(self, faces: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        """(n, classes) un-tempered log-likelihoods: -0.5 * squared distance to each class mean.

        ``features``: ``self.describe(faces)`` when the caller has it already.
        """
        x = self.describe(faces) if features is None else features
        proj = (x - self.mean) @ self.projection
        d2 = ((proj[:, None, :] - self.class_means[None, :, :]) ** 2).sum(axis=2)
        return -0.5 * d2

    def save(self, path: Path) -> Path:
        """Write atomically (temp file, fsync, rename) so a crash never leaves half a model in place."""
        meta, arrays = self.stored()
        return write_model_file(path, {"format_version": FORMAT_VERSION, **meta}, arrays)

    def stored(self, prefix: str = "") -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(meta, arrays) that :meth:`from_stored` turns back into this model; ``prefix`` names the
        arrays of one member of an ensemble file apart from the others."""
        self.info.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S"))
        meta = {
            "labels": self.labels,
            "face_spec": self.spec.to_dict(),
            "descriptor": self.descriptor,
            "temperature": self.temperature,
            "regularisation": self.regularisation,
            "info": self.info,
            "net_info": self.net.info if self.net else None,
        }
        arrays = {
            f"{prefix}mean": self.mean,
            f"{prefix}pca": self.pca,
            f"{prefix}class_weight": self.stats.weight,
            f"{prefix}class_mean": self.stats.mean,
            f"{prefix}class_scatter": self.stats.scatter,
            **(self.net.arrays(prefix + NET_PREFIX) if self.net else {}),
        }
        return meta, arrays

    @classmethod
    def from_stored(
        cls, meta: dict[str, Any], arrays: dict[str, np.ndarray], prefix: str = ""
    ) -> EmotionModel:
        """The model :meth:`stored` described; KeyError or FeatureNetError when parts are missing."""
        net = None
        if meta["descriptor"] == LEARNT:
            net = FeatureNet.from_arrays(arrays, meta.get("net_info") or {}, prefix + NET_PREFIX)
        return cls(
            labels=list(meta["labels"]),
            spec=FaceSpec.from_dict(meta["face_spec"]),
            descriptor=meta["descriptor"],
            mean=arrays[f"{prefix}mean"],
            pca=arrays[f"{prefix}pca"],
            stats=ClassStats(
                arrays[f"{prefix}class_weight"],
                arrays[f"{prefix}class_mean"],
                _pooled(arrays[f"{prefix}class_scatter"]),
            ),
            regularisation=float(meta["regularisation"]),
            temperature=float(meta["temperature"]),
            info=dict(meta["info"]),
            net=net,
        )

    @classmethod
    def load(cls, path: Path) -> EmotionModel:
        """Read a single-model file; any problem becomes a ModelError naming the file and the fix."""
        meta, arrays = read_model_file(path, (1, FORMAT_VERSION))
        try:
            return cls.from_stored(meta, arrays)
        except (KeyError, FeatureNetError) as exc:
            raise ModelError(f"model file {path} is corrupt: {exc}") from exc


def write_model_file(path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """Atomically write a model file: ``meta`` as JSON beside the arrays, compressed."""
    return write_npz(
        path, {"meta": np.array(json.dumps({"format": FORMAT, **meta})), **arrays}, compressed=True
    )


def read_model_file(
    path: Path,
    versions: tuple[int, ...],
    with_arrays: bool = True,
    seen: Callable[[bytes], object] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(meta, arrays) of a model file of one of ``versions`` (arrays empty unless ``with_arrays``);
    anything else is a ModelError that says what to do. Every model path a person gives (`eval
    --model`, `model use`, ``recognition.model``) is read here, so each is said the same way.
    ``seen``: handed the file's bytes, read whole once, before they are loaded, for a caller that
    must know which bytes it loaded (a hash of them): the file may be replaced between two reads."""
    path = Path(path)
    if path.is_dir():  # else "corrupt … ([Errno 21] Is a directory)"
        raise ModelError(
            f"model file {path} is a folder: name the model file (*{MODEL_SUFFIX}) itself, "
            "not the folder it is in"
        )
    if path.exists() and not path.is_file():  # a FIFO would block the reading for ever
        raise ModelError(f"model file {path} is not a regular file: name the model file (*{MODEL_SUFFIX})")
    try:
        with read_npz(path if seen is None else _read_whole(path, seen)) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {k: data[k] for k in data.files if k != "meta"} if with_arrays else {}
    except FileNotFoundError:
        raise ModelError(f"model file {path} does not exist") from None
    except PermissionError:  # not "corrupt": nothing is wrong with the file itself
        raise ModelError(
            f"cannot read the model file {path} (permission denied): chmod u+r '{path}'"
        ) from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise ModelError(f"model file {path} is corrupt or not a facesortd model ({exc})") from exc
    except (TypeError, IndexError):  # a bare .npy array: np.load reads it, but it holds no "meta"
        raise ModelError(f"model file {path} is a numpy array, not a facesortd model") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelError(f"{path} is not a facesortd emotion model")
    if meta.get("format_version") not in versions:
        raise ModelError(
            f"model file {path} has format version {meta.get('format_version')}, which this facesortd "
            f"does not read here (it reads {', '.join(map(str, versions))}): "
            f"retrain it with `{advised('train')}`"
        )
    return meta, arrays


def _read_whole(path: Path, seen: Callable[[bytes], object]) -> BinaryIO:
    """``path``'s bytes, handed to ``seen`` before they are loaded from memory."""
    with open_regular(path) as fh:
        content = fh.read()
    seen(content)
    return io.BytesIO(content)


def _pooled(scatter: np.ndarray) -> np.ndarray:
    """The pooled (k, k) within-class scatter, also from a version 1 file's (classes, k, k) stack."""
    return scatter.sum(axis=0) if scatter.ndim == 3 else scatter


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, truth: np.ndarray) -> float:
    """The temperature minimising held-out negative log-likelihood (1-D search in log space)."""
    if len(truth) == 0:
        return 1.0

    def nll(t: float) -> float:
        p = softmax(logits / t)
        return float(-np.log(p[np.arange(len(truth)), truth] + 1e-12).mean())

    grid = np.exp(np.linspace(np.log(1e-2), np.log(1e3), 61))
    best = min(grid, key=nll)
    lo, hi = best / 1.2, best * 1.2
    for _ in range(30):  # golden-section refinement inside the best grid cell
        m1, m2 = lo + 0.382 * (hi - lo), lo + 0.618 * (hi - lo)
        lo, hi = (lo, m2) if nll(m1) < nll(m2) else (m1, hi)
    return float((lo + hi) / 2)


def _weighted_sum(w: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``w @ rows`` in float64 a block of rows at a time: float32 rows would otherwise be copied
    to float64 whole for one sum."""
    chunk = 4096
    return sum(
        (w[i : i + chunk] @ rows[i : i + chunk] for i in range(0, len(rows), chunk)), np.zeros(rows.shape[1])
    )


def _pca_basis(centred: np.ndarray, k: int) -> np.ndarray:
    """(d, k) top principal directions; randomized range finder when that is cheaper than eigh."""
    n, d = centred.shape
    if min(n, d) <= 2 * k + 50:
        if n >= d:
            _, vecs = np.linalg.eigh(centred.T @ centred)
            return vecs[:, ::-1][:, :k]
        _, vecs = np.linalg.eigh(centred @ centred.T)
        vecs = vecs[:, ::-1][:, :k]
        basis = centred.T @ vecs
        return basis / (np.linalg.norm(basis, axis=0, keepdims=True) + 1e-12)
    rng = np.random.default_rng(0)
    q = centred @ rng.standard_normal((d, k + 20))
    for _ in range(3):  # power iterations sharpen the spectrum
        q, _ = np.linalg.qr(q)
        q, _ = np.linalg.qr(centred @ (centred.T @ q))
    _, _, vt = np.linalg.svd(q.T @ centred, full_matrices=False)
    return vt[:k].T


def _lda_basis(stats: ClassStats, reg: float) -> np.ndarray:
    """(k, classes-1) directions maximising between- over within-class scatter, whitened within class.

    Solved by Cholesky-whitening the (shrunk) within-class scatter, so the projected within-class
    covariance is the identity and squared distances are log-likelihoods. Classes are weighted
    equally in the between-class scatter: the seed data is unbalanced and rare emotions matter.
    """
    present = stats.weight > 0
    total = stats.weight.sum()
    k = stats.mean.shape[1]
    sw = stats.scatter / total
    centre = stats.mean[present].mean(axis=0)
    d = stats.mean[present] - centre
    sb = d.T @ d / present.sum()
    sw += (reg * np.trace(sw) / k + 1e-9) * np.eye(k)
    inv = np.linalg.inv(np.linalg.cholesky(sw))
    _, vecs = np.linalg.eigh(inv @ sb @ inv.T)
    top = vecs[:, ::-1][:, : max(1, int(present.sum()) - 1)]
    return inv.T @ top
