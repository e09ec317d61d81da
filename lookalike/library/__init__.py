"""A photo library: the folder ``lookalike index`` writes and the one service every caller uses.

- :mod:`~lookalike.library.folder`: :class:`~lookalike.library.folder.LibraryFolder`, the folder's
  records (the database) and its FAISS indexes kept in step with them;
- :mod:`~lookalike.library.vectors`: FAISS indexes, for the reader and the writer alike;
- :mod:`~lookalike.library.reconcile`: how a FAISS file and the database disagree (loading and
  ``doctor`` both ask it);
- :mod:`~lookalike.library.service`: :class:`lookalike.Library`, what the CLI, the app and studies use;
- :mod:`~lookalike.library.thumbnails`, :mod:`~lookalike.library.status`.
"""
