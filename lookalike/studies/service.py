"""The study service: the one API the CLI and the UI call (no Streamlit, no SQL outside).

Participant calls take the study's public id (from the link) and the participant's token and
return plain JSON-able dicts that name no metric, content id or path: images are opaque tokens,
candidates are letters. Admin calls need the admin token the service was opened with.

Writes are short transactions; on SQLite they take the write lock up front (``BEGIN IMMEDIATE``,
with the store's busy timeout) and are retried on a lock timeout, on PostgreSQL assignment locks
the study row. Answers are idempotent: one per (participant, trial), a retried submit returns the
stored answer.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from lookalike.errors import LookalikeError, UsageError
from lookalike.store.models import OK, Assignment, Image, Judgment, Participant, Study, Trial, TrialImage
from lookalike.studies import blinding
from lookalike.studies.config import StudyConfig

log = logging.getLogger(__name__)

T = TypeVar("T")
#: URL parameters recorded with a participant when present.
URL_PARAMS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")
OPEN, CLOSED = "open", "closed"
RETRIES = 8


class StudyError(LookalikeError):
    """A study operation that cannot be done (unknown study, closed, bad answer...)."""


class UnknownStudyError(StudyError):
    pass


class StudyClosedError(StudyError):
    pass


class UnknownParticipantError(StudyError):
    pass


class AlreadyFinishedError(StudyError):
    pass


class InvalidAnswerError(StudyError):
    pass


class AdminTokenError(UsageError):
    """An admin operation without the right admin token."""


class ImageGoneError(StudyError):
    """A study image has no readable file in the library any more."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _aware(t: dt.datetime | None) -> dt.datetime | None:
    """SQLite returns naive datetimes (stored as UTC)."""
    return t.replace(tzinfo=dt.timezone.utc) if t is not None and t.tzinfo is None else t


class StudyService:
    """Studies of one library. Build with :meth:`open`. Thread-safe: a server should share one
    instance between its threads (on SQLite their writes then queue fairly on one lock); separate
    instances and processes are safe too (each has its own connections; SQLite's busy timeout
    and retries make them wait their turn)."""

    def __init__(self, indexed: Any, admin_token: str | None = None, owns: bool = False) -> None:
        self.indexed = indexed
        self.store = indexed.store
        self._admin = admin_token
        self._owns = owns
        self._write = sessionmaker(self.store.engine.execution_options(sqlite_immediate=True),
                                   expire_on_commit=False)
        self._tokens: dict[int, dict[str, int]] = {}
        # SQLite has one writer at a time: this instance's threads queue here instead of polling the
        # file lock (which starves the holder under many threads); other processes still wait on it
        self._local_lock: AbstractContextManager[Any] = (threading.Lock() if self.store.dialect == "sqlite"
                                                          else nullcontext())

    @classmethod
    def open(cls, library: str | os.PathLike[str] | None = None, db_url: str | None = None,
             admin_token: str | None = None) -> StudyService:
        from lookalike.indexer.library import LibraryStore

        return cls(LibraryStore.open(library, db_url=db_url), admin_token, owns=True)

    def close(self) -> None:
        if self._owns:
            self.indexed.close()

    def __enter__(self) -> StudyService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------------------

    def _check_admin(self, token: str | None) -> None:
        if self._admin is None or token is None or not blinding.same_token(self._admin, token):
            raise AdminTokenError("this operation needs the admin token")

    def _retry(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in a write transaction, retrying when the database is busy. On SQLite this
        instance's threads queue on a lock first (no busy-polling for the file lock)."""
        for attempt in range(RETRIES):
            try:
                with self._local_lock, self._write() as s, s.begin():
                    return work(s)
            except OperationalError as exc:
                msg = str(exc).lower()
                if attempt == RETRIES - 1 or not any(w in msg for w in ("locked", "busy", "deadlock",
                                                                         "serializ", "could not")):
                    raise
                log.debug("database busy (%s); retrying", exc.orig)
                time.sleep(0.05 * 2 ** attempt)
        raise AssertionError("unreachable")

    def _study(self, s: Session, *, name: str | None = None, public_id: str | None = None) -> Study:
        q = select(Study).where(Study.name == name) if name is not None else \
            select(Study).where(Study.public_id == public_id)
        study = s.scalar(q)
        if study is None:
            raise UnknownStudyError(f"no study {name!r}" if name is not None else "no such study")
        return study

    def _participant(self, s: Session, study: Study, token: str) -> Participant:
        p = s.scalar(select(Participant).where(Participant.token == token, Participant.study_id == study.id))
        if p is None:
            raise UnknownParticipantError("unknown participant for this study")
        return p

    # -- admin ---------------------------------------------------------------------------------------

    def create_study(self, name: str, config: StudyConfig, *, admin_token: str | None,
                     device: str | None = None) -> dict[str, Any]:
        """Design and store a study (trials frozen now). Returns :meth:`study_info`."""
        from lookalike.search.library import Library as SearchLibrary
        from lookalike.studies.design import SENTINEL, design_trials

        self._check_admin(admin_token)
        if not name or len(name) > 128:
            raise UsageError("a study needs a name of 1 to 128 characters")
        with self.store.session() as s:
            if s.scalar(select(Study.id).where(Study.name == name)) is not None:
                raise UsageError(f"a study named {name!r} exists already")
        search = SearchLibrary(self.indexed, device=device)  # shares our store; not closed here
        design = design_trials(config, search, self.indexed)
        cfg = config.to_dict()
        if not cfg["completion_code"]:
            cfg["completion_code"] = blinding.new_id(6).upper().replace("-", "X").replace("_", "Y")
        cfg["skipped"] = design.skipped

        def work(s: Session) -> int:
            study = Study(name=name, kind=config.kind, description=config.description, config=cfg,
                          public_id=blinding.new_id(), secret=blinding.new_secret(), status=OPEN)
            for pos, spec in enumerate(design.trials):
                trial = Trial(position=pos, role=spec.role, rank=spec.rank, reference_id=spec.reference,
                              reference_sha256=spec.reference_sha256,
                              payload={"correct_slot": spec.correct_slot, **spec.info} if spec.role == SENTINEL
                              else dict(spec.info))
                for slot, c in enumerate(spec.candidates):
                    trial.images.append(TrialImage(slot=slot, content_id=c.content_id, sha256=c.sha256,
                                                   metrics=list(c.metrics)))
                if config.kind == "2afc":
                    trial.left_id, trial.right_id = spec.candidates[0].content_id, spec.candidates[1].content_id
                    trial.left_label = ",".join(spec.candidates[0].metrics) or None
                    trial.right_label = ",".join(spec.candidates[1].metrics) or None
                study.trials.append(trial)
            s.add(study)
            s.flush()
            return study.id

        self._retry(work)
        log.info("study %s: %d trials (%d practice, %d sentinels)", name, len(design.trials),
                 design.count("practice"), design.count("sentinel"))
        return self.study_info(name, admin_token=admin_token)

    def list_studies(self, *, admin_token: str | None) -> list[dict[str, Any]]:
        self._check_admin(admin_token)
        with self.store.session() as s:
            names = list(s.scalars(select(Study.name).order_by(Study.id)))
        return [self.study_info(n, admin_token=admin_token) for n in names]

    def study_info(self, name: str, *, admin_token: str | None) -> dict[str, Any]:
        """Name, kind, status, public id, config, trial and participant counts (admin view)."""
        self._check_admin(admin_token)
        with self.store.session() as s:
            study = self._study(s, name=name)
            roles = dict(s.execute(select(Trial.role, func.count()).where(Trial.study_id == study.id)
                                   .group_by(Trial.role)).all())
            n_part = s.scalar(select(func.count()).select_from(Participant).where(
                Participant.study_id == study.id)) or 0
            n_done = s.scalar(select(func.count()).select_from(Participant).where(
                Participant.study_id == study.id, Participant.finished_at.is_not(None))) or 0
            n_ans = s.scalar(select(func.count()).select_from(Judgment).join(Trial).where(
                Trial.study_id == study.id)) or 0
            return {"name": study.name, "kind": study.kind, "status": study.status,
                    "public_id": study.public_id, "created_at": study.created_at.isoformat(),
                    "closed_at": study.closed_at.isoformat() if study.closed_at else None,
                    "trials": {"main": roles.get("main", 0), "practice": roles.get("practice", 0),
                               "sentinel": roles.get("sentinel", 0)},
                    "participants": n_part, "finished": n_done, "answers": n_ans,
                    "config": dict(study.config)}

    def close_study(self, name: str, *, admin_token: str | None) -> dict[str, Any]:
        """No new participants or answers after this."""
        self._check_admin(admin_token)

        def work(s: Session) -> None:
            study = self._study(s, name=name)
            if study.status != CLOSED:
                study.status, study.closed_at = CLOSED, _now()

        self._retry(work)
        return self.study_info(name, admin_token=admin_token)

    def answers(self, name: str, *, admin_token: str | None) -> list[dict[str, Any]]:
        """Every answer in long format (one dict per answer; metric names and content ids included)."""
        self._check_admin(admin_token)
        with self.store.session() as s:
            study = self._study(s, name=name)
            trials = {t.id: t for t in s.scalars(select(Trial).where(Trial.study_id == study.id))}
            images: dict[int, list[TrialImage]] = {}
            for im in s.scalars(select(TrialImage).join(Trial).where(Trial.study_id == study.id)
                                .order_by(TrialImage.trial_id, TrialImage.slot)):
                images.setdefault(im.trial_id, []).append(im)
            people = {p.id: p for p in s.scalars(select(Participant).where(Participant.study_id == study.id))}
            rows = s.execute(select(Judgment, Assignment.seq).join(Assignment, Judgment.assignment_id == Assignment.id)
                             .where(Judgment.participant_id.in_(list(people) or [-1]))
                             .order_by(Judgment.participant_id, Assignment.seq)).all()
        out = []
        for j, seq in rows:
            t, p, ims = trials[j.trial_id], people[j.participant_id], images[j.trial_id]
            shown = [{"letter": blinding.letter(i), "slot": slot, "content_id": ims[slot].content_id,
                      "sha256": ims[slot].sha256, "metrics": list(ims[slot].metrics)}
                     for i, slot in enumerate(j.positions or [])]
            chosen = ims[j.choice_slot] if j.choice_slot is not None else None
            out.append({
                "study": study.name, "kind": study.kind, "participant": p.token,
                "external_id": p.external_id, **{k.lower(): p.params.get(k) for k in URL_PARAMS},
                "trial_id": t.id, "role": t.role, "seq": seq, "rank": t.rank,
                "reference_id": t.reference_id, "reference_sha256": t.reference_sha256,
                "choice": j.choice, "choice_slot": j.choice_slot,
                "chosen_content_id": chosen.content_id if chosen else None,
                "chosen_metrics": list(chosen.metrics) if chosen else [],
                "correct_slot": (t.payload or {}).get("correct_slot"),
                "shown": shown, "shown_at": _iso(j.shown_at), "answered_at": _iso(j.answered_at),
                "response_ms": j.response_ms, "too_fast": bool(j.too_fast)})
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
        with self.store.session() as s:
            study = self._study(s, name=name)
            trials = list(s.scalars(select(Trial).where(Trial.study_id == study.id, Trial.role == "main")
                                    .order_by(Trial.position).limit(n)))
            return [self._payload(study, t, list(range(len(t.images))), i, len(trials), None)
                    for i, t in enumerate(trials)]

    # -- images ----------------------------------------------------------------------------------------

    def _token_map(self, s: Session, study: Study) -> dict[str, int]:
        if study.id not in self._tokens:
            ids = set(s.scalars(select(TrialImage.content_id).join(Trial).where(Trial.study_id == study.id)))
            ids |= set(s.scalars(select(Trial.reference_id).where(Trial.study_id == study.id)))
            self._tokens[study.id] = {blinding.image_token(study.secret or "", i): int(i)
                                      for i in ids if i is not None}
        return self._tokens[study.id]

    def content_path(self, content_id: int) -> Path:
        """A readable file holding ``content_id`` (server side only)."""
        for path in self.indexed.all_paths_for([content_id]).get(int(content_id), []):
            if os.path.isfile(path):
                return Path(path)
        raise ImageGoneError(f"image {content_id} has no readable file in the library any more")

    def image_path(self, public_id: str, token: str) -> Path:
        """The file behind an image token of a study (for the UI server; never sent to clients)."""
        with self.store.session() as s:
            study = self._study(s, public_id=public_id)
            cid = self._token_map(s, study).get(token)
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
        with self.store.session() as s:
            study = self._study(s, public_id=public_id)
            cfg = stored_config(study.config)
            n_practice = s.scalar(select(func.count()).select_from(Trial).where(
                Trial.study_id == study.id, Trial.role == "practice")) or 0
            return {"study": study.public_id, "kind": study.kind, "open": study.status == OPEN,
                    "instructions": cfg.instructions_text(), "consent": cfg.consent,
                    "practice": n_practice, "total": self._planned_total(s, study, cfg)}

    def _planned_total(self, s: Session, study: Study, cfg: StudyConfig) -> int:
        roles = dict(s.execute(select(Trial.role, func.count()).where(Trial.study_id == study.id)
                               .group_by(Trial.role)).all())
        return (roles.get("practice", 0) + min(cfg.trials_per_participant, roles.get("main", 0))
                + min(cfg.sentinels, roles.get("sentinel", 0)))

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

        def work(s: Session) -> str:
            from lookalike.studies.assign import least_assigned, plan_sequence

            study = self._study(s, public_id=public_id)
            if s.bind.dialect.name == "postgresql":  # serialise assignment per study
                s.execute(select(Study.id).where(Study.id == study.id).with_for_update())
            old = s.scalar(select(Participant).where(Participant.study_id == study.id,
                                                     Participant.external_id == external))
            if old is not None:
                return old.token
            if study.status != OPEN:
                raise StudyClosedError("this study is closed")
            cfg = stored_config(study.config)
            counts: dict[str, dict[int, int]] = {"main": {}, "practice": {}, "sentinel": {}}
            slots: dict[int, int] = {}
            for tid, role, n in s.execute(select(Trial.id, Trial.role, func.count(TrialImage.id))
                                          .join(TrialImage).where(Trial.study_id == study.id)
                                          .group_by(Trial.id, Trial.role)):
                counts[role][tid] = 0
                slots[tid] = n
            for tid, n in s.execute(select(Assignment.trial_id, func.count()).join(Trial)
                                    .where(Trial.study_id == study.id).group_by(Assignment.trial_id)):
                for role in counts:
                    if tid in counts[role]:
                        counts[role][tid] = n
            rng = np.random.default_rng()
            plan = plan_sequence(list(counts["practice"]),
                                 least_assigned(counts["main"], cfg.trials_per_participant, rng),
                                 least_assigned(counts["sentinel"], cfg.sentinels, rng), slots, rng)
            p = Participant(study_id=study.id, token=blinding.new_id(), external_id=external, params=recorded)
            s.add(p)
            s.flush()
            s.add_all([Assignment(participant_id=p.id, trial_id=t, seq=i, positions=pos)
                       for i, (t, pos) in enumerate(zip(plan.trial_ids, plan.positions))])
            return p.token

        for attempt in range(3):
            try:
                token = self._retry(work)
                break
            except IntegrityError:  # the same PROLIFIC_PID joined twice at once: take the first
                if attempt == 2:
                    raise
        return self.progress(public_id, token)

    def progress(self, public_id: str, participant: str) -> dict[str, Any]:
        with self.store.session() as s:
            study = self._study(s, public_id=public_id)
            p = self._participant(s, study, participant)
            return self._progress(s, study, p)

    def _progress(self, s: Session, study: Study, p: Participant) -> dict[str, Any]:
        total = s.scalar(select(func.count()).select_from(Assignment).where(Assignment.participant_id == p.id)) or 0
        done = s.scalar(select(func.count()).select_from(Judgment).where(Judgment.participant_id == p.id)) or 0
        out: dict[str, Any] = {"study": study.public_id, "participant": p.token, "answered": done,
                               "total": total, "finished": p.finished_at is not None}
        if p.finished_at is not None:
            out["completion_code"] = study.config.get("completion_code", "")
        return out

    def next_trial(self, public_id: str, participant: str) -> dict[str, Any]:
        """The participant's next unanswered trial (the same one again until it is answered), or
        their progress with the completion code when they are done. A closed study serves no more
        trials (:class:`StudyClosedError`)."""

        def work(s: Session) -> dict[str, Any]:
            study = self._study(s, public_id=public_id)
            p = self._participant(s, study, participant)
            if p.finished_at is not None:
                return self._progress(s, study, p)
            if study.status != OPEN:
                raise StudyClosedError("this study is closed")
            a = s.scalar(select(Assignment).where(Assignment.participant_id == p.id,
                                                  ~select(Judgment.id).where(Judgment.assignment_id == Assignment.id)
                                                  .exists()).order_by(Assignment.seq).limit(1))
            if a is None:
                return self._progress(s, study, p)
            now = _now()
            a.shown_at = now
            a.first_shown_at = a.first_shown_at or now
            trial = s.get(Trial, a.trial_id)
            assert trial is not None
            total = s.scalar(select(func.count()).select_from(Assignment).where(Assignment.participant_id == p.id)) or 0
            return self._payload(study, trial, list(a.positions), a.seq, total, p.token)

        return self._retry(work)

    def _payload(self, study: Study, trial: Trial, positions: list[int], seq: int, total: int,
                 participant: str | None) -> dict[str, Any]:
        ims = sorted(trial.images, key=lambda im: im.slot)
        secret = study.secret or ""
        prompt = ("Which of the two looks more like the reference?" if study.kind == "2afc"
                  else "Which candidate looks most like the reference?")
        return {"study": study.public_id, "participant": participant, "kind": study.kind,
                "index": seq, "total": total, "practice": trial.role == "practice", "finished": False,
                "prompt": prompt, "reference": blinding.image_token(secret, trial.reference_id or -1),
                "options": [{"letter": blinding.letter(i),
                             "image": blinding.image_token(secret, ims[slot].content_id or -1)}
                            for i, slot in enumerate(positions)]}

    def record_answer(self, public_id: str, participant: str, index: int, choice: str,
                      response_ms: float | None = None) -> dict[str, Any]:
        """Store the answer to trial ``index`` of the participant's sequence: ``choice`` is the
        letter (``A``...), a 1-based number, or ``left``/``right`` for 2AFC. ``response_ms``: the
        client's own measurement (default: from when the trial was last served).

        Idempotent: a second submit for the same trial stores nothing and returns the first answer
        (``duplicate: true``). Answers must come in order, for trials that were shown."""

        def existing(s: Session, p: Participant, a: Assignment) -> dict[str, Any] | None:
            j = s.scalar(select(Judgment).where(Judgment.assignment_id == a.id))
            if j is None:
                return None
            return {**self._progress(s, study_of(s), p), "index": a.seq, "stored": False, "duplicate": True,
                    "too_fast": bool(j.too_fast)}

        def study_of(s: Session) -> Study:
            return self._study(s, public_id=public_id)

        def lookup(s: Session) -> tuple[Study, Participant, Assignment]:
            study = study_of(s)
            p = self._participant(s, study, participant)
            a = s.scalar(select(Assignment).where(Assignment.participant_id == p.id, Assignment.seq == index))
            if a is None:
                raise InvalidAnswerError(f"no trial {index} for this participant")
            return study, p, a

        def work(s: Session) -> dict[str, Any]:
            study, p, a = lookup(s)
            if s.bind.dialect.name == "postgresql":  # one answer of a participant at a time
                s.execute(select(Participant.id).where(Participant.id == p.id).with_for_update())
            again = existing(s, p, a)
            if again is not None:
                return again
            if p.finished_at is not None:
                raise AlreadyFinishedError("this participant has finished the study")
            if study.status != OPEN:
                raise StudyClosedError("this study is closed")
            if a.shown_at is None:
                raise InvalidAnswerError(f"trial {index} has not been shown yet")
            first_open = s.scalar(select(func.min(Assignment.seq)).where(
                Assignment.participant_id == p.id,
                ~select(Judgment.id).where(Judgment.assignment_id == Assignment.id).exists()))
            if first_open != index:
                raise InvalidAnswerError(f"answer trial {first_open} first")
            positions = list(a.positions)
            try:
                pos = blinding.position_of(str(choice), len(positions))
            except ValueError as exc:
                raise InvalidAnswerError(str(exc)) from exc
            slot = positions[pos]
            now = _now()
            shown = _aware(a.shown_at)
            ms = float(response_ms) if response_ms is not None else (now - shown).total_seconds() * 1000
            cfg_floor = float(study.config.get("min_response_ms", 0) or 0)
            label = ("left" if slot == 0 else "right") if study.kind == "2afc" else blinding.letter(pos)
            j = Judgment(trial_id=a.trial_id, participant=p.token, participant_id=p.id, assignment_id=a.id,
                         choice=label, choice_slot=slot, positions=positions,
                         swapped=positions != sorted(positions), shown_at=shown, answered_at=now,
                         response_ms=ms, too_fast=ms < cfg_floor)
            s.add(j)
            s.flush()
            total = s.scalar(select(func.count()).select_from(Assignment).where(Assignment.participant_id == p.id))
            done = s.scalar(select(func.count()).select_from(Judgment).where(Judgment.participant_id == p.id))
            if done == total:
                p.finished_at = now
            return {**self._progress(s, study, p), "index": index, "stored": True, "duplicate": False,
                    "too_fast": ms < cfg_floor}

        try:
            return self._retry(work)
        except IntegrityError:  # a concurrent submit of the same answer won the race
            with self.store.session() as s:
                study, p, a = lookup(s)
                again = existing(s, p, a)
            if again is None:
                raise
            return again


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
    t = _aware(t)
    return t.isoformat() if t is not None else None
