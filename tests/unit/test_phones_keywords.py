from __future__ import annotations

import pytest

from ringback.messaging.keywords import from_opt_out_type, keyword
from ringback.phones import InvalidPhoneNumber, is_anonymous, normalize_e164, redact


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+13105550100", "+13105550100"),
        ("(310) 555-0199", "+13105550199"),
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_normalize(raw: str, e164: str) -> None:
    assert normalize_e164(raw) == e164


@pytest.mark.parametrize("raw", ["", "abc", "+1310555", "12345"])
def test_invalid_numbers(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber):
        normalize_e164(raw)


@pytest.mark.parametrize("raw", ["anonymous", "Restricted", "+266696687", "", "UNKNOWN"])
def test_anonymous(raw: str) -> None:
    assert is_anonymous(raw)


def test_redact_keeps_two_digits_only() -> None:
    assert redact("+13105550123") == "+*********23"
    assert "3105550123" not in redact("+13105550123")
    assert redact(None) == "-"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("STOP", "stop"),
        ("stop", "stop"),
        (" Stop. ", "stop"),
        ("STOPALL", "stop"),
        ("unsubscribe", "stop"),
        ("CANCEL", "stop"),
        ("end", "stop"),
        ("Quit!", "stop"),
        ("revoke", "stop"),
        ("OPTOUT", "stop"),
        ("START", "start"),
        ("unstop", "start"),
        ("Yes", "start"),
        ("HELP", "help"),
        ("info", "help"),
        ("please stop", None),
        ("stop texting me", None),
        ("I want botox", None),
        ("", None),
        ("helpful", None),
    ],
)
def test_whole_message_keywords(body: str, expected: str | None) -> None:
    assert keyword(body) == expected


def test_twilio_opt_out_type() -> None:
    assert from_opt_out_type("STOP") == "stop"
    assert from_opt_out_type("HELP") == "help"
    assert from_opt_out_type(None) is None
    assert from_opt_out_type("other") is None


def test_database_errors_never_carry_statement_parameters(tmp_path: object) -> None:
    import sqlalchemy as sa

    from ringback.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path}/x.db")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (body TEXT UNIQUE)"))
        conn.execute(sa.text("INSERT INTO t VALUES (:b)"), {"b": "my lips are swelling"})
    with pytest.raises(sa.exc.IntegrityError) as error, engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO t VALUES (:b)"), {"b": "my lips are swelling"})
    assert "swelling" not in str(error.value)


def test_after_commit_survives_a_rolled_back_savepoint_and_not_a_rollback(tmp_path: object) -> None:
    import sqlalchemy as sa

    from ringback.db import after_commit, make_engine, make_sessionmaker

    engine = make_engine(f"sqlite:///{tmp_path}/y.db")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x INTEGER UNIQUE)"))
    sessions = make_sessionmaker(engine)
    ran: list[str] = []
    with sessions() as session:
        after_commit(session, lambda: ran.append("kept"))
        session.execute(sa.text("INSERT INTO t VALUES (1)"))
        with pytest.raises(sa.exc.IntegrityError), session.begin_nested():
            session.execute(sa.text("INSERT INTO t VALUES (1)"))
        session.commit()
    with sessions() as session:
        after_commit(session, lambda: ran.append("dropped"))
        session.execute(sa.text("INSERT INTO t VALUES (2)"))
        session.rollback()
        session.commit()
    assert ran == ["kept"]


def test_after_commit_waits_for_the_outermost_commit_not_a_savepoints(tmp_path: object) -> None:
    import sqlalchemy as sa

    from ringback.db import after_commit, make_engine, make_sessionmaker

    engine = make_engine(f"sqlite:///{tmp_path}/z.db")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
    sessions = make_sessionmaker(engine)
    ran: list[str] = []
    with sessions() as session:
        session.execute(sa.text("INSERT INTO t VALUES (1)"))
        with session.begin_nested():
            session.execute(sa.text("INSERT INTO t VALUES (2)"))
            after_commit(session, lambda: ran.append("queued"))
        assert ran == []  # the savepoint is released; the transaction is still open
        session.commit()
    assert ran == ["queued"]
