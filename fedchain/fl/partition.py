"""Seeded partitioners: how a dataset is spread over the participants of a simulation.

Every partitioner returns one sorted ``int64`` index array per participant; together
they are disjoint and cover every sample. The same labels and :class:`PartitionSpec`
always give the same partition.

* ``iid``: a seeded shuffle cut into near-equal parts.
* ``dirichlet``: label skew. Participant ``i`` draws a label mix
  ``q_i ~ Dir(alpha * C * p)`` (``p`` the global label frequencies, ``C`` classes);
  the mixes are scaled (Sinkhorn) so that every participant gets about ``n / K``
  samples and every sample is used, then rounded per class. Small ``alpha`` means
  strong skew; large ``alpha`` approaches ``iid``. A draw leaving anyone under
  ``min_samples`` is re-drawn from the same seeded generator.
* ``quantity``: size skew with iid labels; sizes are ``min_samples`` plus a
  ``Dir(alpha)`` share of the rest.
* ``industry``: named participants with skewed slices of the data, from a profile:
  ``hospitals`` (breast_cancer: referral centres see more malignant tumours, screening
  clinics fewer), ``lenders`` (german_credit: a retail bank with few defaults and larger
  loans through to a sub-prime lender with many defaults and small loans) and
  ``post-offices`` (digits, mnist: each office sees mostly two digits); the generic
  ``sites`` profile (used when a spec names none) does the same for any labels, with
  one dominant label per site when there are at most three.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedchain.codec.canonical import canonical_json, sha256_digest
from fedchain.errors import ConfigError
from fedchain.types import Digest

__all__ = [
    "SCHEMES",
    "PROFILES",
    "DEFAULT_PROFILES",
    "IndustrySlice",
    "PartitionSpec",
    "apportion",
    "industry_profile",
    "label_histograms",
    "label_skew",
    "partition",
    "partition_names",
    "partition_report",
]

log = logging.getLogger(__name__)

SCHEMES = ("iid", "dirichlet", "quantity", "industry")
PROFILES = ("hospitals", "lenders", "post-offices", "sites")
DEFAULT_PROFILES = {
    "breast_cancer": "hospitals",
    "german_credit": "lenders",
    "digits": "post-offices",
    "mnist": "post-offices",
}
_MAX_DRAWS = 100
_SINKHORN_ITERATIONS = 300


@dataclass(frozen=True)
class PartitionSpec:
    """How to split a dataset over ``num_clients`` participants.

    ``alpha`` is the Dirichlet concentration for ``dirichlet`` and ``quantity``;
    ``profile`` names the ``industry`` profile (None: the generic ``sites`` profile;
    see :data:`DEFAULT_PROFILES` for each dataset's own).
    """

    scheme: str
    num_clients: int
    alpha: float = 0.5
    seed: int = 0
    min_samples: int = 10
    profile: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.scheme not in SCHEMES:
            problems.append(f"scheme must be one of {', '.join(SCHEMES)}, got {self.scheme!r}")
        if isinstance(self.num_clients, bool) or not isinstance(self.num_clients, int) or self.num_clients < 1:
            problems.append(f"num_clients must be a positive integer, got {self.num_clients!r}")
        if not (isinstance(self.alpha, (int, float)) and math.isfinite(self.alpha) and self.alpha > 0):
            problems.append(f"alpha must be a finite number > 0, got {self.alpha!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            problems.append(f"seed must be a non-negative integer, got {self.seed!r}")
        if isinstance(self.min_samples, bool) or not isinstance(self.min_samples, int) or self.min_samples < 1:
            problems.append(f"min_samples must be a positive integer, got {self.min_samples!r}")
        if self.profile is not None and self.profile not in PROFILES:
            problems.append(f"profile must be one of {', '.join(PROFILES)}, got {self.profile!r}")
        if self.profile is not None and self.scheme != "industry":
            problems.append("a profile applies to the industry scheme only")
        if problems:
            raise ConfigError("invalid partition spec: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """The spec as a JSON object."""
        return {
            "scheme": self.scheme,
            "num_clients": self.num_clients,
            "alpha": float(self.alpha),
            "seed": self.seed,
            "min_samples": self.min_samples,
            "profile": self.profile,
        }

    def digest(self) -> Digest:
        """SHA-256 of the spec's canonical JSON."""
        return sha256_digest(canonical_json(self.to_dict()))


@dataclass(frozen=True)
class IndustrySlice:
    """One named participant of an industry profile.

    ``label_weights[c]`` is how strongly it attracts samples of label ``c``; ``share``
    its relative size. With ``feature`` set, the samples of each label are ordered by
    that feature (plus seeded noise) and the slices take consecutive blocks in order of
    ``position`` (0 = the low end, 1 = the high end).
    """

    name: str
    share: float
    label_weights: tuple[float, ...]
    feature: str | None = None
    position: float = 0.5


# --- helpers -------------------------------------------------------------------------
def apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """Split ``total`` into integers proportional to ``weights`` (largest remainder, ties by index)."""
    w = np.asarray(weights, dtype=np.float64)
    if total < 0 or w.ndim != 1 or w.size == 0 or (w < 0).any() or not np.isfinite(w).all():
        raise ConfigError(f"cannot apportion {total} by weights {w}")
    s = float(w.sum())
    if s <= 0:
        w, s = np.ones_like(w), float(w.size)
    exact = total * w / s
    base = np.floor(exact).astype(np.int64)
    rest = int(total - base.sum())
    order = np.lexsort((np.arange(w.size), -(exact - base)))  # largest remainder first, then index
    base[order[:rest]] += 1
    return base


def _check_labels(y: np.ndarray, spec: PartitionSpec) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(f"partition needs a 1-D integer label array, got shape {arr.shape} dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise ConfigError("labels must be non-negative")
    need = spec.num_clients * spec.min_samples
    if arr.size < need:
        raise ConfigError(
            f"{arr.size} samples cannot give {spec.num_clients} participants at least {spec.min_samples} each"
        )
    return arr.astype(np.int64, copy=False)


def _split_by_counts(idx: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return [idx[bounds[i] : bounds[i + 1]] for i in range(len(counts))]


def _finish(parts: list[list[np.ndarray]]) -> list[np.ndarray]:
    return [np.sort(np.concatenate(p)).astype(np.int64) if p else np.zeros(0, np.int64) for p in parts]


# --- schemes ---------------------------------------------------------------------------
def _iid(y: np.ndarray, spec: PartitionSpec, rng: np.random.Generator) -> list[np.ndarray]:
    perm = rng.permutation(y.size)
    return [np.sort(p).astype(np.int64) for p in np.array_split(perm, spec.num_clients)]


def _sinkhorn(q: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    t = q.copy()
    for _ in range(_SINKHORN_ITERATIONS):
        t *= (rows / np.maximum(t.sum(axis=1), 1e-300))[:, None]
        t *= (cols / np.maximum(t.sum(axis=0), 1e-300))[None, :]
    return t


def _dirichlet(y: np.ndarray, spec: PartitionSpec, rng: np.random.Generator) -> list[np.ndarray]:
    k = spec.num_clients
    classes, class_counts = np.unique(y, return_counts=True)
    prior = class_counts / y.size
    concentration = spec.alpha * classes.size * prior
    rows = np.full(k, y.size / k)
    for draw in range(_MAX_DRAWS):
        mixes = np.maximum(rng.dirichlet(concentration, size=k), 1e-12)
        target = _sinkhorn(mixes, rows, class_counts.astype(np.float64))
        parts: list[list[np.ndarray]] = [[] for _ in range(k)]
        for j, c in enumerate(classes):
            idx = np.flatnonzero(y == c)
            idx = idx[rng.permutation(idx.size)]
            for i, chunk in enumerate(_split_by_counts(idx, apportion(idx.size, target[:, j]))):
                parts[i].append(chunk)
        out = _finish(parts)
        if min(p.size for p in out) >= spec.min_samples:
            if draw:
                log.debug("dirichlet partition needed %d re-draw(s)", draw)
            return out
    raise ConfigError(
        f"no dirichlet partition with at least {spec.min_samples} samples per participant in {_MAX_DRAWS} draws "
        f"(alpha={spec.alpha}, {k} participants, {y.size} samples); lower min_samples or use fewer participants"
    )


def _quantity(y: np.ndarray, spec: PartitionSpec, rng: np.random.Generator) -> list[np.ndarray]:
    k = spec.num_clients
    shares = rng.dirichlet(np.full(k, spec.alpha))
    sizes = spec.min_samples + apportion(y.size - k * spec.min_samples, shares)
    perm = rng.permutation(y.size)
    return [np.sort(p).astype(np.int64) for p in _split_by_counts(perm, sizes)]


# --- industry ----------------------------------------------------------------------------
_HOSPITALS = ("oncology-referral-centre", "university-hospital", "general-hospital", "community-clinic",
              "screening-programme")  # fmt: skip
_LENDERS = ("retail-bank", "private-bank", "credit-union", "consumer-finance", "sub-prime-lender")


def _position(i: int, k: int) -> float:
    return i / (k - 1) if k > 1 else 0.5


def _pick(types: Sequence[str], t: float, i: int, k: int) -> str:
    base = types[min(int(round(t * (len(types) - 1))), len(types) - 1)]
    return base if k <= len(types) else f"{base}-{i + 1}"


def industry_profile(profile: str, num_clients: int, num_classes: int) -> tuple[IndustrySlice, ...]:
    """The named slices of ``profile`` for ``num_clients`` participants."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown industry profile {profile!r}; known: {', '.join(PROFILES)}")
    k = num_clients
    slices = []
    for i in range(k):
        t = _position(i, k)
        if profile == "hospitals":
            if num_classes != 2:
                raise ConfigError("the hospitals profile needs two labels (0 = malignant, 1 = benign)")
            malignant = 4.0 ** (1 - 2 * t)  # 4:1 .. 1:4 malignant:benign attraction
            share = (1.3, 1.0, 1.0, 0.8, 0.7)[min(int(round(t * 4)), 4)]
            slices.append(IndustrySlice(_pick(_HOSPITALS, t, i, k), share, (malignant, 1.0)))
        elif profile == "lenders":
            if num_classes != 2:
                raise ConfigError("the lenders profile needs two labels (0 = good, 1 = bad)")
            bad = 4.0 ** (2 * t - 1)  # retail bank 1:4 .. sub-prime 4:1 bad:good attraction
            # the retail bank takes the largest loans, the sub-prime lender the smallest
            slices.append(IndustrySlice(_pick(_LENDERS, t, i, k), 1.0, (1.0, bad), "credit_amount", 1.0 - t))
        else:  # post-offices and sites: each participant sees mostly two labels (one if <= 3 labels)
            weights = np.ones(num_classes)
            if num_classes <= 3:
                weights[i % num_classes] = 8.0
            else:
                weights[(2 * i) % num_classes] = 8.0
                weights[(2 * i + 1) % num_classes] = 8.0
            label = "post-office" if profile == "post-offices" else "site"
            slices.append(IndustrySlice(f"{label}-{i + 1}", 1.0, tuple(float(w) for w in weights)))
    return tuple(slices)


def _industry(
    y: np.ndarray,
    spec: PartitionSpec,
    rng: np.random.Generator,
    x: np.ndarray | None,
    feature_names: Sequence[str] | None,
) -> list[np.ndarray]:
    num_classes = int(y.max()) + 1
    slices = industry_profile(spec.profile or "sites", spec.num_clients, num_classes)
    k = len(slices)
    feature_col: int | None = None
    wanted = {s.feature for s in slices if s.feature}
    if wanted:
        (feature,) = wanted
        if x is None or feature_names is None:
            log.info("industry profile %s: no features given, skewing by label mix only", spec.profile)
        else:
            if feature not in feature_names:
                raise ConfigError(f"industry profile {spec.profile!r} needs feature {feature!r}, not in the data")
            feature_col = list(feature_names).index(feature)
            if len(x) != y.size:
                raise ConfigError(f"{len(x)} feature rows for {y.size} labels")
    # slices take blocks along the feature in order of their position, ties by index
    order = np.lexsort((np.arange(k), np.asarray([s.position for s in slices])))
    share = np.asarray([s.share for s in slices])
    parts: list[list[np.ndarray]] = [[] for _ in range(k)]
    for c in range(num_classes):
        idx = np.flatnonzero(y == c)
        if idx.size == 0:
            continue
        idx = idx[rng.permutation(idx.size)]
        weights = share * np.asarray([s.label_weights[c] for s in slices])
        counts = apportion(idx.size, weights)
        if feature_col is not None and x is not None:
            values = np.asarray(x, dtype=np.float64).reshape(len(x), -1)[idx, feature_col]
            noisy = values + rng.normal(0.0, 0.25 * (values.std() or 1.0), size=idx.size)
            idx = idx[np.argsort(noisy, kind="stable")]
            chunks = _split_by_counts(idx, counts[order])
            for pos, i in enumerate(order):
                parts[i].append(chunks[pos])
        else:
            for i, chunk in enumerate(_split_by_counts(idx, counts)):
                parts[i].append(chunk)
    out = _finish(parts)
    small = [(slices[i].name, p.size) for i, p in enumerate(out) if p.size < spec.min_samples]
    if small:
        raise ConfigError(f"industry partition leaves participants under {spec.min_samples} samples: {small}")
    return out


# --- public ---------------------------------------------------------------------------------
def partition(
    y: np.ndarray,
    spec: PartitionSpec,
    *,
    x: np.ndarray | None = None,
    feature_names: Sequence[str] | None = None,
) -> list[np.ndarray]:
    """Split sample indices ``0..len(y)-1`` over ``spec.num_clients`` participants.

    Returns one sorted int64 index array per participant: disjoint, covering every
    sample, each at least ``spec.min_samples`` long, reproducible from the spec.
    ``x`` and ``feature_names`` are used only by industry profiles that skew by a
    feature (``lenders``: credit_amount).
    """
    labels = _check_labels(y, spec)
    rng = np.random.default_rng(spec.seed)
    if spec.scheme == "iid":
        return _iid(labels, spec, rng)
    if spec.scheme == "dirichlet":
        return _dirichlet(labels, spec, rng)
    if spec.scheme == "quantity":
        return _quantity(labels, spec, rng)
    return _industry(labels, spec, rng, x, feature_names)


def partition_names(spec: PartitionSpec, num_classes: int = 2) -> tuple[str, ...]:
    """Participant names: the industry profile's names, else ``client-<i>``."""
    if spec.scheme == "industry":
        return tuple(s.name for s in industry_profile(spec.profile or "sites", spec.num_clients, num_classes))
    return tuple(f"client-{i}" for i in range(spec.num_clients))


def label_histograms(y: np.ndarray, parts: Sequence[np.ndarray], num_classes: int | None = None) -> np.ndarray:
    """``(participants, classes)`` matrix of label counts."""
    labels = np.asarray(y, dtype=np.int64)
    c = int(num_classes if num_classes is not None else (labels.max() + 1 if labels.size else 0))
    return np.stack([np.bincount(labels[p], minlength=c)[:c] for p in parts]).astype(np.int64)


def label_skew(y: np.ndarray, parts: Sequence[np.ndarray]) -> float:
    """Mean total-variation distance between each participant's label mix and the global one (0 = iid)."""
    hist = label_histograms(y, parts).astype(np.float64)
    overall = hist.sum(axis=0) / hist.sum()
    mixes = hist / np.maximum(hist.sum(axis=1, keepdims=True), 1.0)
    return float(0.5 * np.abs(mixes - overall).sum(axis=1).mean())


def partition_report(
    y: np.ndarray,
    parts: Sequence[np.ndarray],
    names: Sequence[str] | None = None,
    label_names: Sequence[str] | None = None,
) -> str:
    """A plain-text table: participant, size and per-label counts, plus the label skew."""
    hist = label_histograms(y, parts, len(label_names) if label_names else None)
    names = list(names) if names else [f"client-{i}" for i in range(len(parts))]
    labels = list(label_names) if label_names else [str(c) for c in range(hist.shape[1])]
    width = max(len("participant"), *(len(n) for n in names))
    cols = [max(len(lbl), 5) for lbl in labels]
    head = f"{'participant':<{width}}  {'n':>6}  " + "  ".join(f"{lbl:>{w}}" for lbl, w in zip(labels, cols, strict=True))
    lines = [head, "-" * len(head)]
    for name, row in zip(names, hist, strict=False):
        counts = "  ".join(f"{int(v):>{w}}" for v, w in zip(row, cols, strict=False))
        lines.append(f"{name:<{width}}  {int(row.sum()):>6}  " + counts)
    total = hist.sum(axis=0)
    lines.append("-" * len(head))
    totals = "  ".join(f"{int(v):>{w}}" for v, w in zip(total, cols, strict=False))
    lines.append(f"{'total':<{width}}  {int(total.sum()):>6}  " + totals)
    lines.append(f"label skew (mean total-variation distance to the global mix): {label_skew(y, parts):.3f}")
    return "\n".join(lines)
