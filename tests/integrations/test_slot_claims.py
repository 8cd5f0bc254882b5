"""Who keeps a slot two bookings overlap: the earliest made, ties broken by id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ringback.integrations.slot_claims import Claim, first_claim_wins

T0 = datetime(2030, 3, 5, 17, 0, tzinfo=UTC)


def test_the_earliest_claim_wins_and_every_writer_agrees() -> None:
    claims = [Claim(f"b{n}", T0 + timedelta(milliseconds=n)) for n in range(5)]
    winners = [claim for claim in claims if first_claim_wins(claim, claims)]
    assert winners == [claims[0]]


def test_a_writer_that_saw_only_itself_wins() -> None:
    assert first_claim_wins(Claim("b1", T0), [Claim("b1", T0)])


def test_equal_stamps_are_ordered_by_id() -> None:
    first, second = Claim("a", T0), Claim("b", T0)
    assert first_claim_wins(first, [second])
    assert not first_claim_wins(second, [first])
