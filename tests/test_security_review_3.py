"""The third security review (docs/security.md, "The third review"): billing and metering, API
keys, exports and the scheduled jobs, as an attacker and as a paying customer. Each test failed
before its fix. In-process, with the chalice test client and moto, like the earlier reviews."""
from __future__ import annotations

import requests

from chalicelib.store.models import Share, User
from tests.conftest import call
from tests.fakes.stripe_events import checkout_session, event, subscription
from tests.test_agent_tier import agent, configured  # noqa: F401 - fixtures
from tests.test_shares import INDEX, start_presigned
from tests.test_webhooks import NOW, UID, deliver, hooks, make_pro_share, user  # noqa: F401 - fixtures


# --- 24. A paid agent-tier account's presigned protected share is not locked -------------------

def test_a_presigned_protected_share_of_an_agent_tier_account_is_not_locked(client, agent):
    token, _, _ = agent
    status, started, _ = start_presigned(client, token, [
        {"path": "index.html", "size": len(INDEX), "content_type": "text/html"}], password="s3cret")
    assert status == 201, started
    for target in started["uploads"]:
        assert requests.put(target["url"], data=INDEX, headers=target["headers"], timeout=10).status_code == 200
    status, done, _ = call(client, "POST", f"/shares/{started['share_id']}/complete", token=token)
    # The agent tier has the paid features (docs/agents.md): protected, and open with its password.
    assert (status, done["status"]) == (200, "active"), done
    assert call(client, "GET", f"/s/{started['slug']}/?pw=s3cret")[0] == 200

