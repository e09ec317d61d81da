"""A compact candidate index for squared-L2 vectors too large to keep in memory (LPIPS vectors).

Each vector ``x`` is stored as ``[P(x - mean), |r(x)|]``: its projection on the top principal
components (orthonormal rows ``P``) plus the norm of what the projection leaves out
(``r(x) = (x - mean) - P^T P (x - mean)``). The squared L2 distance between two such codes is

    |P(q - x)|^2 + (|r(q)| - |r(x)|)^2   <=   |q - x|^2

(Pythagoras, then the reverse triangle inequality on the residuals): a *lower bound* on the true
distance. A FAISS flat index over the codes therefore returns candidates in lower-bound order, and
:meth:`CompactIndex.search_exact` stops fetching full vectors once the k-th exact distance found is
no larger than the bound of every unseen vector: exact top-k with a certificate. :meth:`search`
re-ranks a fixed number of candidates instead (recall measured, not guaranteed).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lookalike.search.rerank import Fetch, rerank

log = logging.getLogger(__name__)

#: Bounds are computed in float32: treat a bound as safe only with this relative margin.
BOUND_MARGIN = 1e-4


def pca_basis(sample: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, components)`` of ``sample``: the top ``dims`` principal directions, orthonormal rows."""
    x = np.asarray(sample, dtype=np.float64)
    mean = x.mean(0)
    xc = x - mean
    dims = min(dims, len(x) - 1 if len(x) > 1 else 1, x.shape[1])
    if len(x) < x.shape[1]:  # few samples, many dims: eigenvectors of the Gram matrix
        vals, vecs = np.linalg.eigh(xc @ xc.T)
        top = np.argsort(vals)[::-1][:dims]
        comps = (vecs[:, top].T @ xc) / np.sqrt(np.maximum(vals[top], 1e-300))[:, None]
    else:
        vals, vecs = np.linalg.eigh(xc.T @ xc)
        comps = vecs[:, np.argsort(vals)[::-1][:dims]].T
    q, _ = np.linalg.qr(comps.T)  # exactly orthonormal rows: the lower bound relies on it
    signs = np.sign(np.sum(q * comps.T, axis=0))
    return mean.astype(np.float32), (q * np.where(signs == 0, 1, signs)).T.astype(np.float32)


@dataclass
class CompactIndex:
    """PCA codes plus residual norms in a FAISS flat L2 index; ids are insertion order."""

    mean: np.ndarray
    components: np.ndarray
    index: object = field(repr=False, default=None)

    def __post_init__(self) -> None:
        if self.index is None:
            import faiss

            self.index = faiss.IndexFlatL2(self.code_dim)

    @classmethod
    def train(cls, sample: np.ndarray, dims: int = 64) -> CompactIndex:
        """Fit the PCA basis on ``sample`` (a few thousand library vectors are plenty)."""
        mean, comps = pca_basis(sample, dims)
        return cls(mean, comps)

    @property
    def dim(self) -> int:
        return int(self.components.shape[1])

    @property
    def code_dim(self) -> int:
        return int(self.components.shape[0]) + 1

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)  # type: ignore[attr-defined]

    @property
    def bytes_per_vector(self) -> int:
        return 4 * self.code_dim

    def encode(self, vectors: np.ndarray, chunk: int = 1024) -> np.ndarray:
        """``(n, dim)`` full vectors -> ``(n, code_dim)`` float32 codes."""
        vectors = np.atleast_2d(vectors)
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vectors have {vectors.shape[1]} dims, the index {self.dim}")
        out = np.empty((len(vectors), self.code_dim), np.float32)
        for s in range(0, len(vectors), chunk):
            xc = np.asarray(vectors[s:s + chunk], dtype=np.float32) - self.mean
            proj = xc @ self.components.T
            resid = xc - proj @ self.components
            out[s:s + chunk, :-1] = proj
            out[s:s + chunk, -1] = np.sqrt(np.einsum("ij,ij->i", resid, resid, dtype=np.float64))
        return out

    def add(self, vectors: np.ndarray, chunk: int = 1024) -> None:
        """Append vectors (ids continue from :attr:`ntotal`), encoding ``chunk`` at a time."""
        for s in range(0, len(vectors), chunk):
            self.index.add(self.encode(vectors[s:s + chunk]))  # type: ignore[attr-defined]

    def candidates(self, queries: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` vectors with the smallest lower bounds: ``(bounds, ids)``, ascending."""
        n = min(n, self.ntotal)
        return self.index.search(self.encode(queries), n)  # type: ignore[attr-defined]

    def search(self, queries: np.ndarray, k: int, fetch: Fetch,
               n_candidates: int = 100) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-``k``: exact re-ranking of the ``n_candidates`` best-bounded vectors."""
        _, ids = self.candidates(queries, max(k, n_candidates))
        return rerank(queries, ids, fetch, k)

    def search_exact(self, queries: np.ndarray, k: int, fetch: Fetch,
                     start: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact top-``k`` with a certificate; returns ``(distances, ids, fetched_per_query)``.

        Candidates are taken in lower-bound order, ``start`` (default ``4k``) at first, doubling
        until the k-th exact distance is at most the lower bound of every vector not yet fetched.
        """
        queries = np.atleast_2d(queries)
        out_d = np.full((len(queries), k), np.inf)
        out_i = np.full((len(queries), k), -1, dtype=np.int64)
        fetched = np.zeros(len(queries), dtype=np.int64)
        todo = np.arange(len(queries))
        n = max(k, start or 4 * k)
        while todo.size:
            n = min(n, self.ntotal)
            bounds, ids = self.candidates(queries[todo], n)
            d, i = rerank(queries[todo], ids, fetch, k)
            out_d[todo], out_i[todo], fetched[todo] = d, i, n
            if n >= self.ntotal:
                break
            safe = d[:, -1] <= bounds[:, -1] * (1 - BOUND_MARGIN)
            todo = todo[~safe]
            n *= 2
        return out_d, out_i, fetched

    # -- persistence ---------------------------------------------------------------------------

    def save(self, folder: str | Path) -> None:
        """Write ``basis.npz`` (no pickles), ``codes.faiss`` and ``compact.json`` into ``folder``."""
        import faiss

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "basis.npz", mean=self.mean, components=self.components)
        faiss.write_index(self.index, str(folder / "codes.faiss"))
        (folder / "compact.json").write_text(json.dumps(
            {"kind": "pca-residual", "dim": self.dim, "code_dim": self.code_dim, "ntotal": self.ntotal}))

    @classmethod
    def load(cls, folder: str | Path) -> CompactIndex:
        import faiss

        folder = Path(folder)
        with np.load(folder / "basis.npz", allow_pickle=False) as z:
            mean, comps = z["mean"], z["components"]
        return cls(mean, comps, faiss.read_index(str(folder / "codes.faiss")))


#: float16 rounding: relative error of a normal entry, absolute error of a subnormal one.
FP16_REL = 2.0 ** -11
FP16_ABS = 2.0 ** -25


def to_float16(vectors: np.ndarray) -> np.ndarray:
    """Half-size storage of vectors (raises if an entry would overflow float16).

    Entries below float16's normal range (2^-14) become subnormals: their absolute error stays
    under 2^-25, harmless to a distance; :func:`float16_error_bound` bounds the effect.
    """
    v = np.asarray(vectors)
    if v.size and np.abs(v).max() >= 65504:
        raise ValueError(f"values up to {np.abs(v).max():.3g} overflow float16; scale them first")
    return v.astype(np.float16)


def float16_error_bound(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Worst-case ``|d16 - d|`` for the squared L2 distance of rows ``a[i]`` and ``b[i]`` after
    :func:`to_float16`: with ``E = |a - a16| + |b - b16| <= FP16_REL (|a| + |b|) + 2 FP16_ABS sqrt(dim)``,
    ``|d16 - d| <= 2 sqrt(d) E + E^2``."""
    a64, b64 = np.atleast_2d(a).astype(np.float64), np.atleast_2d(b).astype(np.float64)
    d = ((a64 - b64) ** 2).sum(1)
    err = FP16_REL * (np.linalg.norm(a64, axis=1) + np.linalg.norm(b64, axis=1)) \
        + 2 * FP16_ABS * np.sqrt(a64.shape[1])
    return 2 * np.sqrt(d) * err + err ** 2
