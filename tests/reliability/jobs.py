"""The scheduled functions as their schedules run them: invoked as their own Lambda functions
(their calls checked against their roles, tests/aws_calls.py), again and again until done."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Dict

from chalicelib import clock
from tests.test_usage import SCHEDULE_EVENT

FINISHED = ("completed", "already-done")


def quota_reset_until_done(client: Any, max_invocations: int = 200) -> Dict[str, Any]:
    """Invoke ``quota_reset`` until the period pass, the day's sweep and the runs Stripe events
    left are all finished (an invocation through the test client has little time left, so each
    does a page or so, and the next continues from the checkpoint, as every 15 minutes in AWS).
    Raises what a run raises."""
    for _ in range(max_invocations):
        payload = client.lambda_.invoke("quota_reset", SCHEDULE_EVENT).payload
        passes = payload["passes"]
        if len(passes) == 2 and all(p["status"] in FINISHED for p in passes) and not payload["pro_feature_runs"]["left"]:
            return payload
    raise AssertionError(f"quota_reset not done after {max_invocations} invocations: {payload}")


@contextmanager
def at(moment):
    """Our code reads the time from ``chalicelib.clock``: the jobs run at ``moment``."""
    clock.use(lambda: moment)
    try:
        yield
    finally:
        clock.use(None)
