"""Reading an index a deploy has just added. CloudFormation updates the functions' code, their
IAM grants and the tables together, so the new code may query an index before it can: readers
that can do without it (store/shares.deleting_of, store/spike_ids) fall back while it is not
ready, and say so when that may be more than a deploy's moment."""
from __future__ import annotations

from pynamodb.exceptions import QueryError

from chalicelib.logs import get_logger

log = get_logger("spikes.indexes")


def not_ready(exc: QueryError, index_name: str) -> bool:
    """Whether a Query of ``index_name`` failed only as a deploy brings the index up:
    DynamoDB still builds it (a ValidationException naming an index), or the function's grant
    on it has not spread yet (IAM takes seconds to minutes: AccessDeniedException, which need
    not name the index). A denial may also be a grant missing for good, which a fallback would
    hide for ever: each is logged at error level, counted into the operator alarm
    (infra/stack.OPERATOR_EVENTS), so one that goes on after a deploy is found."""
    code, message = exc.cause_response_code, exc.cause_response_message or ""
    if code == "ValidationException" and "index" in message.lower():
        return True
    if code == "AccessDeniedException":
        log.error("store.index_access_denied", index=index_name, detail=message[:300])
        return True
    return False
