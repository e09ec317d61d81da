"""Results (admin): shares with intervals, per-rank chart, Bradley-Terry, agreement, exclusions,
response times; live while the study runs; downloads of the answers and the NIGHTS export."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import streamlit as st

from lookalike.ui import kit


def _interval(row: dict[str, Any], key: str = "share") -> str:
    v, lo, hi = row.get(key), row.get("low"), row.get("high")
    if v is None:
        return "—"
    return (f"{v:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None
            else f"{v:.3f} (no interval: needs 2+ participants)")


def _tables(res: dict[str, Any]) -> None:
    shares, bt = res.get("shares") or {}, res.get("bradley_terry") or {}
    part, ans = res["participants"], res["answers"]
    c = st.columns(5)
    c[0].metric("Joined", part.get("joined", part["answered"]))
    c[1].metric("Finished", part.get("finished", 0))
    c[2].metric("Included", part["included"])
    c[3].metric("Excluded", len(part["excluded"]))
    c[4].metric("Answers analysed", ans["analysed"])
    if not shares:
        st.info("No answers to analyse yet.")
    else:
        level = int(round(100 * res["bootstrap"]["level"]))
        st.subheader("Preference shares")
        st.caption(f"Share of answers choosing each metric's candidate, with {level}% intervals "
                   f"(bootstrap over {res['bootstrap']['resamples']}). {res['merged']['note'].capitalize()}.")
        st.table([{"metric": m, "share [interval]": _interval(r), "chosen": r.get("chosen"),
                       "shown": r.get("shown")} for m, r in shares.items()], hide_index=True)
        if bt:
            st.subheader("Bradley–Terry strengths")
            st.table([{"metric": m, "log-strength [interval]": _interval(r, "log_strength")}
                          for m, r in bt.items()], hide_index=True)
        with tempfile.TemporaryDirectory() as tmp:
            from lookalike.studies.charts import write_charts

            paths = write_charts(res, Path(tmp))
            cols = st.columns(max(len(paths), 1))
            for col, p in zip(cols, paths):
                col.image(p.read_bytes(), caption=p.stem.replace("_", " "))
    st.subheader("Exclusions")
    if part["excluded"]:
        st.table([{"participant": e["participant"], "reasons": "; ".join(map(str, e["reasons"]))}
                      for e in part["excluded"]], hide_index=True)
    else:
        st.write("No participant excluded.")
    s, rt, agree = res.get("sentinels") or {}, res.get("response_ms") or {}, res.get("agreement") or {}
    for col, title, table in zip(st.columns(3), ("Sentinels", "Response times (ms)", "Agreement"),
                                 (s, rt, agree)):
        with col:
            st.subheader(title)
            st.table([{"": k.replace("_", " "), "value": _fmt(v)} for k, v in table.items()], hide_index=True)


def _fmt(v: Any) -> str:
    if v is None:
        return "— (too few answers)"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.0f}"
    return str(v)


@st.cache_data(ttl=5, show_spinner=False)
def _results(name: str, _token: str, replicates: int, stamp: int) -> dict[str, Any]:
    return kit.services().study.results(name, admin_token=_token, replicates=replicates)


def _downloads(svc: kit.Services, name: str, kind: str) -> None:
    st.subheader("Downloads")
    c = st.columns(3)
    with tempfile.TemporaryDirectory() as tmp:
        for col, fmt, mime in ((c[0], "csv", "text/csv"), (c[1], "json", "application/json")):
            path = svc.study.export(name, Path(tmp) / fmt, fmt, admin_token=svc.admin_token)[0]
            col.download_button(f"Answers ({fmt.upper()})", path.read_bytes(), file_name=f"{name}-{path.name}",
                                mime=mime, key=f"dl_{fmt}")
        if kind == "2afc":
            out = Path(tmp) / "nights"
            svc.study.export(name, out, "nights", admin_token=svc.admin_token)
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as z:
                for f in sorted(out.rglob("*")):
                    if f.is_file():
                        z.write(f, f.relative_to(out))
            c[2].download_button("NIGHTS export (zip)", buf.getvalue(), file_name=f"{name}-nights.zip",
                                 mime="application/zip", key="dl_nights")
        else:
            c[2].caption("The NIGHTS export is for 2afc studies.")


def main() -> None:
    svc = kit.require_admin()
    st.title("Results")
    studies = svc.study.list_studies(admin_token=svc.admin_token)
    if not studies:
        st.info("No study yet: design one on the Design page.")
        return
    names = [s["name"] for s in studies][::-1]
    a, b, c = st.columns([3, 1, 1])
    name = a.selectbox("Study", names, key="results_pick")
    replicates = b.select_slider("Bootstrap replicates", [200, 500, 1000, 2000], 1000, key="replicates")
    live = c.toggle("Live (every 5 s)", value=False, key="live")
    info = next(s for s in studies if s["name"] == name)

    @st.fragment(run_every=5 if live else None)
    def body() -> None:
        with kit.guard("The results"):
            now = svc.study.study_info(name, admin_token=svc.admin_token)
            with st.spinner("Analysing the answers..."):
                res = _results(name, svc.admin_token, int(replicates), int(now["answers"]))
            st.caption(f"{info['kind']} study, {now['status']}; {now['answers']} answers from "
                       f"{now['participants']} participants")
            _tables(res)

    body()
    with kit.guard("The downloads"):
        _downloads(svc, name, info["kind"])


with kit.guard("Results"):
    main()
