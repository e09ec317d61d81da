"""The study tables' store layer (:mod:`lookalike.store.studies`) on SQLite and PostgreSQL: a study
created with its trials, participants joining and resuming, trials served, answers stored once
(also when the same answer is submitted from many connections at once), closing."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lookalike.store import Store, open_store
from lookalike.store.models import Content
from lookalike.store.studies import (
    AnswerContext,
    InvalidAnswerError,
    NewAnswer,
    NewCandidate,
    NewTrial,
    Progress,
    Receipt,
    Served,
    StudyClosedError,
    StudyRow,
    StudyStore,
    TrialCounts,
    UnknownParticipantError,
    UnknownStudyError,
)
from tests.dbfixtures import db_url, store_url  # noqa: F401

SHA = {i: hashlib.sha256(f"image {i}".encode()).hexdigest() for i in range(1, 7)}


@pytest.fixture
def db(db_url: str | None, tmp_path: Path) -> Iterator[Store]:  # noqa: F811
    """A library database holding six contents (what trials refer to)."""
    store = open_store(store_url(db_url, tmp_path))
    with store.transaction() as s:
        s.add_all([Content(id=i, sha256=h, size=100 + i) for i, h in SHA.items()])
    yield store
    store.close()


def _create(studies: StudyStore, name: str = "pilot") -> int:
    trials = [NewTrial("main", ref, SHA[ref], [NewCandidate(a, SHA[a], ["m1"]), NewCandidate(b, SHA[b], ["m2"])],
                       rank=1, payload={"n": n})
              for n, (ref, a, b) in enumerate([(1, 2, 3), (4, 5, 6)])]
    row = studies.create(name, "2afc", "a test", {"min_response_ms": 100.0}, f"pub-{name}", "s3cret", trials)
    return row.id


def _in_order(study: StudyRow, counts: TrialCounts) -> list[tuple[int, list[int]]]:
    """A plan: every main trial in id order, slots as stored."""
    return [(t, list(range(counts.slots[t]))) for t in sorted(counts.assigned["main"])]


def _score(letter_slot: int, ms: float = 500.0) -> Callable[[AnswerContext], NewAnswer]:
    def score(ctx: AnswerContext) -> NewAnswer:
        assert ctx.shown_at.tzinfo is not None and ctx.now >= ctx.shown_at
        slot = ctx.positions[letter_slot]
        return NewAnswer("left" if slot == 0 else "right", slot, ms,
                         ms < float(ctx.study.config["min_response_ms"]))
    return score


def test_a_study_round_trip_create_join_serve_answer_twice_close(db: Store) -> None:
    studies = StudyStore(db)
    study_id = _create(studies)
    assert studies.exists("pilot") and not studies.exists("other")
    study = studies.get(public_id="pub-pilot")
    assert (study.id, study.name, study.kind, study.is_open) == (study_id, "pilot", "2afc", True)
    assert study.created_at.tzinfo is not None
    assert studies.names() == ["pilot"]
    trials = studies.trials(study_id)
    assert [(t.reference_id, [im.content_id for im in t.images], t.payload) for t in trials] == \
        [(1, [2, 3], {"n": 0}), (4, [5, 6], {"n": 1})]
    assert [im.metrics for im in trials[0].images] == [("m1",), ("m2",)]
    assert studies.content_ids(study_id) == {1, 2, 3, 4, 5, 6}
    assert studies.trial_counts(study_id) == {"main": 2, "practice": 0, "sentinel": 0}

    seen: list[TrialCounts] = []

    def plan(row: StudyRow, counts: TrialCounts) -> list[tuple[int, list[int]]]:
        seen.append(counts)
        return _in_order(row, counts)

    token = studies.join("pub-pilot", "P1", {"PROLIFIC_PID": "P1"}, plan, lambda: "tok-1")
    assert token == "tok-1"
    assert seen[0].assigned["main"] == {t.id: 0 for t in trials} and set(seen[0].slots.values()) == {2}
    assert studies.join("pub-pilot", "P1", {}, plan, lambda: "tok-other") == "tok-1"  # resumes
    assert len(seen) == 1
    studies.join("pub-pilot", "P2", {}, plan, lambda: "tok-2")
    assert seen[1].assigned["main"] == {t.id: 1 for t in trials}  # balance sees the first one

    with pytest.raises(InvalidAnswerError, match="not been shown"):
        studies.record_answer("pub-pilot", token, 0, _score(0))
    served = studies.serve_next("pub-pilot", token)
    assert isinstance(served, Served) and (served.seq, served.total, served.positions) == (0, 2, (0, 1))
    assert served.trial.id == trials[0].id
    assert studies.serve_next("pub-pilot", token).trial.id == trials[0].id  # the same until answered
    first = studies.record_answer("pub-pilot", token, 0, _score(1, ms=50.0))
    again = studies.record_answer("pub-pilot", token, 0, _score(0))  # a retried submit
    assert (first.stored, first.duplicate, first.too_fast) == (True, False, True)
    assert (again.stored, again.duplicate, again.too_fast) == (False, True, True)
    assert (again.progress.answered, again.progress.total, again.progress.finished) == (1, 2, False)
    with pytest.raises(InvalidAnswerError, match="no trial 5"):
        studies.record_answer("pub-pilot", token, 5, _score(0))

    study, answers = studies.answers("pilot")
    assert len(answers) == 1  # two submits, one row
    [a] = answers
    assert (a.participant.token, a.participant.params, a.seq, a.choice, a.choice_slot, a.positions) == \
        ("tok-1", {"PROLIFIC_PID": "P1"}, 0, "right", 1, (0, 1))
    assert a.response_ms == 50.0 and a.too_fast and a.answered_at >= a.shown_at

    studies.serve_next("pub-pilot", token)
    last = studies.record_answer("pub-pilot", token, 1, _score(0))
    assert last.progress.finished and last.progress.answered == 2
    done = studies.serve_next("pub-pilot", token)
    assert isinstance(done, Progress) and done.finished

    summary = studies.summary("pilot")
    assert (summary.participants, summary.finished, summary.answers) == (2, 1, 2)
    closed = studies.close("pilot")
    assert closed.status == "closed" and closed.closed_at is not None
    assert studies.close("pilot").closed_at == closed.closed_at  # closing twice changes nothing
    with pytest.raises(StudyClosedError):
        studies.join("pub-pilot", "P3", {}, plan, lambda: "tok-3")
    with pytest.raises(StudyClosedError):
        studies.serve_next("pub-pilot", "tok-2")
    assert studies.join("pub-pilot", "P1", {}, plan, lambda: "x") == "tok-1"  # a known person still resumes


def test_unknown_study_and_participant(db: Store) -> None:
    studies = StudyStore(db)
    _create(studies)
    with pytest.raises(UnknownStudyError):
        studies.get(name="nope")
    with pytest.raises(UnknownStudyError):
        studies.serve_next("no-such-id", "tok")
    with pytest.raises(UnknownParticipantError):
        studies.progress("pub-pilot", "stranger")


def test_one_answer_stored_when_many_connections_submit_it_at_once(db: Store) -> None:
    studies = StudyStore(db)
    _create(studies)
    token = studies.join("pub-pilot", "P1", {}, _in_order, lambda: "tok-1")
    studies.serve_next("pub-pilot", token)
    stores = [StudyStore(db) for _ in range(8)]  # separate locks: they race on the database itself
    barrier = threading.Barrier(len(stores))
    receipts: list[Receipt] = []
    errors: list[Exception] = []

    def submit(st: StudyStore) -> None:
        barrier.wait()
        try:
            receipts.append(st.record_answer("pub-pilot", token, 0, _score(0)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=(st,)) for st in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sum(r.stored for r in receipts) == 1 and sum(r.duplicate for r in receipts) == 7
    assert len(studies.answers("pilot")[1]) == 1
