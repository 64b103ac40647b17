"""PCA and PCA-whitening learned from a sample of a space's vectors (pure numpy).

Off-the-shelf CNN features retrieve better once centred, rotated onto their principal
axes and (optionally) whitened, then L2-normalised again (Jégou & Chum, ECCV 2012;
Radenović, Tolias & Chum, TPAMI 2018); keeping the leading dimensions also makes the
vectors smaller. Whitening divides each kept axis by the square root of its variance,
shrunk towards the mean variance: s_i = (λ_i + shrinkage · mean(λ))^(-1/2), so that
axes of tiny variance (noise) are not blown up; shrinkage 0 is plain whitening.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from engine.errors import ConfigError

VERSION: Final = 1  # of the stored projection's format and method


@dataclass(frozen=True)
class Projection:
    """x ↦ normalise(scale · (axes · (x − mean))): from `source` vectors to `dim` dims."""

    source: str  # the space it was learned on, e.g. resnet50
    mean: NDArray[np.float64]  # (D,)
    axes: NDArray[np.float64]  # (dim, D), rows = principal axes, by decreasing variance
    variances: NDArray[np.float64]  # (dim,) the kept eigenvalues
    scale: NDArray[np.float64]  # (dim,) 1 (PCA) or the shrunk inverse deviation (whitening)
    whiten: bool
    shrinkage: float
    samples: int  # how many vectors it was learned on
    kept_variance: float  # share of the total variance on the kept axes
    version: int = VERSION

    @property
    def dim(self) -> int:
        """Length of the projected vectors."""
        return int(self.axes.shape[0])

    def __call__(self, vectors: NDArray[np.floating]) -> NDArray[np.float32]:
        """Project rows (n, D) → unit rows (n, dim); a row projected to 0 stays 0."""
        x = np.asarray(vectors, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.mean.shape[0]:
            raise ConfigError(
                f"a {self.source} projection takes vectors of size {self.mean.shape[0]}, "
                f"got shape {x.shape}"
            )
        y = ((x - self.mean) @ self.axes.T) * self.scale
        norms = np.linalg.norm(y, axis=1, keepdims=True)
        return (y / np.where(norms > 0, norms, 1.0)).astype(np.float32)

    def describe(self) -> str:
        """How it was made, for people."""
        kind = f"PCA-whitening (shrinkage {self.shrinkage:g})" if self.whiten else "PCA"
        return (
            f"{kind} of {self.source} to {self.dim} dims, learned on {self.samples:,} vectors "
            f"({self.kept_variance:.1%} of the variance kept), method v{self.version}"
        )

    def to_bytes(self) -> bytes:
        """The projection as an .npz file's bytes (arrays and a JSON header)."""
        header = {
            "source": self.source,
            "whiten": self.whiten,
            "shrinkage": self.shrinkage,
            "samples": self.samples,
            "kept_variance": self.kept_variance,
            "version": self.version,
        }
        out = io.BytesIO()
        np.savez(
            out,
            header=np.array(json.dumps(header)),
            mean=self.mean,
            axes=self.axes,
            variances=self.variances,
            scale=self.scale,
        )
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Projection:
        """Read what to_bytes wrote; ConfigError if it is not one (or a newer version)."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                header = json.loads(str(arrays["header"]))
                parts = {k: np.asarray(arrays[k], dtype=np.float64) for k in _ARRAYS}
            version = int(header["version"])
            projection = cls(
                source=str(header["source"]),
                whiten=bool(header["whiten"]),
                shrinkage=float(header["shrinkage"]),
                samples=int(header["samples"]),
                kept_variance=float(header["kept_variance"]),
                version=version,
                **parts,
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"not a projection file ({exc})") from None
        if version > VERSION:
            raise ConfigError(
                f"the projection was made by a newer fashionrec (v{version}); upgrade it"
            )
        return projection


_ARRAYS: Final = ("mean", "axes", "variances", "scale")


def fit(
    source: str,
    vectors: NDArray[np.floating],
    dim: int,
    whiten: bool = False,
    shrinkage: float = 0.0,
) -> Projection:
    """Learn the projection of `source` vectors (rows) onto their `dim` leading axes.

    Deterministic: each axis' sign makes its largest coordinate positive. (One eigh of the
    covariance, kept here on purpose: scikit-learn's PCA whitens without shrinkage.)
    """
    x = np.asarray(vectors, dtype=np.float64)
    n, size = x.shape if x.ndim == 2 else (0, 0)
    if not 0 < dim <= size:
        raise ConfigError(f"--dim must be between 1 and {size} (the {source} size), got {dim}")
    if n <= dim:
        raise ConfigError(
            f"learning {dim} dims needs more than {dim} vectors; the sample has {n} "
            "(use a smaller --dim or a larger --sample)"
        )
    if shrinkage < 0:
        raise ConfigError(f"shrinkage must be ≥ 0, got {shrinkage}")
    mean = x.mean(axis=0)
    centred = x - mean
    covariance = centred.T @ centred / (n - 1)
    values, vectors_ = np.linalg.eigh(covariance)  # ascending
    order = np.argsort(values)[::-1]
    values = np.clip(values[order], 0.0, None)
    axes = vectors_[:, order].T
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    axes *= np.where(signs == 0, 1.0, signs)[:, None]
    kept = values[:dim]
    if whiten:
        floor = shrinkage * float(values.mean())
        if np.any(kept + floor <= 0):
            raise ConfigError(
                f"the sample spans fewer than {dim} dims; whitening needs shrinkage > 0 "
                "or a smaller --dim"
            )
        scale = 1.0 / np.sqrt(kept + floor)
    else:
        scale = np.ones(dim)
    total = float(values.sum())
    return Projection(
        source=source,
        mean=mean,
        axes=axes[:dim].copy(),
        variances=kept.copy(),
        scale=scale,
        whiten=whiten,
        shrinkage=shrinkage if whiten else 0.0,
        samples=n,
        kept_variance=float(kept.sum()) / total if total > 0 else 1.0,
    )
