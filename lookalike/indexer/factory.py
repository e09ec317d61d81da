"""Which FAISS index to build for a library of a given size, and how to search it.

:func:`choose_factory` returns a FAISS ``index_factory`` string; :func:`search_params` the
search-time parameters that go with it (``nprobe`` for IVF, ``efSearch`` for HNSW), applied with
:func:`apply_search_params` (or ``faiss.ParameterSpace().set_index_parameters(index,
param_string(params))``). The rule is tuned by ``benchmarks/search.py``; see that file's results.
"""

from __future__ import annotations

import re
from typing import Any

#: Below this many vectors an exact flat index is both fastest to build and fast enough to search.
FLAT_MAX = 50_000


def ivf_lists(n_vectors: int) -> int:
    """Number of IVF lists: a power of two near 4 * sqrt(n), between 256 and 65536."""
    return 1 << max(8, min(16, int(4 * n_vectors ** 0.5).bit_length() - 1))


def choose_factory(n_vectors: int, dim: int) -> str:
    """A FAISS index-factory string for ``n_vectors`` vectors of ``dim`` dimensions."""
    if n_vectors <= FLAT_MAX:
        return "Flat"
    return f"IVF{ivf_lists(n_vectors)},Flat"


def search_params(factory: str, n_vectors: int) -> dict[str, int]:
    """Search-time parameters for an index built from ``factory`` holding ``n_vectors`` vectors."""
    m = re.search(r"IVF(\d+)", factory)
    if m:
        return {"nprobe": max(1, min(int(m.group(1)), 16))}
    if "HNSW" in factory:
        return {"efSearch": 64}
    return {}


def param_string(params: dict[str, int]) -> str:
    """``{"nprobe": 16}`` -> ``"nprobe=16"`` (the syntax of ``faiss.ParameterSpace``)."""
    return ",".join(f"{k}={v}" for k, v in params.items())


def apply_search_params(index: Any, params: dict[str, int]) -> None:
    """Set ``params`` on a FAISS index (or one wrapped in an ``IndexIDMap``/pre-transform)."""
    if params:
        import faiss

        faiss.ParameterSpace().set_index_parameters(index, param_string(params))
