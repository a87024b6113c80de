"""``make secrets STAGE=...``: the SSM SecureString parameters a stage reads on a cold start
(``chalicelib.settings.SSM_PARAMETERS`` under ``/spikes/<stage>/``).

``secret_key`` and the admin ``token`` are generated here; the Stripe keys come from the
environment (``SPIKES_STRIPE_SECRET_KEY``, ``SPIKES_STRIPE_WEBHOOK_SECRET``,
``SPIKES_STRIPE_EVENT_DESTINATION_SECRET``) or a prompt.
Existing parameters are kept unless ``--rotate`` names them. No secret is ever printed, except
a newly generated admin token, once.
"""
from __future__ import annotations

import argparse
import getpass
import os
import secrets as random
import sys
from typing import Any, Callable, Dict, Iterable, List, Optional

from infra import stack

GENERATED = ("secret_key", "token")
FROM_USER = {"stripe_secret_key": "Stripe secret key (sk_live_... / sk_test_...)",
             "stripe_webhook_secret": "Stripe webhook signing secret (whsec_...)",
             "stripe_event_destination_secret": "Stripe event destination (meter errors) signing secret (whsec_...)"}


def existing_parameters(ssm: Any, stage: str) -> Dict[str, str]:
    """Names present under the stage's path -> their type (values are never read here)."""
    path = stack.ssm_path(stage)
    found: Dict[str, str] = {}
    for page in ssm.get_paginator("describe_parameters").paginate(
            ParameterFilters=[{"Key": "Path", "Option": "OneLevel", "Values": [path.rstrip("/")]}]):
        for item in page["Parameters"]:
            found[item["Name"][len(path):]] = item["Type"]
    return found


def ensure_secrets(ssm: Any, stage: str, rotate: Iterable[str] = (), ask: Optional[Callable[[str], str]] = None,
                   out=sys.stdout) -> List[str]:
    """Create what is missing (and what ``rotate`` names); returns the names written."""
    path = stack.ssm_path(stage)
    present = existing_parameters(ssm, stage)
    rotate = set(rotate)
    written: List[str] = []

    def put(name: str, value: str) -> None:
        ssm.put_parameter(Name=path + name, Value=value, Type="SecureString", Overwrite=True,
                          Description=f"Spikes {stage}: {name} (make secrets)")
        written.append(name)

    for name in GENERATED:
        if name in present and name not in rotate:
            continue
        value = random.token_urlsafe(48 if name == "secret_key" else 32)
        put(name, value)
        if name == "token":
            print(f"Admin token of stage {stage} (shown once; stored in SSM {path}token):\n  {value}", file=out)
    for name, label in FROM_USER.items():
        if name in present and name not in rotate:
            continue
        value = os.environ.get(f"SPIKES_{name.upper()}", "")
        if not value and ask is not None:
            value = ask(f"{label}, or Enter to skip: ")
        if value:
            put(name, value.strip())
    not_rotated = sorted(name for name in rotate if name not in written)
    if not_rotated:
        # An empty answer or a misspelled variable: the old value would go on being used by a
        # stage the operator believes rotated (a webhook secret Stripe no longer signs with).
        raise SystemExit(f"Not rotated: {', '.join(not_rotated)} (no new value was given; each keeps its old one). "
                         f"Give it in {', '.join('SPIKES_' + name.upper() for name in not_rotated)} or at the prompt.")
    missing = [name for name in FROM_USER if name not in present and name not in written]
    if missing:
        print(f"Not set: {', '.join(missing)}: billing answers 503 BILLING_NOT_CONFIGURED until you run "
              f"`make secrets STAGE={stage}` with them (see docs/deploy.md).", file=out)
    print(f"SSM parameters under {path}: {', '.join(sorted(set(present) | set(written)))}"
          f"{' (written now: ' + ', '.join(written) + ')' if written else ''}", file=out)
    return written


def prompt_if_interactive() -> Optional[Callable[[str], str]]:
    return getpass.getpass if sys.stdin.isatty() else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="prod", type=stack.stage_argument)
    parser.add_argument("--rotate", action="append", default=[], choices=[*GENERATED, *FROM_USER],
                        help="replace this parameter even if it exists (repeatable)")
    args = parser.parse_args(argv)
    import boto3
    from infra.region import operator_region
    ensure_secrets(boto3.client("ssm", region_name=operator_region()), stack.check_stage(args.stage), args.rotate, prompt_if_interactive())
    return 0


if __name__ == "__main__":
    sys.exit(main())
