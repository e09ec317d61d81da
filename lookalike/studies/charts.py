"""PNG charts of a study's results (matplotlib, Agg backend): shares with intervals, shares per
neighbour rank (the DreamSim paper's figure), Bradley-Terry strengths."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_charts(results: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    shares = results.get("shares") or {}
    metrics = list(shares)
    if not metrics:
        return written

    def err(table: dict[str, Any], names: list[str], key: str = "share") -> tuple[list[float], list[list[float]]]:
        vals = [table[m][key] or 0.0 for m in names]
        lo = [v - (table[m]["low"] if table[m]["low"] is not None else v) for v, m in zip(vals, names)]
        hi = [(table[m]["high"] if table[m]["high"] is not None else v) - v for v, m in zip(vals, names)]
        return vals, [lo, hi]

    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(metrics), 3.6))
    vals, yerr = err(shares, metrics)
    ax.bar(metrics, vals, yerr=yerr, capsize=4, color="#4c72b0")
    ax.set_ylabel("preference share (95% CI)")
    ax.set_title(results.get("study", ""))
    fig.autofmt_xdate(rotation=20)
    written.append(_save(fig, out / "shares.png"))

    per_rank = results.get("per_rank") or {}
    if per_rank:
        fig, ax = plt.subplots(figsize=(6, 3.8))
        ranks = sorted(per_rank, key=int)
        for m in metrics:
            vals, yerr = err({r: per_rank[r][m] for r in ranks}, ranks)
            ax.errorbar([int(r) for r in ranks], vals, yerr=yerr, marker="o", capsize=3, label=m)
        ax.set_xticks([int(r) for r in ranks])
        ax.set_xlabel("neighbour rank")
        ax.set_ylabel("preference share (95% CI)")
        ax.legend(fontsize=8)
        written.append(_save(fig, out / "shares_per_rank.png"))

    bt = results.get("bradley_terry") or {}
    if bt:
        fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(metrics), 3.6))
        vals, yerr = err(bt, metrics, "log_strength")
        ax.errorbar(metrics, vals, yerr=yerr, fmt="o", capsize=4)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_ylabel("Bradley-Terry log-strength (95% CI)")
        fig.autofmt_xdate(rotation=20)
        written.append(_save(fig, out / "bradley_terry.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
