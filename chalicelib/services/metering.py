"""The agent tier's metering: what a spike or a share costs, monthly budget caps, and the
usage events for Stripe's Billing Meters (reported off the request path by ``usage_report``).

Charging adds no round trip: it rides in the transaction that stores the spike or share.
- the owner's period usage item (``usage#<user>#<period>``, write "usage") ADDs the cost, in
  thousandths of a cent, conditioned on staying within the account's cap;
- when a key made the request, the key's period item (``keyusage#<key>#<period>``, write
  "key-usage") counts what it created and, when it acts for the account charged (its own, or
  one claimed with it, moved or not: key_budgets.acts_for), ADDs the cost conditioned on the
  key's cap; so does the item of each key that made it and has a cap
  (writes "maker-usage-<n>", services/key_budgets.py);
- a usage event for Stripe is created (write "event", ``store.meter_events``).
So the spike or share, its charge and its usage event are stored together or not at all; a
cap that would be passed cancels the transaction (429 BUDGET_EXCEEDED) before anything is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Optional, Tuple

from chalicelib import clock
from chalicelib.limit_errors import BudgetExceeded
from chalicelib.services import key_budgets, quotas
from chalicelib.settings import Settings
from chalicelib.store import accounts as account_store
from chalicelib.store import apikeys as key_store
from chalicelib.store import charges, held_charges, meter_events
from chalicelib.store import shares as share_store
from chalicelib.store.models import ApiKey, LedgerItem, OutboxItem, Share, User
from chalicelib.store.transactions import ConditionFailed, Transaction

MILLICENTS_PER_CENT = 1000
SPIKE, SHARE = "spike", "share"


@dataclass(frozen=True)
class Charge:
    """One billable thing an agent-tier account is about to store."""
    kind: str
    user_id: str
    customer_id: Optional[str]
    cost: int  # thousandths of a cent
    account_cap_cents: Optional[int]
    identifier: str
    event_name: str
    timestamp: int
    period: str
    # A presigned upload's share: its event is held until the upload completes and dropped
    # (the charge given back) if it never does (store/held_charges.py).
    held: bool = False
    # (key id, cap) of the keys that made the charging key and have a cap (``for_key``).
    maker_caps: Tuple[Tuple[str, int], ...] = ()
    # The key whose cap binds it: the one it is made with, when that acts for the account (``for_key``).
    key_id: Optional[str] = None

    @property
    def period_ends(self) -> str:
        return clock.iso(clock.next_period_start(clock.period_start(self.period)))


def set_account_cap(user: User, cap_cents: Optional[int]) -> None:
    """The account's monthly spending cap on the agent tier (None removes it). Posts see it at
    once: their transaction checks the owner's cached cap (services/targets.py)."""
    account_store.set_monthly_cap(user, cap_cents)
    user.monthly_cap_cents = cap_cents


def price(settings: Settings, kind: str) -> int:
    cents = settings.agent_price_per_spike_cents if kind == SPIKE else settings.agent_price_per_share_cents
    return int(cents * MILLICENTS_PER_CENT)


def to_cents(millicents) -> int:
    """Costs are shown in whole cents, rounded up: never less than Stripe will bill."""
    return math.ceil(int(millicents or 0) / MILLICENTS_PER_CENT)


def charge_for(settings: Settings, owner: Optional[User], kind: str, identifier: str,
               now: datetime) -> Optional[Charge]:
    """The charge for storing one spike/share for ``owner``; None unless the owner is on the
    agent tier. ``identifier`` names the stored thing (it becomes Stripe's dedup identifier)."""
    if owner is None or quotas.effective_tier(owner, now.timestamp()) != quotas.AGENT:
        return None
    event_name = settings.stripe_spike_meter_event if kind == SPIKE else settings.stripe_share_meter_event
    cap = owner.monthly_cap_cents
    return Charge(kind=kind, user_id=owner.user_id, customer_id=owner.stripe_customer_id, cost=price(settings, kind),
                  account_cap_cents=None if cap is None else int(cap), identifier=identifier,
                  event_name=event_name, timestamp=int(now.timestamp()), period=clock.period_of(now))


def for_key(charge: Optional[Charge], key: Optional[ApiKey]) -> Optional[Charge]:
    """``charge``, made with ``key``: bound by its cap and the caps of the keys that made it
    when the key acts for the account charged, also amid a claim (key_budgets.acts_for)."""
    if charge is None or key is None or not key_budgets.acts_for(key, charge.user_id):
        return charge
    caps = key_budgets.maker_caps(key, {charge.user_id, key.user_id, key.claimed_from})
    return replace(charge, key_id=key.key_id, maker_caps=caps)


def cost_limit(cap_cents: Optional[int]) -> Optional[int]:
    return None if cap_cents is None else cap_cents * MILLICENTS_PER_CENT


def key_cap(key: Optional[ApiKey], charge: Optional[Charge]) -> Optional[int]:
    """The key's cap when it binds this charge: the key acts for the account charged (``for_key``)."""
    if key is None or charge is None or charge.key_id != key.key_id or key.monthly_cap_cents is None:
        return None
    return int(key.monthly_cap_cents)


def refuse_impossible(charge: Optional[Charge], key: Optional[ApiKey]) -> None:
    """A cap below one unit's price refuses without a round trip."""
    if charge is None:
        return
    if charge.account_cap_cents is not None and charge.account_cap_cents * MILLICENTS_PER_CENT < charge.cost:
        raise BudgetExceeded("account", charge.account_cap_cents, charge.period_ends)
    for cap in [key_cap(key, charge)] + [cap for _, cap in charge.maker_caps]:
        if cap is not None and cap * MILLICENTS_PER_CENT < charge.cost:
            raise BudgetExceeded("key", cap, charge.period_ends)


def spike_cost(charge: Optional[Charge]) -> Dict[str, Any]:
    """``cost`` and ``cost_limit`` for the owner's usage write of a spike (spike_counters.count_spike)."""
    if charge is None:
        return {}
    return {"cost": charge.cost, "cost_limit": cost_limit(charge.account_cap_cents)}


def add_share_charge(tx: Transaction, charge: Optional[Charge], now: float) -> None:
    if charge is not None:
        charges.charge_account(tx, charge.user_id, charge.period, charge.cost, cost_limit(charge.account_cap_cents), now)


def add_key_use(tx: Transaction, key: Optional[ApiKey], kind: str, charge: Optional[Charge], period: str,
                now: float) -> None:
    """What the key created; charged against its cap when the charge is its own account's."""
    if key is None:
        return
    charged = charge is not None and charge.key_id == key.key_id
    charges.count_key_use(tx, key.key_id, period, kind, charge.cost if charged else 0,
                         cost_limit(key_cap(key, charge)), now)
    for index, (maker_id, cap) in enumerate(charge.maker_caps if charged else ()):
        charges.charge_maker(tx, maker_id, period, charge.cost, cost_limit(cap), now, f"maker-usage-{index}")


def add_event(tx: Transaction, charge: Optional[Charge], key: Optional[ApiKey] = None) -> None:
    """The usage event for Stripe ("event"), created in the transaction that stores what it
    bills; a held charge's event with what it charged ``key``, to give back if it is dropped."""
    if charge is None:
        return
    if charge.held:
        key_cost = charge.cost if key is not None and charge.key_id == key.key_id else 0
        held_charges.hold(tx, charge.identifier, charge.event_name, charge.user_id, charge.customer_id,
                          charge.timestamp, charge.period, charge.cost, key.key_id if key else None, key_cost)
    else:
        meter_events.add(tx, charge.identifier, charge.event_name, charge.user_id, charge.customer_id,
                         charge.timestamp)


def budget_error(failed: ConditionFailed, charge: Optional[Charge], key: Optional[ApiKey]) -> Optional[BudgetExceeded]:
    """The 429 for a transaction refused by a cap ("usage": the account's, "key-usage": the key's)."""
    if charge is None:
        return None
    if "usage" in failed:
        return BudgetExceeded("account", int(charge.account_cap_cents or 0), charge.period_ends)
    if "key-usage" in failed and key_cap(key, charge) is not None:
        return BudgetExceeded("key", key_cap(key, charge), charge.period_ends)
    for index, (_, cap) in enumerate(charge.maker_caps):
        if f"maker-usage-{index}" in failed:  # the cap of a key that made this one
            return BudgetExceeded("key", cap, charge.period_ends)
    return None


def share_identifier(share_id: str) -> str:
    return f"share-{share_id}"


def share_charge(settings: Settings, user: User, share_id: str, key: Optional[ApiKey],
                 held: bool = False) -> Optional[Charge]:
    """What creating a share costs on the agent tier; refused up front when a cap is already
    reached, before any file is uploaded. ``held``: billed only once the upload completes."""
    charge = for_key(charge_for(settings, user, SHARE, share_identifier(share_id), clock.now()), key)
    check_budget(charge, key)
    return replace(charge, held=True) if charge is not None and held else charge


def insert_share(share: Share, owner_id: str, under_limit: Any, charge: Optional[Charge],
                 key: Optional[ApiKey], owner_also: Any = None) -> Share:
    """``store.shares.insert`` with the agent tier's writes in the share's transaction (its charge,
    the key's use, the usage event); BudgetExceeded when a cap refused it. ``under_limit`` and
    ``owner_also``: as ``store.shares.insert`` takes them."""
    period = charge.period if charge else (share.counted_period or clock.current_period())
    at = clock.epoch()  # read once: every attempt of the share's transaction writes the same

    def add(tx: Transaction) -> None:
        add_share_charge(tx, charge, at)
        add_key_use(tx, key, SHARE, charge, period, at)
        add_event(tx, charge, key)
    try:
        return share_store.insert(share, owner_id, under_limit, add, owner_also)
    except ConditionFailed as failed:
        raise budget_error(failed, charge, key) or failed from None


def check_budget(charge: Optional[Charge], key: Optional[ApiKey]) -> None:
    """A read-only pre-check for work that must not start past a cap (share uploads). The
    transaction remains the guard; this only saves the upload."""
    refuse_impossible(charge, key)
    if charge is None:
        return
    if charge.account_cap_cents is not None:
        spent = _spent(charges.account_period(charge.user_id, charge.period))
        if spent + charge.cost > charge.account_cap_cents * MILLICENTS_PER_CENT:
            raise BudgetExceeded("account", charge.account_cap_cents, charge.period_ends)
    capped = [(key.key_id, key_cap(key, charge))] if key_cap(key, charge) is not None else []
    for key_id, cap in capped + list(charge.maker_caps):
        if _spent(charges.key_period(key_id, charge.period)) + charge.cost > cap * MILLICENTS_PER_CENT:
            raise BudgetExceeded("key", cap, charge.period_ends)


def _spent(item: Optional[LedgerItem]) -> int:
    """What a usage item was charged this period, in thousandths of a cent."""
    return int(item.cost or 0) if item else 0


@dataclass(frozen=True)
class Release:
    """A held charge released at ``at`` (its usage time): counted in that period, under the caps
    that period has when it is not the one it was charged in (store/held_charges.release)."""
    held: OutboxItem
    at: int
    account_cap_cents: Optional[int] = None
    key_cap_cents: Optional[int] = None

    def write(self, tx: Transaction) -> None:
        held_charges.release(tx, self.held, self.at, cost_limit(self.account_cap_cents), cost_limit(self.key_cap_cents))

    @property
    def moves(self) -> bool:
        """It counts the charge in a later period than the one holding it."""
        period = clock.period_of(datetime.fromtimestamp(self.at, timezone.utc))
        return bool(self.held.period) and period != self.held.period

    def move_first(self, share: Share) -> None:
        """Before a completion copies any file: the held charge moves to the period of ``at``
        under its caps (store/held_charges.move), so a cap with no room refuses the completion
        (BudgetExceeded) with nothing copied. A share or charge changed meanwhile is left to the
        activation, which reads both again."""
        if not self.moves:
            return
        try:
            held_charges.move(share, self.held, self.at, cost_limit(self.account_cap_cents),
                              cost_limit(self.key_cap_cents))
        except ConditionFailed as failed:
            refusal = self.refusal(failed)
            if refusal is not None:
                raise refusal from None

    def refusal(self, failed: ConditionFailed) -> Optional[BudgetExceeded]:
        """The 429 when a cap of the period it moves to refused it; None for other failures."""
        ends = clock.iso(clock.next_period_start(datetime.fromtimestamp(self.at, timezone.utc)))
        if "usage" in failed:
            return BudgetExceeded("account", int(self.account_cap_cents or 0), ends)
        if "key-usage" in failed:
            return BudgetExceeded("key", int(self.key_cap_cents or 0), ends)
        return None


def release_at(held: OutboxItem, owner: Optional[User], at: int) -> Release:
    """The release of ``held`` at ``at``. Moving into a later period than it was charged in is a
    charge there: it is capped by the account's cap (and the charged key's) as they are now, so
    uploads held over a period's end cannot pass the next period's cap."""
    if clock.period_of(datetime.fromtimestamp(at, timezone.utc)) == held.period:
        return Release(held, at)
    account_cap = None if owner is None or owner.monthly_cap_cents is None else int(owner.monthly_cap_cents)
    key = key_store.get(held.key_id) if held.key_id and held.key_cost else None
    key_cap_cents = None if key is None or key.monthly_cap_cents is None else int(key.monthly_cap_cents)
    return Release(held, at, account_cap, key_cap_cents)


def releasing(share_id: str, owner: Optional[User], at: int) -> Optional[Release]:
    """The release of the share's held charge at ``at``; None when none is held (not the agent
    tier, or released or dropped already)."""
    held = held_charges.get(share_identifier(share_id))
    return None if held is None else release_at(held, owner, at)


def moving_key_count(share: Share, at: int) -> Optional[Callable[[Transaction], None]]:
    """A presigned upload's share completed in a later period than it started in, on a tier
    that holds no charge: the key's count of it moves to that period, as a held charge does."""
    period = clock.period_of(datetime.fromtimestamp(at, timezone.utc))
    if share.counted_key_id is None or share.counted_period in (None, period):
        return None
    return lambda tx: charges.move_key_share(tx, share.counted_key_id, share.counted_period, period, 0, None, at)
