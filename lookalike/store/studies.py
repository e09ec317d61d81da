"""The store layer of studies: every query and transaction on the study tables (:class:`Study`,
:class:`Trial`, :class:`TrialImage`, :class:`Participant`, :class:`Assignment`, :class:`Judgment`).

:class:`StudyStore` returns plain frozen dataclasses (never live ORM rows) with timezone-aware UTC
datetimes; the domain logic (design, blinding, assignment balance, analysis) lives in
:mod:`lookalike.studies` and reaches in through two callbacks run inside the write transaction
(:meth:`StudyStore.join`'s plan, :meth:`StudyStore.record_answer`'s scoring).

Writes are short transactions. On SQLite they take the write lock up front (``BEGIN IMMEDIATE``,
with the store's busy timeout), the threads of one :class:`StudyStore` queue on a lock of their own
first, and a transaction is retried when the database stays busy; on PostgreSQL a join locks the
study row and an answer the participant row. Answers are idempotent: one per (participant, trial);
a retried or concurrent submit stores nothing and gets the stored answer back.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from lookalike.errors import LookalikeError
from lookalike.store.db import Store
from lookalike.store.models import Assignment, Judgment, Participant, Study, Trial, TrialImage

log = logging.getLogger(__name__)

T = TypeVar("T")
OPEN, CLOSED = "open", "closed"
ROLES = ("main", "practice", "sentinel")
#: Attempts of a write transaction while the database is busy (back-off 50 ms, doubling).
RETRIES = 8
#: Attempts of a join or an answer that lost a race on a unique constraint.
RACE_RETRIES = 3
_BUSY_WORDS = ("locked", "busy", "deadlock", "serializ", "could not")


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


# -- what the store returns ------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyRow:
    id: int
    name: str
    kind: str
    description: str
    config: dict[str, Any]
    public_id: str
    secret: str
    status: str
    created_at: dt.datetime
    closed_at: dt.datetime | None

    @property
    def is_open(self) -> bool:
        return self.status == OPEN


@dataclass(frozen=True)
class TrialImageRow:
    slot: int
    content_id: int | None
    sha256: str
    metrics: tuple[str, ...]


@dataclass(frozen=True)
class TrialRow:
    """A stored trial; ``images`` in slot order."""

    id: int
    position: int
    role: str
    rank: int | None
    reference_id: int | None
    reference_sha256: str | None
    payload: dict[str, Any]
    images: tuple[TrialImageRow, ...]


@dataclass(frozen=True)
class ParticipantRow:
    id: int
    token: str
    external_id: str
    params: dict[str, Any]
    finished_at: dt.datetime | None


@dataclass(frozen=True)
class StudySummary:
    """A study with its counts: trials per role, participants (joined, finished), answers."""

    study: StudyRow
    trials: dict[str, int]
    participants: int
    finished: int
    answers: int


@dataclass(frozen=True)
class Progress:
    """Where a participant stands: ``answered`` of ``total`` trials."""

    study: StudyRow
    participant: str
    answered: int
    total: int
    finished: bool


@dataclass(frozen=True)
class Served:
    """The trial a participant is shown now: number ``seq`` of ``total``, its slots in the order
    ``positions`` (letter i shows slot ``positions[i]``)."""

    study: StudyRow
    participant: str
    trial: TrialRow
    seq: int
    total: int
    positions: tuple[int, ...]


@dataclass(frozen=True)
class Receipt:
    """What :meth:`StudyStore.record_answer` did: ``stored`` a new answer, or found a ``duplicate``."""

    progress: Progress
    index: int
    stored: bool
    duplicate: bool
    too_fast: bool


@dataclass(frozen=True)
class AnswerRecord:
    """One stored answer with its trial and participant (``seq``: its place in their sequence)."""

    trial: TrialRow
    participant: ParticipantRow
    seq: int
    choice: str
    choice_slot: int | None
    positions: tuple[int, ...]
    shown_at: dt.datetime | None
    answered_at: dt.datetime | None
    response_ms: float | None
    too_fast: bool


# -- what the domain gives it --------------------------------------------------------------------------


@dataclass(frozen=True)
class NewCandidate:
    content_id: int
    sha256: str
    metrics: Sequence[str] = ()


@dataclass(frozen=True)
class NewTrial:
    """A trial to store; ``candidates`` go to slots 0, 1, ... (for 2AFC: left, right)."""

    role: str
    reference_id: int
    reference_sha256: str
    candidates: Sequence[NewCandidate]
    rank: int | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrialCounts:
    """What assignment balances: per role, each trial's assignment count; each trial's slot count."""

    assigned: dict[str, dict[int, int]]
    slots: dict[int, int]


#: A participant's sequence: ``(trial id, slot order)`` per place.
Plan = list[tuple[int, list[int]]]


@dataclass(frozen=True)
class AnswerContext:
    """What scoring an answer may look at: the trial's slot order, when it was last shown, now."""

    study: StudyRow
    positions: tuple[int, ...]
    shown_at: dt.datetime
    now: dt.datetime


@dataclass(frozen=True)
class NewAnswer:
    choice: str  # the label stored (``left``/``right`` for 2AFC, else the letter)
    choice_slot: int
    response_ms: float
    too_fast: bool


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _aware(t: dt.datetime | None) -> dt.datetime | None:
    """SQLite returns naive datetimes (stored as UTC)."""
    return t.replace(tzinfo=dt.timezone.utc) if t is not None and t.tzinfo is None else t


def _study_row(s: Study) -> StudyRow:
    created = _aware(s.created_at)
    assert created is not None
    return StudyRow(s.id, s.name, s.kind, s.description or "", dict(s.config or {}), s.public_id or "",
                    s.secret or "", s.status, created, _aware(s.closed_at))


def _trial_row(t: Trial) -> TrialRow:
    ims = tuple(TrialImageRow(im.slot, im.content_id, im.sha256, tuple(im.metrics or ()))
                for im in sorted(t.images, key=lambda im: im.slot))
    return TrialRow(t.id, t.position, t.role, t.rank, t.reference_id, t.reference_sha256, dict(t.payload or {}), ims)


def _participant_row(p: Participant) -> ParticipantRow:
    return ParticipantRow(p.id, p.token, p.external_id, dict(p.params or {}), _aware(p.finished_at))


class StudyStore:
    """The study tables of one library database. Thread-safe: share one per process (on SQLite
    its threads' writes then queue fairly on one lock); separate instances and processes are safe
    too (SQLite's busy timeout and the retries make them wait their turn)."""

    def __init__(self, db: Store) -> None:
        self.db = db
        self._write = sessionmaker(db.engine.execution_options(sqlite_immediate=True), expire_on_commit=False)
        # SQLite has one writer at a time: this instance's threads queue here instead of polling the
        # file lock (which starves the holder under many threads); other processes still wait on it
        self._local_lock: AbstractContextManager[Any] = (threading.Lock() if db.dialect == "sqlite"
                                                          else nullcontext())

    # -- plumbing ------------------------------------------------------------------------------------

    def _retry(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in a write transaction, retrying when the database is busy."""
        for attempt in range(RETRIES):
            try:
                with self._local_lock, self._write() as s, s.begin():
                    return work(s)
            except OperationalError as exc:
                msg = str(exc).lower()
                if attempt == RETRIES - 1 or not any(w in msg for w in _BUSY_WORDS):
                    raise
                log.debug("database busy (%s); retrying", exc.orig)
                time.sleep(0.05 * 2 ** attempt)
        raise AssertionError("unreachable")

    def _lock_row(self, s: Session, column: Any, key: int) -> None:
        """PostgreSQL: lock one row for the rest of the transaction (SQLite holds the write lock)."""
        if self.db.dialect == "postgresql":
            s.execute(select(column).where(column == key).with_for_update())

    @staticmethod
    def _study(s: Session, name: str | None = None, public_id: str | None = None) -> Study:
        q = select(Study).where(Study.name == name) if name is not None else \
            select(Study).where(Study.public_id == public_id)
        study = s.scalar(q)
        if study is None:
            raise UnknownStudyError(f"no study {name!r}" if name is not None else "no such study")
        return study

    @staticmethod
    def _participant(s: Session, study: Study, token: str) -> Participant:
        p = s.scalar(select(Participant).where(Participant.token == token, Participant.study_id == study.id))
        if p is None:
            raise UnknownParticipantError("unknown participant for this study")
        return p

    @staticmethod
    def _roles(s: Session, study_id: int) -> dict[str, int]:
        got = dict(s.execute(select(Trial.role, func.count()).where(Trial.study_id == study_id)
                             .group_by(Trial.role)).all())
        return {r: int(got.get(r, 0)) for r in ROLES}

    @staticmethod
    def _progress(s: Session, study: Study, p: Participant) -> Progress:
        total = s.scalar(select(func.count()).select_from(Assignment).where(Assignment.participant_id == p.id)) or 0
        done = s.scalar(select(func.count()).select_from(Judgment).where(Judgment.participant_id == p.id)) or 0
        return Progress(_study_row(study), p.token, int(done), int(total), p.finished_at is not None)

    # -- studies ---------------------------------------------------------------------------------------

    def exists(self, name: str) -> bool:
        with self.db.session() as s:
            return s.scalar(select(Study.id).where(Study.name == name)) is not None

    def create(self, name: str, kind: str, description: str, config: Mapping[str, Any], public_id: str,
               secret: str, trials: Iterable[NewTrial]) -> StudyRow:
        """Store a study with its trials (one transaction); a taken name is an ``IntegrityError``."""
        specs = list(trials)

        def work(s: Session) -> StudyRow:
            study = Study(name=name, kind=kind, description=description, config=dict(config),
                          public_id=public_id, secret=secret, status=OPEN)
            for pos, spec in enumerate(specs):
                trial = Trial(position=pos, role=spec.role, rank=spec.rank, reference_id=spec.reference_id,
                              reference_sha256=spec.reference_sha256, payload=dict(spec.payload))
                for slot, c in enumerate(spec.candidates):
                    trial.images.append(TrialImage(slot=slot, content_id=c.content_id, sha256=c.sha256,
                                                   metrics=list(c.metrics)))
                if kind == "2afc":  # mirrored in the trial row (older readers, NIGHTS export)
                    left, right = spec.candidates[0], spec.candidates[1]
                    trial.left_id, trial.right_id = left.content_id, right.content_id
                    trial.left_label = ",".join(left.metrics) or None
                    trial.right_label = ",".join(right.metrics) or None
                study.trials.append(trial)
            s.add(study)
            s.flush()
            return _study_row(study)

        return self._retry(work)

    def get(self, *, name: str | None = None, public_id: str | None = None) -> StudyRow:
        """A study by ``name`` or by ``public_id`` (:class:`UnknownStudyError` when there is none)."""
        with self.db.session() as s:
            return _study_row(self._study(s, name, public_id))

    def names(self) -> list[str]:
        """Every study's name, oldest first."""
        with self.db.session() as s:
            return list(s.scalars(select(Study.name).order_by(Study.id)))

    def summary(self, name: str) -> StudySummary:
        with self.db.session() as s:
            study = self._study(s, name=name)
            n_part = s.scalar(select(func.count()).select_from(Participant).where(
                Participant.study_id == study.id)) or 0
            n_done = s.scalar(select(func.count()).select_from(Participant).where(
                Participant.study_id == study.id, Participant.finished_at.is_not(None))) or 0
            n_ans = s.scalar(select(func.count()).select_from(Judgment).join(Trial).where(
                Trial.study_id == study.id)) or 0
            return StudySummary(_study_row(study), self._roles(s, study.id), int(n_part), int(n_done), int(n_ans))

    def trial_counts(self, study_id: int) -> dict[str, int]:
        """Trials per role (``main``, ``practice``, ``sentinel``)."""
        with self.db.session() as s:
            return self._roles(s, study_id)

    def close(self, name: str) -> StudyRow:
        """Mark a study closed (once; closing again changes nothing)."""

        def work(s: Session) -> StudyRow:
            study = self._study(s, name=name)
            if study.status != CLOSED:
                study.status, study.closed_at = CLOSED, _now()
            return _study_row(study)

        return self._retry(work)

    def trials(self, study_id: int, role: str | None = None, limit: int | None = None) -> list[TrialRow]:
        """A study's trials in position order (of one ``role``; the first ``limit``)."""
        with self.db.session() as s:
            q = select(Trial).options(selectinload(Trial.images)).where(
                Trial.study_id == study_id, *([Trial.role == role] if role else []))
            rows = s.scalars(q.order_by(Trial.position).limit(limit)).all()
            return [_trial_row(t) for t in rows]

    def content_ids(self, study_id: int) -> set[int]:
        """Every content id a study's trials show (references and candidates)."""
        with self.db.session() as s:
            ids = set(s.scalars(select(TrialImage.content_id).join(Trial).where(Trial.study_id == study_id)))
            ids |= set(s.scalars(select(Trial.reference_id).where(Trial.study_id == study_id)))
        return {int(i) for i in ids if i is not None}

    def answers(self, name: str) -> tuple[StudyRow, list[AnswerRecord]]:
        """A study and every answer to it, by participant, then sequence."""
        with self.db.session() as s:
            study = self._study(s, name=name)
            trials = {t.id: _trial_row(t) for t in s.scalars(select(Trial).options(selectinload(Trial.images))
                                                             .where(Trial.study_id == study.id))}
            people = {p.id: _participant_row(p)
                      for p in s.scalars(select(Participant).where(Participant.study_id == study.id))}
            rows = s.execute(select(Judgment, Assignment.seq).join(Assignment, Judgment.assignment_id == Assignment.id)
                             .where(Judgment.participant_id.in_(list(people) or [-1]))
                             .order_by(Judgment.participant_id, Assignment.seq)).all()
            out = [AnswerRecord(trials[j.trial_id], people[j.participant_id], int(seq), j.choice, j.choice_slot,
                                tuple(j.positions or ()), _aware(j.shown_at), _aware(j.answered_at),
                                j.response_ms, bool(j.too_fast)) for j, seq in rows]
            return _study_row(study), out

    # -- participants -----------------------------------------------------------------------------------

    def progress(self, public_id: str, participant: str) -> Progress:
        with self.db.session() as s:
            study = self._study(s, public_id=public_id)
            return self._progress(s, study, self._participant(s, study, participant))

    def join(self, public_id: str, external_id: str, params: Mapping[str, Any],
             plan: Callable[[StudyRow, TrialCounts], Plan], new_token: Callable[[], str]) -> str:
        """The participant token of ``external_id`` in the study: theirs when they joined before,
        else a new participant with the trial sequence ``plan`` makes from the current counts (one
        transaction, serialised per study). A closed study takes no one new."""

        def work(s: Session) -> str:
            study = self._study(s, public_id=public_id)
            self._lock_row(s, Study.id, study.id)  # serialise assignment per study
            old = s.scalar(select(Participant).where(Participant.study_id == study.id,
                                                     Participant.external_id == external_id))
            if old is not None:
                return old.token
            if study.status != OPEN:
                raise StudyClosedError("this study is closed")
            assigned: dict[str, dict[int, int]] = {r: {} for r in ROLES}
            slots: dict[int, int] = {}
            for tid, role, n in s.execute(select(Trial.id, Trial.role, func.count(TrialImage.id))
                                          .join(TrialImage).where(Trial.study_id == study.id)
                                          .group_by(Trial.id, Trial.role)):
                assigned.setdefault(role, {})[tid] = 0
                slots[tid] = int(n)
            for tid, n in s.execute(select(Assignment.trial_id, func.count()).join(Trial)
                                    .where(Trial.study_id == study.id).group_by(Assignment.trial_id)):
                for by_trial in assigned.values():
                    if tid in by_trial:
                        by_trial[tid] = int(n)
            sequence = plan(_study_row(study), TrialCounts(assigned, slots))
            p = Participant(study_id=study.id, token=new_token(), external_id=external_id, params=dict(params))
            s.add(p)
            s.flush()
            s.add_all([Assignment(participant_id=p.id, trial_id=t, seq=i, positions=list(pos))
                       for i, (t, pos) in enumerate(sequence)])
            return p.token

        for attempt in range(RACE_RETRIES):
            try:
                return self._retry(work)
            except IntegrityError:  # the same external id joined twice at once: take the first
                if attempt == RACE_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def serve_next(self, public_id: str, participant: str) -> Served | Progress:
        """The participant's first unanswered trial, marked shown now (the same one again until it
        is answered), or their :class:`Progress` when none is left. A closed study serves no more
        trials (:class:`StudyClosedError`)."""

        def work(s: Session) -> Served | Progress:
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
            return Served(_study_row(study), p.token, _trial_row(trial), a.seq, int(total), tuple(a.positions))

        return self._retry(work)

    def record_answer(self, public_id: str, participant: str, index: int,
                      score: Callable[[AnswerContext], NewAnswer]) -> Receipt:
        """Store the answer to place ``index`` of the participant's sequence, as ``score`` reads it.

        Idempotent: when that place has an answer already nothing is stored and the first answer's
        receipt comes back (``duplicate``). Answers must come in order, for trials that were shown
        (:class:`InvalidAnswerError`), while the study is open and the participant not finished."""

        def lookup(s: Session) -> tuple[Study, Participant, Assignment]:
            study = self._study(s, public_id=public_id)
            p = self._participant(s, study, participant)
            a = s.scalar(select(Assignment).where(Assignment.participant_id == p.id, Assignment.seq == index))
            if a is None:
                raise InvalidAnswerError(f"no trial {index} for this participant")
            return study, p, a

        def existing(s: Session, study: Study, p: Participant, a: Assignment) -> Receipt | None:
            j = s.scalar(select(Judgment).where(Judgment.assignment_id == a.id))
            if j is None:
                return None
            return Receipt(self._progress(s, study, p), a.seq, False, True, bool(j.too_fast))

        def work(s: Session) -> Receipt:
            study, p, a = lookup(s)
            self._lock_row(s, Participant.id, p.id)  # one answer of a participant at a time
            again = existing(s, study, p, a)
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
            positions = tuple(a.positions)
            now = _now()
            shown = _aware(a.shown_at)
            assert shown is not None
            ans = score(AnswerContext(_study_row(study), positions, shown, now))
            s.add(Judgment(trial_id=a.trial_id, participant=p.token, participant_id=p.id, assignment_id=a.id,
                           choice=ans.choice, choice_slot=ans.choice_slot, positions=list(positions),
                           swapped=list(positions) != sorted(positions), shown_at=shown, answered_at=now,
                           response_ms=ans.response_ms, too_fast=ans.too_fast))
            s.flush()
            total = s.scalar(select(func.count()).select_from(Assignment).where(Assignment.participant_id == p.id))
            done = s.scalar(select(func.count()).select_from(Judgment).where(Judgment.participant_id == p.id))
            if done == total:
                p.finished_at = now
            return Receipt(self._progress(s, study, p), index, True, False, ans.too_fast)

        try:
            return self._retry(work)
        except IntegrityError:  # a concurrent submit of the same answer won the race
            with self.db.session() as s:
                again = existing(s, *lookup(s))
            if again is None:
                raise
            return again
