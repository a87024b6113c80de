"""Stripe events for tests, signed exactly as Stripe signs them:
``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, f"{t}.{raw_body}")>``. An event
destination's thin notifications (v2 events: ``thin``) are signed the same way, with the
destination's own secret; the v2 event they name is what ``FakeStripe.publish`` serves."""
from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any, Dict, Optional, Tuple

WEBHOOK_SECRET = "whsec_test_secret"
DESTINATION_SECRET = "whsec_test_destination"
METER_ERRORS = "v1.billing.meter.error_report_triggered"
_ids = itertools.count(1)


def sign(raw_body: str, secret: str = WEBHOOK_SECRET, timestamp: Optional[int] = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.{raw_body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def event(event_type: str, obj: Dict[str, Any], created: int, event_id: Optional[str] = None) -> Dict[str, Any]:
    return {"id": event_id or f"evt_test_{next(_ids):06d}", "object": "event", "api_version": "2026-10-28.endive",
            "created": created, "livemode": False, "pending_webhooks": 1, "type": event_type,
            "request": {"id": None, "idempotency_key": None}, "data": {"object": obj}}


def subscription(status: str, user_id: Optional[str] = None, sub_id: str = "sub_1",
                 customer: str = "cus_1") -> Dict[str, Any]:
    return {"id": sub_id, "object": "subscription", "customer": customer, "status": status,
            "metadata": {"user_id": user_id} if user_id else {}, "cancel_at_period_end": False,
            "items": {"object": "list", "data": [{"id": "si_1", "price": {"id": "price_pro"}}]}}


def checkout_session(user_id: str, customer: str = "cus_1", sub_id: str = "sub_1",
                     payment_status: str = "paid") -> Dict[str, Any]:
    return {"id": "cs_test_1", "object": "checkout.session", "mode": "subscription", "status": "complete",
            "payment_status": payment_status, "customer": customer, "subscription": sub_id,
            "client_reference_id": user_id, "metadata": {"user_id": user_id}}


def failed_invoice(customer: str = "cus_1", sub_id: str = "sub_1", legacy: bool = False) -> Dict[str, Any]:
    invoice = {"id": "in_1", "object": "invoice", "customer": customer, "status": "open", "attempt_count": 1,
               "billing_reason": "subscription_cycle"}
    if legacy:  # API versions before 2025-03 put the subscription on the invoice itself
        invoice["subscription"] = sub_id
    else:
        invoice["parent"] = {"type": "subscription_details",
                             "subscription_details": {"subscription": sub_id, "metadata": {}}}
    return invoice


def signed(evt: Dict[str, Any], secret: str = WEBHOOK_SECRET, timestamp: Optional[int] = None) -> Tuple[bytes, dict]:
    raw = json.dumps(evt)
    return raw.encode(), {"Stripe-Signature": sign(raw, secret, timestamp), "Content-Type": "application/json; charset=utf-8"}


def meter_error_report(samples: Dict[str, list], event_id: Optional[str] = None, event_type: str = METER_ERRORS,
                       counts: Optional[Dict[str, int]] = None, meter: str = "mtr_test_1") -> Dict[str, Any]:
    """The v2 event ``GET /v2/core/events/{id}`` answers for a meter error report: ``samples``
    maps an error code to the identifiers Stripe samples; ``counts`` the errors of each code
    (default: its samples)."""
    counts = counts or {code: len(identifiers) for code, identifiers in samples.items()}
    error_types = [{"code": code, "error_count": counts.get(code, len(identifiers)),
                    "sample_errors": [{"error_message": f"{code} for this event", "request": {"identifier": identifier}}
                                      for identifier in identifiers]} for code, identifiers in samples.items()]
    return {"id": event_id or f"evt_test_v2_{next(_ids):06d}", "object": "v2.core.event", "type": event_type,
            "livemode": False, "created": "2026-12-04T10:00:00.000Z", "context": None, "reason": None,
            "related_object": {"id": meter, "type": "billing.meter", "url": f"/v1/billing/meters/{meter}"},
            "data": {"developer_message_summary": "There is 1 invalid event", "validation_start": "2026-12-04T09:00:00.000Z",
                     "validation_end": "2026-12-04T10:00:00.000Z",
                     "reason": {"error_count": sum(counts.values()), "error_types": error_types}}}


def thin(event: Dict[str, Any]) -> Dict[str, Any]:
    """The thin notification an event destination delivers for a v2 event: no data."""
    return {key: event[key] for key in ("id", "object", "type", "livemode", "created", "related_object", "context")
            if key in event}
