"""What a library holds: file counts, metrics and their indexes, failures with reasons."""

from __future__ import annotations

from typing import Any

from lookalike.library.folder import LibraryFolder
from lookalike.store.records import FAILED, OK, SKIPPED


def library_status(lib: LibraryFolder) -> dict[str, Any]:
    """A JSON-able summary (``lookalike status --json`` prints exactly this)."""
    rec = lib.records
    by_status = rec.status_counts()
    counts = rec.vector_counts()
    readable = by_status.get(OK, 0)
    metrics = []
    for row in rec.metrics():
        path = lib.index_path(row.name)
        prov = row.provenance or {}
        lacking = rec.unembedded_count(row.id)
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
                for p, st, e, d in rec.problems()]
    reasons: dict[str, int] = {}
    for p in problems:
        reasons[p["reason"]] = reasons.get(p["reason"], 0) + 1
    return {
        "library": str(lib.path),
        "database": rec.display_url(),
        "schema": rec.schema(),
        "files": {"total": sum(by_status.values()), "ok": by_status.get(OK, 0),
                  "failed": by_status.get(FAILED, 0), "skipped": by_status.get(SKIPPED, 0)},
        "contents": rec.content_count(),
        "metrics": metrics,
        "roots": [{"path": p, "indexed_at": t} for p, t in rec.roots_indexed()],
        "reasons": reasons,
        "problems": problems,
    }
