"""The AWS region an operator's command acts in (``make deploy``, ``destroy``, ``secrets``,
``usage-events``, ``parked-work``): ``AWS_DEFAULT_REGION``, else ``AWS_REGION``, else the
profile's, as docs/deploy.md's prerequisites say. boto3 reads ``AWS_DEFAULT_REGION`` and the
profile but not ``AWS_REGION``, and the settings (what a function reads, where Lambda sets
``AWS_DEFAULT_REGION``) read neither of the other two: resolved here once, for both."""
from __future__ import annotations

import os
from typing import Any

MISSING = ("No AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), or a region in your AWS profile "
           "(docs/deploy.md, Prerequisites)")


def operator_region(session: Any = None) -> str:
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
    if not region:
        import boto3
        region = (session or boto3.session.Session()).region_name
    if not region:
        raise SystemExit(MISSING)
    return region
