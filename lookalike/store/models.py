"""SQLAlchemy 2.0 typed models of a library's metadata.

One row per file (:class:`Image`), one per distinct file content (:class:`Content`, keyed by
sha256: identical bytes at several paths are embedded once), one per metric index
(:class:`MetricIndex`) and one per (metric, content) vector (:class:`Vector`, the full-precision
float32 vector: the database is the source of truth, FAISS files are a derived, rebuildable cache).
FAISS vector ids are ``Content.id``.

Studies of human judgments (:mod:`lookalike.studies`) are :class:`Study` -> :class:`Trial`
(-> :class:`TrialImage`) and :class:`Participant` -> :class:`Assignment` -> :class:`Judgment`;
a reviewer's decisions on near-duplicate groups are :class:`DuplicateVerdict` and
:class:`DuplicateKeep`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from lookalike.store.db import FsPath

#: Constraint names are fixed so migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Image.status values.
OK, FAILED, SKIPPED = "ok", "failed", "skipped"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, dt.datetime: DateTime(timezone=True)}


class Content(Base):
    """Distinct file content. ``id`` is the FAISS vector id in every metric index."""

    __tablename__ = "contents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    images: Mapped[list[Image]] = relationship(back_populates="content")


class Image(Base):
    """One file under an indexed folder: its identity on disk, header facts and outcome.

    ``status`` is ``ok`` (embedded, ``content_id`` set), ``failed`` (``error`` is the reason code of
    the :class:`~lookalike.errors.ImageLoadError`, ``detail`` the message) or ``skipped`` (listing
    problems: unreadable folder, symlink loop, broken link).
    """

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(FsPath(4096), unique=True)  # lookalike.files.path_to_text
    size: Mapped[int | None] = mapped_column(BigInteger)
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    content_id: Mapped[int | None] = mapped_column(ForeignKey("contents.id", ondelete="SET NULL"),
                                                   index=True)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    format: Mapped[str | None] = mapped_column(String(16))
    exif_datetime: Mapped[str | None] = mapped_column(String(32))
    orientation: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=OK, index=True)
    error: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    content: Mapped[Content | None] = relationship(back_populates="images")


class MetricIndex(Base):
    """One metric's vector index in this library, with the provenance of its vectors."""

    __tablename__ = "metrics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    dim: Mapped[int] = mapped_column(Integer)
    distance: Mapped[str] = mapped_column(String(16))
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON)
    factory: Mapped[str | None] = mapped_column(String(128))
    factory_override: Mapped[str | None] = mapped_column(String(128))
    vector_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Vector(Base):
    """The full-precision float32 vector of one content under one metric (little-endian bytes)."""

    __tablename__ = "vectors"

    metric_id: Mapped[int] = mapped_column(ForeignKey("metrics.id", ondelete="CASCADE"), primary_key=True)
    content_id: Mapped[int] = mapped_column(ForeignKey("contents.id", ondelete="CASCADE"),
                                            primary_key=True, index=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class LibraryState(Base):
    """One row: ``generation`` goes up with every commit of a library writer (indexer, doctor), so a
    long-lived reader notices other processes' writes with one cheap query."""

    __tablename__ = "library_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)


class Root(Base):
    """A folder given to ``lookalike index``; ``index`` with no folder re-indexes all roots."""

    __tablename__ = "roots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(FsPath(4096), unique=True)  # lookalike.files.path_to_text
    added_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    indexed_at: Mapped[dt.datetime | None] = mapped_column()


class Study(Base):
    """A set of trials shown to people: ``kind`` is ``2afc`` (triplets) or ``retrieval``.

    ``public_id`` is the opaque id in participant links; ``secret`` keys the HMAC image tokens
    (:mod:`lookalike.studies.blinding`); ``status`` is ``open`` or ``closed``.
    """

    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text, default="")
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    public_id: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    secret: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="open")
    closed_at: Mapped[dt.datetime | None] = mapped_column()

    trials: Mapped[list[Trial]] = relationship(back_populates="study", cascade="all, delete-orphan")


class Trial(Base):
    """One question, frozen at study creation. ``role``: ``main``, ``practice`` or ``sentinel``.

    The candidates shown are :class:`TrialImage` rows (slot 0, 1, ...; for 2AFC slot 0 is
    ``left`` and slot 1 ``right``, mirrored in ``left_id``/``right_id`` and their metric labels).
    ``rank`` is the neighbour rank the candidates were taken at. Image references are content ids
    (``NULL`` when an image left the library) with their sha256 beside them.
    """

    __tablename__ = "trials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    reference_id: Mapped[int | None] = mapped_column(ForeignKey("contents.id", ondelete="SET NULL"))
    left_id: Mapped[int | None] = mapped_column(ForeignKey("contents.id", ondelete="SET NULL"))
    right_id: Mapped[int | None] = mapped_column(ForeignKey("contents.id", ondelete="SET NULL"))
    left_label: Mapped[str | None] = mapped_column(String(128))
    right_label: Mapped[str | None] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    role: Mapped[str] = mapped_column(String(16), default="main")
    rank: Mapped[int | None] = mapped_column(Integer)
    reference_sha256: Mapped[str | None] = mapped_column(String(64))

    study: Mapped[Study] = relationship(back_populates="trials")
    judgments: Mapped[list[Judgment]] = relationship(back_populates="trial", cascade="all, delete-orphan")
    images: Mapped[list[TrialImage]] = relationship(back_populates="trial", cascade="all, delete-orphan",
                                                    order_by="TrialImage.slot")


class TrialImage(Base):
    """One candidate of a trial: the image (content id + sha256) and the metrics that returned it
    (several when metrics agree; the choice is credited to each; none for a sentinel's decoys)."""

    __tablename__ = "trial_images"
    __table_args__ = (UniqueConstraint("trial_id", "slot", name="uq_trial_images_trial_slot"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    slot: Mapped[int] = mapped_column(Integer)
    content_id: Mapped[int | None] = mapped_column(ForeignKey("contents.id", ondelete="SET NULL"),
                                                   index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[list[str]] = mapped_column(JSON, default=list)

    trial: Mapped[Trial] = relationship(back_populates="images")


class Participant(Base):
    """Someone taking a study: ``token`` is the pseudonymous id in their link; ``external_id`` the
    id they came with (``PROLIFIC_PID`` or the one given), ``params`` the URL parameters recorded."""

    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("study_id", "external_id", name="uq_participants_study_external"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    external_id: Mapped[str] = mapped_column(String(256))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column()


class Assignment(Base):
    """Trial number ``seq`` of a participant's sequence, with the order its slots are shown in
    (``positions[i]`` = the slot shown at letter i) and when it was last shown."""

    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("participant_id", "seq", name="uq_assignments_participant_seq"),
                      UniqueConstraint("participant_id", "trial_id", name="uq_assignments_participant_trial"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"))
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    positions: Mapped[list[int]] = mapped_column(JSON, default=list)
    first_shown_at: Mapped[dt.datetime | None] = mapped_column()
    shown_at: Mapped[dt.datetime | None] = mapped_column()


class Judgment(Base):
    """One participant's answer to one trial: ``choice`` is ``left``, ``right`` or ``tie`` for 2AFC,
    the letter picked for retrieval trials; ``choice_slot`` the trial slot picked.

    ``swapped`` records whether the sides were shown swapped on screen (``choice`` is always in
    the trial's own left/right terms). ``positions`` is the order the slots were shown in;
    ``too_fast`` flags answers under the study's response-time floor. One answer per
    (participant, trial): a retried submit stores nothing new.
    """

    __tablename__ = "judgments"
    __table_args__ = (Index("ix_judgments_participant_trial", "participant", "trial_id"),
                      UniqueConstraint("participant_id", "trial_id", name="uq_judgments_participant_trial"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), index=True)
    participant: Mapped[str] = mapped_column(String(128))
    choice: Mapped[str] = mapped_column(String(16))
    swapped: Mapped[bool] = mapped_column(default=False)
    shown_at: Mapped[dt.datetime | None] = mapped_column()
    answered_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    response_ms: Mapped[float | None] = mapped_column(Float)
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"))
    assignment_id: Mapped[int | None] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"),
                                                      unique=True)
    choice_slot: Mapped[int | None] = mapped_column(Integer)
    positions: Mapped[list[int] | None] = mapped_column(JSON)
    too_fast: Mapped[bool] = mapped_column(default=False)

    trial: Mapped[Trial] = relationship(back_populates="judgments")


class DuplicateVerdict(Base):
    """A reviewer's "not the same photo" on two contents grouped as near-duplicates under ``metric``
    (``a_id < b_id``; kept apart by the app's review page, not by ``lookalike dupes``; exported as a
    judgment). Gone with either content."""

    __tablename__ = "duplicate_verdicts"
    __table_args__ = (UniqueConstraint("a_id", "b_id", name="uq_duplicate_verdicts_pair"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    a_id: Mapped[int] = mapped_column(ForeignKey("contents.id", ondelete="CASCADE"))
    b_id: Mapped[int] = mapped_column(ForeignKey("contents.id", ondelete="CASCADE"), index=True)
    metric: Mapped[str] = mapped_column(String(128))
    distance: Mapped[float | None] = mapped_column(Float)
    paths: Mapped[list[str] | None] = mapped_column(JSON)
    label: Mapped[str] = mapped_column(String(16), default="different")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DuplicateKeep(Base):
    """The copy a reviewer chose to keep of a near-duplicate group (``group_key``: metric and the
    group's smallest id). Gone with the content."""

    __tablename__ = "duplicate_keeps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_key: Mapped[str] = mapped_column(String(256), unique=True)
    content_id: Mapped[int] = mapped_column(ForeignKey("contents.id", ondelete="CASCADE"), index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


__all__ = ["Assignment", "Base", "Content", "DuplicateKeep", "DuplicateVerdict", "FAILED", "Image", "Judgment", "LibraryState", "MetricIndex", "OK", "Participant",
           "Root", "SKIPPED", "Study", "Trial", "TrialImage", "Vector"]
