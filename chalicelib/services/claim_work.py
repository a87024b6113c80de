"""What the scheduled ``share_deletions`` function does for claims: finish those no call
completed (docs/security.md 333).

A claim moves for ``claims.MOVE_SECONDS`` a call and answers 202 while some is left; the same
call again moves the rest. A client that never sends it again (a tab closed, a script that
took the 202 for done), or a call that died, left the key-only account half moved: the
person's listings, counts, exports and the MCP server's ``get_spikes`` missed what stayed
behind. Every claim is recorded before its marking (store/pending_claims.py) and forgotten by
the call that completes it; this finishes the others, oldest first, while the run's time
lasts, each continued by the next run when it does not fit. The moves are those of a call
(conditioned on the old owner, the counts moved in the same transactions), so a run racing a
call, or another run, moves nothing twice and counts nothing twice.
"""
from __future__ import annotations

from typing import Dict

from chalicelib import clock
from chalicelib.logs import get_logger
from chalicelib.services import claims, pending_work
from chalicelib.store import accounts as account_store
from chalicelib.store import pending_claims
from chalicelib.store.pending_queue import Unit

log = get_logger("spikes.claim_work")

# What a run spends on claims at most, after the share deletions' steps (its function may run
# 5 minutes: infra/stack.py); a claim not finished by then is the next run's.
CLAIM_SECONDS_PER_RUN = 60


def finish_pending_claims(now: float, limit: int = 100, seconds: float = CLAIM_SECONDS_PER_RUN) -> Dict[str, int]:
    """The scheduled job: the claims recorded and not completed whose time came, each moved on
    for what is left of ``seconds``. One whose step raises is moved back and parked after too
    many attempts (services/pending_work.py)."""
    until = clock.epoch() + seconds
    pending = pending_claims.due(limit, now)
    work = pending_work.Pass(pending_claims.CLAIMS, now)
    finished = 0
    for unit in pending:
        left = until - clock.epoch()
        if work.stopped or left <= 0:
            break
        ran, done = work.attempt(unit, lambda: _finish_claim(unit, left, now))
        finished += bool(ran and done)
    return {"claims_pending": len(pending), "claims_finished": finished, "claims_failed": work.failed}


def _finish_claim(unit: Unit, seconds: float, now: float) -> bool:
    claimed = account_store.get(unit.name, consistent=True)
    if claimed is None or not claimed.merged_into:  # never marked: the claim was refused or died first
        pending_claims.forget(unit.name)
        return False
    done = claims.finish(claimed, seconds).complete  # forgets the unit when complete
    if not done:
        pending_claims.CLAIMS.postpone(unit, int(now))  # due again: the next run goes on
    return done
