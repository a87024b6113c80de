"""A share's outbound webhook state (on its item in the shares table): paused after deliveries
kept failing, resumed by its owner, and the signing secret's rotation with a grace period."""
from __future__ import annotations


from chalicelib.store.models import Share
from chalicelib.store.transactions import update_if


def pause(share: Share, paused_at: str, reason: str) -> bool:
    """Pause deliveries; False when already paused or the webhook was removed meanwhile."""
    return update_if(share, [Share.webhook_paused_at.set(paused_at), Share.webhook_pause_reason.set(reason[:500])],
                     Share.webhook_paused_at.does_not_exist() & Share.webhook_url.exists())


def unpause(share: Share) -> bool:
    """End the pause; False when the share or its webhook is gone meanwhile (conditioned: an
    UpdateItem without a condition would make a deleted share an item of its key alone)."""
    return update_if(share, [Share.webhook_paused_at.remove(), Share.webhook_pause_reason.remove()],
                     Share.webhook_url.exists())


def rotate_secret(share: Share, new_nonce: str, previous_until: int) -> bool:
    """The current nonce becomes the previous one (valid until ``previous_until``). False when
    the secret changed meanwhile. Refused with ``new_nonce`` stored, it is this write sent again
    after its answer was lost (the SDK retries a 500): done, or the caller, told to retry, would
    rotate away the old secret's grace for one it never saw (finding 70)."""
    if update_if(share, [Share.webhook_previous_nonce.set(share.webhook_secret_nonce),
                         Share.webhook_previous_until.set(previous_until),
                         Share.webhook_secret_nonce.set(new_nonce)],
                 Share.webhook_secret_nonce == share.webhook_secret_nonce):
        return True
    try:
        stored = Share.get(share.pk, consistent_read=True, attributes_to_get=["webhook_secret_nonce"])
    except Share.DoesNotExist:
        return False
    return stored.webhook_secret_nonce == new_nonce
