"""The study service: the one API the CLI and the UI call (no Streamlit, no SQL here).

Participant calls take the study's public id (from the link) and the participant's token and
return plain JSON-able dicts that name no metric, content id or path: images are opaque tokens,
candidates are letters. Admin calls need the admin token the service was opened with.

The service holds a :class:`lookalike.Library` and keeps its tables in the library's database
through :class:`lookalike.store.studies.StudyStore` (short write transactions, retried while the
database is busy; answers are idempotent: one per (participant, trial), a retried submit returns
the stored answer).
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lookalike.errors import UsageError
from lookalike.store.studies import (
    AlreadyFinishedError,
    AnswerContext,
    InvalidAnswerError,
    NewAnswer,
    NewCandidate,
    NewTrial,
    Plan,
    Progress,
    Served,
    StudyClosedError,
    StudyError,
    StudyRow,
    StudyStore,
    TrialCounts,
    TrialRow,
    UnknownParticipantError,
    UnknownStudyError,
)
from lookalike.studies import blinding
from lookalike.studies.config import StudyConfig

if TYPE_CHECKING:
    from lookalike.library.service import Library

log = logging.getLogger(__name__)

#: URL parameters recorded with a participant when present.
URL_PARAMS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")

__all__ = ["AdminTokenError", "AlreadyFinishedError", "ImageGoneError", "InvalidAnswerError", "StudyClosedError",
           "StudyError", "StudyService", "UnknownParticipantError", "UnknownStudyError", "URL_PARAMS",
           "answers_table", "stored_config"]


class AdminTokenError(UsageError):
    """An admin operation without the right admin token."""


class ImageGoneError(StudyError):
    """A study image has no readable file in the library any more."""


class StudyService:
    """Studies of one library (:class:`lookalike.Library`). Build with :meth:`open` (the service
    owns and closes the library), or wrap a library the caller owns: ``StudyService(library,
    admin_token)``. ``library``: the :class:`lookalike.Library`; ``store``: its study tables
    (:class:`lookalike.store.studies.StudyStore`). Thread-safe: a server should share one instance
    between its threads (on SQLite their writes then queue fairly on one lock); separate instances
    and processes are safe too."""

    def __init__(self, library: Library, admin_token: str | None = None) -> None:
        self.library = library
        self.store = StudyStore(library.database)
        self._admin = admin_token
        self._owns = False
        self._tokens: dict[int, dict[str, int]] = {}

    @classmethod
    def open(cls, library_path: str | os.PathLike[str] | None = None, db_url: str | None = None,
             admin_token: str | None = None, device: str | None = None) -> StudyService:
        """Open the library at ``library_path`` (``db_url``, ``device``: as in
        :meth:`lookalike.Library.open`) for this service alone; :meth:`close` closes it."""
        from lookalike.library.service import Library

        svc = cls(Library.open(library_path, db_url=db_url, device=device), admin_token)
        svc._owns = True
        return svc

    def close(self) -> None:
        if self._owns:
            self.library.close()

    def __enter__(self) -> StudyService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_admin(self, token: str | None) -> None:
        if self._admin is None or token is None or not blinding.same_token(self._admin, token):
            raise AdminTokenError("this operation needs the admin token")

    # -- admin ---------------------------------------------------------------------------------------

    def create_study(self, name: str, config: StudyConfig, *, admin_token: str | None) -> dict[str, Any]:
        """Design and store a study (trials frozen now). Returns :meth:`study_info`."""
        from lookalike.studies.design import SENTINEL, design_trials

        self._check_admin(admin_token)
        if not name or len(name) > 128:
            raise UsageError("a study needs a name of 1 to 128 characters")
        if self.store.exists(name):
            raise UsageError(f"a study named {name!r} exists already")
        design = design_trials(config, self.library)
        cfg = config.to_dict()
        if not cfg["completion_code"]:
            cfg["completion_code"] = blinding.new_id(6).upper().replace("-", "X").replace("_", "Y")
        cfg["skipped"] = design.skipped
        trials = [NewTrial(spec.role, spec.reference, spec.reference_sha256,
                           [NewCandidate(c.content_id, c.sha256, list(c.metrics)) for c in spec.candidates],
                           rank=spec.rank,
                           payload={"correct_slot": spec.correct_slot, **spec.info} if spec.role == SENTINEL
                           else dict(spec.info))
                  for spec in design.trials]
        self.store.create(name, config.kind, config.description, cfg, blinding.new_id(), blinding.new_secret(),
                          trials)
        log.info("study %s: %d trials (%d practice, %d sentinels)", name, len(design.trials),
                 design.count("practice"), design.count("sentinel"))
        return self.study_info(name, admin_token=admin_token)

    def list_studies(self, *, admin_token: str | None) -> list[dict[str, Any]]:
        self._check_admin(admin_token)
        return [self.study_info(n, admin_token=admin_token) for n in self.store.names()]

    def study_info(self, name: str, *, admin_token: str | None) -> dict[str, Any]:
        """Name, kind, status, public id, config, trial and participant counts (admin view)."""
        self._check_admin(admin_token)
        info = self.store.summary(name)
        study = info.study
        return {"name": study.name, "kind": study.kind, "status": study.status,
                "public_id": study.public_id, "created_at": study.created_at.isoformat(),
                "closed_at": study.closed_at.isoformat() if study.closed_at else None,
                "trials": dict(info.trials), "participants": info.participants, "finished": info.finished,
                "answers": info.answers, "config": dict(study.config)}

    def close_study(self, name: str, *, admin_token: str | None) -> dict[str, Any]:
        """No new participants or answers after this."""
        self._check_admin(admin_token)
        self.store.close(name)
        return self.study_info(name, admin_token=admin_token)

    def answers(self, name: str, *, admin_token: str | None) -> list[dict[str, Any]]:
        """Every answer in long format (one dict per answer; metric names and content ids included)."""
        self._check_admin(admin_token)
        study, records = self.store.answers(name)
        out = []
        for r in records:
            t, p, ims = r.trial, r.participant, r.trial.images
            shown = [{"letter": blinding.letter(i), "slot": slot, "content_id": ims[slot].content_id,
                      "sha256": ims[slot].sha256, "metrics": list(ims[slot].metrics)}
                     for i, slot in enumerate(r.positions)]
            chosen = ims[r.choice_slot] if r.choice_slot is not None else None
            out.append({
                "study": study.name, "kind": study.kind, "participant": p.token,
                "external_id": p.external_id, **{k.lower(): p.params.get(k) for k in URL_PARAMS},
                "trial_id": t.id, "role": t.role, "seq": r.seq, "rank": t.rank,
                "reference_id": t.reference_id, "reference_sha256": t.reference_sha256,
                "choice": r.choice, "choice_slot": r.choice_slot,
                "chosen_content_id": chosen.content_id if chosen else None,
                "chosen_metrics": list(chosen.metrics) if chosen else [],
                "correct_slot": t.payload.get("correct_slot"),
                "shown": shown, "shown_at": _iso(r.shown_at), "answered_at": _iso(r.answered_at),
                "response_ms": r.response_ms, "too_fast": r.too_fast})
        return out

    def results(self, name: str, *, admin_token: str | None, replicates: int = 2000, seed: int = 0,
                within: bool = False) -> dict[str, Any]:
        """The analysis (see :mod:`lookalike.studies.analysis`) as JSON-able numbers."""
        from lookalike.studies.analysis import ExclusionRule, analyse

        info = self.study_info(name, admin_token=admin_token)
        cfg = stored_config(info["config"])
        table = answers_table(self.answers(name, admin_token=admin_token), cfg.metrics)
        rule = ExclusionRule(cfg.max_sentinel_failures, cfg.min_response_ms, cfg.max_fast_share)
        out = analyse(table, rule, replicates=replicates, seed=seed, drop_too_fast=cfg.drop_too_fast,
                      within=within)
        out["participants"]["joined"] = info["participants"]
        out["participants"]["finished"] = info["finished"]
        out["merged"]["trials_skipped"] = info["config"].get("skipped", {})
        return {"study": name, "kind": info["kind"], "status": info["status"], **out}

    def export(self, name: str, out: str | os.PathLike[str], fmt: str = "csv", *,
               admin_token: str | None) -> list[Path]:
        """Write the answers: ``csv`` / ``json`` (long format) or ``nights`` (2afc studies)."""
        from lookalike.studies import export

        info = self.study_info(name, admin_token=admin_token)
        rows = self.answers(name, admin_token=admin_token)
        if fmt in ("csv", "json"):
            return [export.write_long(rows, Path(out), fmt)]
        if fmt == "nights":
            if info["kind"] != "2afc":
                raise UsageError("the NIGHTS layout is for 2afc studies")
            excluded = {e["participant"] for e in self.results(
                name, admin_token=admin_token, replicates=10)["participants"]["excluded"]}
            return export.write_nights(rows, Path(out), self.content_path, excluded=excluded,
                                       seed=int(info["config"].get("seed", 0)))
        raise UsageError(f"unknown export format {fmt!r} (csv, json, nights)")

    def preview(self, name: str, n: int = 3, *, admin_token: str | None) -> list[dict[str, Any]]:
        """The first ``n`` main trials as a participant's client would receive them."""
        self._check_admin(admin_token)
        study = self.store.get(name=name)
        trials = self.store.trials(study.id, role="main", limit=n)
        return [self._payload(study, t, list(range(len(t.images))), i, len(trials), None)
                for i, t in enumerate(trials)]

    # -- images ----------------------------------------------------------------------------------------

    def _token_map(self, study: StudyRow) -> dict[str, int]:
        if study.id not in self._tokens:
            self._tokens[study.id] = {blinding.image_token(study.secret, i): i
                                      for i in self.store.content_ids(study.id)}
        return self._tokens[study.id]

    def content_path(self, content_id: int) -> Path:
        """A readable file holding ``content_id`` (server side only)."""
        for path in self.library.paths_for([content_id]).get(int(content_id), []):
            if os.path.isfile(path):
                return Path(path)
        raise ImageGoneError(f"image {content_id} has no readable file in the library any more")

    def image_path(self, public_id: str, token: str) -> Path:
        """The file behind an image token of a study (for the UI server; never sent to clients)."""
        cid = self._token_map(self.store.get(public_id=public_id)).get(token)
        if cid is None:
            raise UsageError("unknown image")
        return self.content_path(cid)

    def image_bytes(self, public_id: str, token: str, max_side: int = 1024) -> bytes:
        """The image behind a token as a JPEG with no metadata (EXIF orientation applied), at most
        ``max_side`` pixels on its longer side: nothing in the bytes names the file."""
        from lookalike.embed.images import load_image

        img = load_image(self.image_path(public_id, token))
        img.thumbnail((max_side, max_side))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        return buf.getvalue()

    # -- participants -----------------------------------------------------------------------------------

    def public_info(self, public_id: str) -> dict[str, Any]:
        """What a participant's start page shows: kind, instructions, consent, trial count."""
        study = self.store.get(public_id=public_id)
        cfg = stored_config(study.config)
        roles = self.store.trial_counts(study.id)
        total = (roles["practice"] + min(cfg.trials_per_participant, roles["main"])
                 + min(cfg.sentinels, roles["sentinel"]))
        return {"study": study.public_id, "kind": study.kind, "open": study.is_open,
                "instructions": cfg.instructions_text(), "consent": cfg.consent,
                "practice": roles["practice"], "total": total}

    def join(self, public_id: str, params: Mapping[str, str] | None = None,
             participant: str | None = None) -> dict[str, Any]:
        """Join (or resume) a study. ``participant``: the token of a returning participant;
        ``params``: the link's URL parameters (``PROLIFIC_PID``, or ``participant``, names the person:
        joining again resumes; ``STUDY_ID``/``SESSION_ID`` are recorded).
        Returns :meth:`progress`, with the ``participant`` token to put in the link."""
        params = dict(params or {})
        if participant:
            return self.progress(public_id, participant)
        external = params.get("PROLIFIC_PID") or params.get("participant") or blinding.new_id()
        recorded = {k: params[k] for k in URL_PARAMS if params.get(k)}
        token = self.store.join(public_id, external, recorded, _plan, blinding.new_id)
        return self.progress(public_id, token)

    def progress(self, public_id: str, participant: str) -> dict[str, Any]:
        return _progress(self.store.progress(public_id, participant))

    def next_trial(self, public_id: str, participant: str) -> dict[str, Any]:
        """The participant's next unanswered trial (the same one again until it is answered), or
        their progress with the completion code when they are done. A closed study serves no more
        trials (:class:`StudyClosedError`)."""
        got = self.store.serve_next(public_id, participant)
        if isinstance(got, Progress):
            return _progress(got)
        assert isinstance(got, Served)
        return self._payload(got.study, got.trial, list(got.positions), got.seq, got.total, got.participant)

    def _payload(self, study: StudyRow, trial: TrialRow, positions: list[int], seq: int, total: int,
                 participant: str | None) -> dict[str, Any]:
        ims = trial.images
        prompt = ("Which of the two looks more like the reference?" if study.kind == "2afc"
                  else "Which candidate looks most like the reference?")
        return {"study": study.public_id, "participant": participant, "kind": study.kind,
                "index": seq, "total": total, "practice": trial.role == "practice", "finished": False,
                "prompt": prompt, "reference": blinding.image_token(study.secret, trial.reference_id or -1),
                "options": [{"letter": blinding.letter(i),
                             "image": blinding.image_token(study.secret, ims[slot].content_id or -1)}
                            for i, slot in enumerate(positions)]}

    def record_answer(self, public_id: str, participant: str, index: int, choice: str,
                      response_ms: float | None = None) -> dict[str, Any]:
        """Store the answer to trial ``index`` of the participant's sequence: ``choice`` is the
        letter (``A``...), a 1-based number, or ``left``/``right`` for 2AFC. ``response_ms``: the
        client's own measurement (default: from when the trial was last served).

        Idempotent: a second submit for the same trial stores nothing and returns the first answer
        (``duplicate: true``). Answers must come in order, for trials that were shown."""

        def score(ctx: AnswerContext) -> NewAnswer:
            try:
                pos = blinding.position_of(str(choice), len(ctx.positions))
            except ValueError as exc:
                raise InvalidAnswerError(str(exc)) from exc
            slot = ctx.positions[pos]
            ms = float(response_ms) if response_ms is not None else (ctx.now - ctx.shown_at).total_seconds() * 1000
            floor = float(ctx.study.config.get("min_response_ms", 0) or 0)
            label = ("left" if slot == 0 else "right") if ctx.study.kind == "2afc" else blinding.letter(pos)
            return NewAnswer(label, slot, ms, ms < floor)

        r = self.store.record_answer(public_id, participant, index, score)
        return {**_progress(r.progress), "index": r.index, "stored": r.stored, "duplicate": r.duplicate,
                "too_fast": r.too_fast}


def _plan(study: StudyRow, counts: TrialCounts) -> Plan:
    """A new participant's sequence: balanced assignment (:mod:`lookalike.studies.assign`)."""
    from lookalike.studies.assign import least_assigned, plan_sequence

    cfg = stored_config(study.config)
    rng = np.random.default_rng()
    got = plan_sequence(list(counts.assigned["practice"]),
                        least_assigned(counts.assigned["main"], cfg.trials_per_participant, rng),
                        least_assigned(counts.assigned["sentinel"], cfg.sentinels, rng), counts.slots, rng)
    return list(zip(got.trial_ids, got.positions))


def _progress(p: Progress) -> dict[str, Any]:
    out: dict[str, Any] = {"study": p.study.public_id, "participant": p.participant, "answered": p.answered,
                           "total": p.total, "finished": p.finished}
    if p.finished:
        out["completion_code"] = p.study.config.get("completion_code", "")
    return out


def stored_config(data: Mapping[str, Any]) -> StudyConfig:
    """The :class:`StudyConfig` saved with a study (without what creation added beside it)."""
    return StudyConfig.from_dict({k: v for k, v in data.items() if k != "skipped"})


def answers_table(rows: list[dict[str, Any]], metrics: list[str]) -> Any:
    """Long-format answers (:meth:`StudyService.answers`) -> an :class:`analysis.Answers` table
    (practice answers left out)."""
    from lookalike.studies.analysis import Answers

    rows = [r for r in rows if r["role"] != "practice"]
    people = sorted({r["participant"] for r in rows})
    index = {p: i for i, p in enumerate(people)}
    col = {m: i for i, m in enumerate(metrics)}
    n, m = len(rows), len(metrics)
    slot_of = np.full((n, m), -1, np.int64)
    merged = np.zeros(n, bool)
    for i, r in enumerate(rows):
        for item in r["shown"]:
            for name in item["metrics"]:
                if name in col:
                    slot_of[i, col[name]] = item["slot"]
            merged[i] |= len(item["metrics"]) > 1
    return Answers(
        metrics=list(metrics), participants=people,
        participant=np.array([index[r["participant"]] for r in rows], np.int64),
        trial=np.array([r["trial_id"] for r in rows], np.int64),
        sentinel=np.array([r["role"] == "sentinel" for r in rows], bool),
        rank=np.array([r["rank"] if r["rank"] is not None else -1 for r in rows], np.int64),
        slot_of=slot_of, slot=np.array([r["choice_slot"] for r in rows], np.int64),
        correct=np.array([r["correct_slot"] if r["correct_slot"] is not None else -1 for r in rows], np.int64),
        response_ms=np.array([r["response_ms"] if r["response_ms"] is not None else np.nan for r in rows], float),
        too_fast=np.array([r["too_fast"] for r in rows], bool), merged=merged)


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat() if t is not None else None
