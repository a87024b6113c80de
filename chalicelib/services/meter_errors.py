"""Meter events Stripe found invalid after accepting them (docs/agents.md, "Errors Stripe finds
later"): Stripe validates a meter event asynchronously, and what it finds wrong after the
``200`` (the usage report then kept a copy and deleted the event) reaches us only as a *thin*
event, ``v1.billing.meter.error_report_triggered`` or ``v1.billing.meter.no_meter_found``,
from an event destination (``POST /webhooks/stripe/meter-errors``).

- authentic: ``StripeClient.parse_event_notification`` checks ``Stripe-Signature`` against the
  destination's own secret (``stripe_event_destination_secret``) before anything is read;
- read back: the thin event carries no data; the report is ``GET /v2/core/events/{id}``:
  counts per error code and a few *sample* errors, each naming a request's identifier;
- each sample we hold a copy of (``meter-sent#<shard>``, 35 days) is moved, in one
  conditional transaction, back to be sent again when that is safe (the customer was missing
  and the account has another one now: the usage report sends to it) or to the dead queue,
  parked as refused, for an operator (``make usage-events``). Either way under a new
  identifier: Stripe may still deduplicate the reported one, and did not bill it;
- once: a redelivery finds the copies moved (nothing twice) and the ``stripe-event#<id>``
  marker, written on absence after the samples, answers it ``duplicate``;
- visible: what the report counted beyond its samples, which cannot be sent again from here,
  is logged (``usage.meter_errors_reported``, level error) for the alarm on it.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Dict, Optional

from chalicelib.errors import DependencyUnavailable, InvalidSignature, WebhooksNotConfigured
from chalicelib.logs import get_logger
from chalicelib.settings import Settings
from chalicelib.store import accounts as account_store
from chalicelib.store import ledger, meter_events

log = get_logger("spikes.meter_errors")

MAX_BYTES = 64 * 1024
MARKER_TTL_SECONDS = 30 * 24 * 3600  # Stripe retries a delivery for up to three days
REPORTS = {"v1.billing.meter.error_report_triggered", "v1.billing.meter.no_meter_found"}
# A customer Stripe did not find, or none named: sent again by itself when the account has
# another customer now (replaced after a deletion). Anything else (no meter, an archived one,
# a timestamp out of range, a value refused, the same customer still missing) needs an operator.
RESENDABLE = {"meter_event_customer_not_found", "meter_event_no_customer_defined"}
# A sample may name the request's idempotency key (``spikes-meter-<identifier>-<customer>[-r<n>]``,
# usage_report._send) rather than the meter event's identifier.
_KEY = re.compile(r"^spikes-meter-(?P<identifier>.+)-cus_[A-Za-z0-9]+(?:-r\d+)?$")


def verify(settings: Settings, client_factory: Callable[[], Any], raw_body: bytes, signature: Optional[str]):
    """The thin event notification, only if signed with the destination's secret, and fresh."""
    if not settings.stripe_event_destination_secret or not settings.stripe_secret_key:
        raise WebhooksNotConfigured("Stripe's event destination is not configured on this server")
    if not signature:
        raise InvalidSignature("Missing Stripe-Signature header")
    import stripe
    try:
        return client_factory().parse_event_notification(
            raw_body, signature, settings.stripe_event_destination_secret.get_secret_value())
    except stripe.SignatureVerificationError:
        raise InvalidSignature() from None
    except (ValueError, TypeError, AttributeError, KeyError):  # signed, but not a thin event
        raise InvalidSignature("Signed payload is not a Stripe thin event") from None


def our_identifier(named: str) -> str:
    match = _KEY.match(named or "")
    return match.group("identifier") if match else named


def handle(notification: Any, client_factory: Callable[[], Any], now: float) -> Dict[str, Any]:
    """Act on a report once; anything else is acknowledged and ignored."""
    if notification.type not in REPORTS:
        log.info("stripe.thin_event_ignored", event_id=notification.id, type=notification.type)
        return {"received": True, "outcome": "ignored"}
    if ledger.stripe_event_seen(notification.id):
        return {"received": True, "outcome": "duplicate"}
    data = _report(client_factory(), notification.id)
    reason = data.get("reason") or {}
    summary: Dict[str, Any] = {"requeued": 0, "parked": 0, "unmatched": 0, "already_handled": 0, "sampled": 0}
    by_code: Dict[str, int] = {}
    for error_type in reason.get("error_types") or []:
        code = str(error_type.get("code"))
        by_code[code] = by_code.get(code, 0) + int(error_type.get("error_count") or 0)
        for sample in error_type.get("sample_errors") or []:
            named = str(((sample.get("request") or {}).get("identifier")) or "")
            summary[_act(notification.id, code, str(sample.get("error_message") or ""), our_identifier(named), now)] += 1
            summary["sampled"] += 1
    total = int(reason.get("error_count") or sum(by_code.values()))
    summary.update(errors=total, unsampled=max(0, total - summary["sampled"]), by_code=by_code)
    related = getattr(notification, "related_object", None)
    marker = ledger.stripe_event_marker(notification.id, "meter-errors", {"type": notification.type, **summary},
                                        int(now) + MARKER_TTL_SECONDS)
    if not ledger.save_once(marker):
        return {"received": True, "outcome": "duplicate"}  # a concurrent delivery finished first
    log.error("usage.meter_errors_reported", event_id=notification.id, type=notification.type,
              meter=getattr(related, "id", None), window_start=data.get("validation_start"),
              window_end=data.get("validation_end"), message=str(data.get("developer_message_summary") or "")[:300],
              **summary)
    return {"received": True, "outcome": "applied"}


def _report(client: Any, event_id: str) -> Dict[str, Any]:
    """The report's data, read back from Stripe; 503 (Stripe delivers again later) when that fails."""
    import stripe
    try:
        event = client.v2.core.events.retrieve(event_id)
    except stripe.StripeError as exc:
        log.error("stripe.meter_report_unreadable", event_id=event_id, error=type(exc).__name__,
                  detail=str(exc)[:300])
        raise DependencyUnavailable("Stripe's report could not be read; retry shortly") from None
    data = event.to_dict().get("data")
    return data if isinstance(data, dict) else {}


def _act(event_id: str, code: str, message: str, identifier: str, now: float) -> str:
    """One sampled error: the event we sent under ``identifier`` sent again, or parked."""
    copy = meter_events.sent_copy(identifier, now) if identifier else None
    if copy is None:  # not ours, older than 35 days, sent before copies were kept, or moved already
        log.warning("usage.meter_error_unmatched", event_id=event_id, identifier=identifier, code=code)
        return "unmatched"
    current = account_store.stripe_customer(copy.user_id)
    again = meter_events.reported_identifier(identifier)
    note = (f"Stripe reported meter event {identifier} (sent to {copy.customer_id}) invalid after accepting it "
            f"({event_id}): {code}: {message[:300]}")
    resend = code in RESENDABLE and bool(current) and current != copy.customer_id
    note += f"; sent again as {again} to the account's customer now" if resend else f"; parked as {again}"
    if not meter_events.take_back(copy, again, note[:1000], park=not resend):
        return "already_handled"
    outcome = "requeued" if resend else "parked"
    log.warning(f"usage.reported_{outcome}", event_id=event_id, identifier=identifier, as_identifier=again,
                code=code, user_id=copy.user_id, customer_id=copy.customer_id)
    return outcome
