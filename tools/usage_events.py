"""The agent tier's usage events parked in the dead queue: list them, requeue, drop
(docs/agents.md, "Reporting to Stripe, exactly once").

    python -m tools.usage_events [--stage STAGE] list
    python -m tools.usage_events [--stage STAGE] requeue IDENTIFIER [--force]
    python -m tools.usage_events [--stage STAGE] requeue --all
    python -m tools.usage_events [--stage STAGE] drop IDENTIFIER

``make usage-events STAGE=prod ARGS='list'`` runs it with your AWS credentials. It reads the
settings as the stage's functions do (``SPIKES_*`` variables; outside the local stages the
stage's SSM parameters, ``/spikes/<stage>/``), so it acts on that stage's tables; on a
``make dev`` server's tables set ``SPIKES_DYNAMODB_ENDPOINT_URL`` to the DynamoDB address it
printed. Output is JSON, one object per line (log lines go to stderr); a refusal (an event Stripe may hold, one changed
since it was read, one not parked) is a JSON line ``{"error": ...}`` and exit status 1.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, Optional, Tuple

LOCAL_STAGES = ("local", "test")


def stage_environment(stage: str) -> Dict[str, str]:
    """What the stage's functions find in their environment, for the settings to read."""
    environment = {"SPIKES_STAGE": stage}
    if stage in LOCAL_STAGES:
        return environment
    from infra.region import operator_region
    # The settings read AWS_DEFAULT_REGION alone (Lambda sets it); an operator's region may be
    # AWS_REGION or the profile's, where the stage's tables and parameters are.
    environment["AWS_DEFAULT_REGION"] = operator_region()
    if not os.environ.get("SPIKES_SSM_PARAMETER_PATH"):
        from infra.stack import ssm_path
        environment["SPIKES_SSM_PARAMETER_PATH"] = ssm_path(stage)
    return environment


def operator_parser(module: str, doc: str, listed: str, requeued: str, one: Tuple[str, str], every: str):
    """An operator command's parser (this one's, tools/parked_work.py's): ``--stage``, ``list``
    and ``requeue`` one by its name or ``--all``: the parser, its subcommands and ``requeue``."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc.split("\n\n")[0])
    parser.add_argument("--stage", help="the stage whose tables to use (default: SPIKES_STAGE, else local)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help=listed)
    requeue = commands.add_parser("requeue", help=requeued)
    which = requeue.add_mutually_exclusive_group(required=True)
    which.add_argument(one[0], nargs="?", help=one[1])
    which.add_argument("--all", action="store_true", help=every)
    return parser, commands, requeue


def parse(argv: Optional[List[str]]) -> argparse.Namespace:
    parser, commands, requeue = operator_parser(
        "tools.usage_events", __doc__, "every parked event, with why it was parked",
        "put parked events back to be sent by the next report", ("identifier", "the event's identifier (see list)"),
        "every event parked as refused (one parked as unknown is requeued by its identifier)")
    requeue.add_argument("--force", action="store_true",
                         help="the named event parked as unknown: only once Stripe was seen not to hold it")
    drop = commands.add_parser("drop", help="delete a parked event for good (Stripe has it, or it is not billed)")
    drop.add_argument("identifier")
    args = parser.parse_args(argv)
    if args.command == "requeue" and args.all and args.force:
        # Each unknown event needs its own lookup at Stripe: forced in bulk, any Stripe has is billed twice.
        requeue.error("--force takes one event by its identifier, after looking it up at Stripe, not --all")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    """Standard output carries the answers alone (``make usage-events | jq`` reads them); the
    log lines the services write go to standard error."""
    args = parse(argv)
    if args.stage:
        os.environ.update(stage_environment(args.stage))
    from chalicelib import logs
    with logs.logging_to_stderr():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from chalicelib import deps
    from chalicelib.errors import SpikesError
    from chalicelib.services import parked_usage
    deps.reset()
    deps.settings()  # binds the models to the stage's tables
    try:
        if args.command == "list":
            answers = parked_usage.parked()
        elif args.command == "drop":
            answers = [parked_usage.drop(args.identifier)]
        elif args.all:
            outcome = parked_usage.requeue_all()
            answers = [{"requeued": identifier} for identifier in outcome["requeued"]] + outcome["left"]
            _print(answers)
            return 1 if outcome["left"] else 0
        else:
            answers = [parked_usage.requeue(args.identifier, force=args.force)]
    except SpikesError as exc:
        _print([{"error": exc.message}])
        return 1
    _print(answers)
    return 0


def _print(answers: List[dict]) -> None:
    for answer in answers:
        print(json.dumps(answer, sort_keys=True), flush=True)


if __name__ == "__main__":
    sys.exit(main())
