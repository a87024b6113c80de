"""Outbound webhooks on the real local server: its delivery loop posts signed events to a
receiver on loopback, retries while the receiver fails, and stops once it recovers."""
from __future__ import annotations

import json
import time

import pytest
import requests

from tests.e2e.test_browser_shares import make_pro, share
from tests.test_outbound_webhooks import Receiver, verify

pytestmark = pytest.mark.e2e


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_retries_against_a_failing_receiver_until_it_recovers(live_server_factory):
    server = live_server_factory(env={"WEBHOOK_ALLOW_LOOPBACK": "true", "WEBHOOK_LOCAL_INTERVAL_SECONDS": "0.3",
                                      "WEBHOOK_FIRST_RETRY_SECONDS": "1"})
    receiver = Receiver()
    try:
        token = server.sign_in("hooks@example.com")
        make_pro(server, "hooks@example.com")
        auth = {"Authorization": f"Bearer {token}"}
        created = share(server, token, "Live hooks", {"index.html": b"<html><body>hi</body></html>"})
        patched = requests.patch(f"{server.url}/v1/shares/{created['share_id']}", headers=auth, timeout=30,
                                 json={"webhook_url": receiver.url})
        assert patched.status_code == 200, patched.text
        secret = patched.json()["webhook_secret"]

        receiver.answers = [500, 503]  # down twice, then up
        posted = requests.post(f"{server.url}/spikes", timeout=30,
                               json={"type": "page", "projectKey": created["slug"], "comments": "ship it"})
        assert posted.status_code == 201 and receiver.requests == []  # the post did not wait for it
        _wait_for(lambda: len(receiver.requests) >= 3)
        time.sleep(1.0)
        assert len(receiver.requests) == 3  # delivered once it answered 2xx, then left alone
        last = receiver.requests[-1]
        assert verify(secret, last["headers"]["X-Spikes-Signature"], last["body"])
        event = json.loads(last["body"])
        assert event["type"] == "spike.created" and event["spike"]["id"] == posted.json()["id"]
        assert {r["headers"]["X-Spikes-Delivery"] for r in receiver.requests} == {last["headers"]["X-Spikes-Delivery"]}

        log = requests.get(f"{server.url}/v1/shares/{created['share_id']}/webhook/deliveries", headers=auth,
                           timeout=30).json()["data"]
        assert [(d["status"], d["attempts"], d["last_status_code"]) for d in log] == [("delivered", 3, 200)]

        tested = requests.post(f"{server.url}/v1/shares/{created['slug']}/webhook/test", headers=auth, timeout=30)
        assert tested.status_code == 200 and tested.json()["ok"] is True
        assert receiver.requests[-1]["headers"]["X-Spikes-Event"] == "webhook.test"
    finally:
        receiver.close()
