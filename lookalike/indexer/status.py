"""What a library holds: file counts, metrics and their indexes, failures with reasons."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, func, select

from lookalike.indexer.library import LibraryStore
from lookalike.store.db import current_revision
from lookalike.store.models import OK, Content, Image, MetricIndex, Root, Vector


def library_status(lib: LibraryStore) -> dict[str, Any]:
    """A JSON-able summary (``lookalike status --json`` prints exactly this)."""
    with lib.store.session() as s:
        by_status = {st: n for st, n in s.execute(select(Image.status, func.count()).group_by(Image.status))}
        contents = s.scalar(select(func.count()).select_from(Content)) or 0
        counts = {mid: n for mid, n in s.execute(select(Vector.metric_id, func.count())
                                                 .group_by(Vector.metric_id))}
        readable = by_status.get(OK, 0)
        metrics = []
        for row in s.scalars(select(MetricIndex).order_by(MetricIndex.name)):
            path = lib.index_path(row.name)
            prov = row.provenance or {}
            lacking = s.scalar(select(func.count()).select_from(Image).where(
                Image.status == OK, ~exists().where(Vector.metric_id == row.id,
                                                    Vector.content_id == Image.content_id))) or 0
            metrics.append({
                "name": row.name, "dim": row.dim, "distance": row.distance,
                "vectors": int(counts.get(row.id, 0)),
                "images_embedded": readable - lacking, "images_not_embedded": lacking,
                "coverage": round((readable - lacking) / readable, 4) if readable else 1.0,
                "saved_index_vectors": row.vector_count, "factory": row.factory,
                "factory_override": row.factory_override,
                "index_file": str(path), "index_bytes": path.stat().st_size if path.is_file() else None,
                "precision": prov.get("precision"), "packages": prov.get("packages", {}),
                "updated_at": row.updated_at,
            })
        problems = [{"path": p, "status": st, "reason": e or "", "detail": d or ""}
                    for p, st, e, d in s.execute(select(Image.path, Image.status, Image.error, Image.detail)
                                                 .where(Image.status != OK).order_by(Image.path))]
        reasons: dict[str, int] = {}
        for p in problems:
            reasons[p["reason"]] = reasons.get(p["reason"], 0) + 1
        roots = [{"path": p, "indexed_at": t} for p, t in
                 s.execute(select(Root.path, Root.indexed_at).order_by(Root.path))]
    return {
        "library": str(lib.path),
        "database": lib.store.engine.url.render_as_string(hide_password=True),
        "schema": current_revision(lib.store.engine),
        "files": {"total": sum(by_status.values()), "ok": by_status.get(OK, 0),
                  "failed": by_status.get("failed", 0), "skipped": by_status.get("skipped", 0)},
        "contents": contents,
        "metrics": metrics,
        "roots": roots,
        "reasons": reasons,
        "problems": problems,
    }
