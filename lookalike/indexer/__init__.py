"""Indexing a photo library: listing files, embedding, writing SQL rows and FAISS vectors.

Public API (see :mod:`lookalike.library.folder` for the full contract)::

    from lookalike.library.folder import LibraryFolder, VectorIndex
    from lookalike.indexer.run import IndexOptions, index_library

Stages, each a small module: :mod:`~lookalike.indexer.listing` (walk folders) ->
:mod:`~lookalike.indexer.plan` (what changed) -> :func:`lookalike.embed.pipeline.prepare_files`
(read + hash + decode in worker processes) -> :func:`~lookalike.indexer.run.plan_batch` (what each
content lacks) -> :func:`~lookalike.indexer.run.embed_batch` (the pure mapper, inference, each content
once, run by a replaceable :class:`~lookalike.indexer.run.Distributor`) -> :mod:`~lookalike.indexer.writer` (batched commits, FAISS upkeep).
:mod:`~lookalike.indexer.doctor` checks and repairs; :mod:`~lookalike.library.index_types` picks the
FAISS index type by size.
"""
