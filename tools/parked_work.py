"""The scheduled jobs' pending units parked after failing too often: list them with why,
requeue (docs/reliability.md, "Pending work that keeps failing").

    python -m tools.parked_work [--stage STAGE] list
    python -m tools.parked_work [--stage STAGE] requeue UNIT
    python -m tools.parked_work [--stage STAGE] requeue --all

``make parked-work STAGE=prod ARGS='list'`` runs it with your AWS credentials, on the stage's
tables as tools/usage_events.py does. Output is JSON, one object per line (log lines go to
stderr); a refusal (a unit not parked, or moved since it was read) is a JSON line
``{"error": ...}`` and exit status 1.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from tools.usage_events import _print, operator_parser, stage_environment


def parse(argv: Optional[List[str]]) -> argparse.Namespace:
    parser, _, _ = operator_parser("tools.parked_work", __doc__, "every parked unit, with the error that parked it",
                                   "put parked units back, due at their job's next invocation",
                                   ("unit", "the unit's name (see list)"), "every parked unit")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Standard output carries the answers alone; the services' log lines go to standard error."""
    args = parse(argv)
    if args.stage:
        os.environ.update(stage_environment(args.stage))
    from chalicelib import deps, logs
    from chalicelib.errors import SpikesError
    from chalicelib.services import parked_work
    with logs.logging_to_stderr():
        deps.reset()
        deps.settings()  # binds the models to the stage's tables
        try:
            if args.command == "list":
                answers = parked_work.parked()
            elif args.all:
                outcome = parked_work.requeue_all()
                _print([{"requeued": unit} for unit in outcome["requeued"]] + outcome["left"])
                return 1 if outcome["left"] else 0
            else:
                answers = [parked_work.requeue(args.unit)]
        except SpikesError as exc:
            _print([{"error": exc.message}])
            return 1
    _print(answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
