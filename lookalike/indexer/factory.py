"""Which FAISS index to build for a library of a given size (first version; tuned by benchmarks)."""

from __future__ import annotations

#: Below this many vectors an exact flat index is both fastest to build and fast enough to search.
FLAT_MAX = 50_000


def choose_factory(n_vectors: int, dim: int) -> str:
    """A FAISS index-factory string for ``n_vectors`` vectors of ``dim`` dimensions."""
    if n_vectors <= FLAT_MAX:
        return "Flat"
    nlist = 1 << max(8, min(16, int(4 * n_vectors ** 0.5)).bit_length() - 1)
    return f"IVF{nlist},Flat"
