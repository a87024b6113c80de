"""What a share listing is charged and when (docs/security.md 340): the units past the first are
counted after the read, which a throttled store must not turn into a 503 hiding the shares read,
and a cursor refused without a read costs no unit."""
from __future__ import annotations

import json

from botocore.exceptions import ClientError
from pynamodb.exceptions import UpdateError

from chalicelib.crypto import subject_hash
from chalicelib.services.accounts import user_id_for
from chalicelib.store import ledger
from tests.conftest import call, sign_in
from tests.factories import make_share, make_user
from tests.test_share_listing_cost import _stored_shares

CLI = {"User-Agent": "ureq/2.12.1"}


def test_a_listing_whose_charge_the_store_throttles_is_answered(client, env, monkeypatch, capsys):
    """The shares were read: a 503 had the CLI (or the dashboard) read them all again."""
    env(RATE_SHARE_LISTINGS_PER_MINUTE="5")
    make_user("many@example.com", "pro")
    _stored_shares(user_id_for("many@example.com"), 250)
    token = sign_in(client, "many@example.com")
    counting = ledger.hit_rate_window

    def throttled_past_the_first_unit(name, subject, window_index, expires_at, hits=1):
        if hits > 1:
            raise UpdateError("Failed to update item", ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "UpdateItem"))
        return counting(name, subject, window_index, expires_at, hits)
    monkeypatch.setattr(ledger, "hit_rate_window", throttled_past_the_first_unit)
    status, listed, headers = call(client, "GET", "/shares", token=token, headers=CLI)
    assert status == 200 and len(listed) == 250, listed
    assert headers["X-RateLimit-Remaining"] == "4"  # the first unit, counted before the read
    # Recorded for an operator: the limit, the units lost and whose, hashed as the ledger's key holds it.
    lost = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "rate_limit.charge_lost" in line]
    assert [(record["limit"], record["hits"], record["subject"]) for record in lost] == \
        [("share-listings", 2, subject_hash(user_id_for("many@example.com")))], lost
    assert ledger.rate_limit_key("share-listings", user_id_for("many@example.com")).endswith(lost[0]["subject"])
    monkeypatch.setattr(ledger, "hit_rate_window", counting)
    status, listed, headers = call(client, "GET", "/shares", token=token, headers=CLI)
    assert status == 200 and len(listed) == 250 and headers["X-RateLimit-Remaining"] == "1"


def test_a_cursor_of_no_share_listing_costs_no_unit(client, env):
    env(RATE_SHARE_LISTINGS_PER_MINUTE="3")
    make_share("owner@example.com", "mine")
    token = sign_in(client, "owner@example.com")
    for cursor in ("not-a-cursor", "eyJzIjoic2hhcmVzOngifQ.forged", _feedback_cursor(client, token)):
        status, body, headers = call(client, "GET", f"/shares?cursor={cursor}", token=token)
        assert status == 400 and body["details"][0]["code"] == "INVALID_CURSOR", body
        assert "X-RateLimit-Remaining" not in headers, headers  # refused before the count
    for remaining in ("2", "1"):
        status, listed, headers = call(client, "GET", "/shares", token=token, headers=CLI)
        assert status == 200 and [share["slug"] for share in listed] == ["mine"]
        assert headers["X-RateLimit-Remaining"] == remaining


def _feedback_cursor(client, token: str) -> str:
    """A cursor we signed for the account's listing of feedback (GET /spikes), not of shares."""
    for n in range(2):
        assert call(client, "POST", "/spikes", {"type": "page", "projectKey": "mine", "id": f"s-{n}"},
                    token=token)[0] == 201
    status, page, _ = call(client, "GET", "/spikes?limit=1", token=token)
    assert status == 200 and page["next_cursor"], page
    return page["next_cursor"]
