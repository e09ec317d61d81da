"""Which FAISS index to build for a library of a given size, and how to search it.

:func:`choose_factory` returns a FAISS ``index_factory`` string; :func:`search_params` the
search-time parameters that go with it and :func:`build_params` the construction-time ones, both
applied with :func:`apply_params` (the same as
``faiss.ParameterSpace().set_index_parameters(index, param_string(params))``, which also reaches
through ``IndexIDMap`` and pre-transform wrappers). FAISS saves them with the index, but the
search parameters depend on the size, so :class:`~lookalike.library.vectors.VectorIndex` sets them
again after every load and add.

The rule (tuned with ``benchmarks/search.py`` on clustered unit vectors of dims 1280 and 1792, on
a 2-core machine; numbers in ``benchmarks/results/``):

* up to :data:`FLAT_MAX_FLOATS` floats in all (``n * dim``; 32 MiB, about 4,700 vectors of 1792
  dims or 6,500 of 1280): ``"Flat"`` -- exact and no build cost. A flat search reads every vector,
  so its latency is memory bandwidth: 50k x 1792 (358 MB) took 50-90 ms per query here;
* above: ``"HNSW16,Flat"`` built with ``efConstruction`` 100 -- a graph over the raw vectors.
  Single-query latency stays around a millisecond with recall@10 >= 0.95 where an IVF index needs
  to scan tens of thousands of full vectors (IVF1024 at 100k x 1792: 0.85 at nprobe 16, 0.96 only
  at nprobe 128 and 7 ms).
  At 1M x 1792 it beat FAISS's defaults (``HNSW32``, efConstruction 40, also autofaiss's pick):
  recall@10 0.986 at 1.1 ms p50 (efSearch 128) against 0.967 at 1.6 ms (HNSW32, efSearch 256),
  and it matches hnswlib with the same M and efConstruction. The price is build time (0.7 ms per
  vector on 2 cores, against 0.4 ms for HNSW32/40: a few per cent of embedding time with the
  fastest metric) and 2 * 16 * 4 = 128 bytes per vector on top of the vectors themselves.
  ``efSearch`` grows with the library (:func:`search_params`) to keep recall@10 >= 0.95.
"""

from __future__ import annotations

import re
from typing import Any

#: Up to this many stored floats (n * dim) an exact flat index is fast enough (a few ms a query).
FLAT_MAX_FLOATS = 8 * 1024 * 1024
#: Neighbours per HNSW node (FAISS's M; twice as many on the bottom layer).
HNSW_M = 16
#: Candidates examined while inserting into an HNSW graph (FAISS's default is 40).
HNSW_EF_CONSTRUCTION = 100


def choose_factory(n_vectors: int, dim: int) -> str:
    """A FAISS index-factory string for ``n_vectors`` vectors of ``dim`` dimensions.

    Choose with the size the library will have (the index is rebuilt, not converted, when a
    library outgrows a flat index)."""
    if n_vectors * dim <= FLAT_MAX_FLOATS:
        return "Flat"
    return f"HNSW{HNSW_M},Flat"


def _is_hnsw(factory: str) -> bool:
    return "HNSW" in factory and "IVF" not in factory


def build_params(factory: str) -> dict[str, int]:
    """Construction-time parameters for an index built from ``factory`` (apply before adding)."""
    if _is_hnsw(factory):
        return {"efConstruction": HNSW_EF_CONSTRUCTION}
    return {}


def search_params(factory: str, n_vectors: int) -> dict[str, int]:
    """Search-time parameters for an index built from ``factory`` holding ``n_vectors`` vectors.

    HNSW: ``efSearch`` 64 up to 200k vectors, 128 above: recall at a fixed ``efSearch`` falls as
    the graph grows (HNSW16/efConstruction 100 at 1M x 1792: 0.968 at 64, 0.986 at 128 with p50
    1.1 ms, 0.992 at 256).
    IVF (not chosen by :func:`choose_factory`, kept for indexes built by hand): ``nprobe`` = 1/16
    of the lists, at least 16.
    """
    if _is_hnsw(factory):
        return {"efSearch": 64 if n_vectors <= 200_000 else 128}
    m = re.search(r"IVF(\d+)", factory)
    if m:
        nlist = int(m.group(1))
        return {"nprobe": min(nlist, max(16, nlist // 16))}
    return {}


def param_string(params: dict[str, int]) -> str:
    """``{"nprobe": 16}`` -> ``"nprobe=16"`` (the syntax of ``faiss.ParameterSpace``)."""
    return ",".join(f"{k}={v}" for k, v in params.items())


def apply_params(index: Any, params: dict[str, int]) -> None:
    """Set ``params`` (search or build parameters) on a FAISS index, reaching through wrappers.

    Raises ``RuntimeError`` for a parameter the index does not have."""
    if params:
        import faiss

        faiss.ParameterSpace().set_index_parameters(index, param_string(params))
