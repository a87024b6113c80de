"""The verification snippets in docs/webhooks.md, run as written against a real signature."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from chalicelib.services import webhook_signing

DOC = (Path(__file__).resolve().parents[1] / "docs" / "webhooks.md").read_text(encoding="utf-8")
SECRET = "whsec_docs-example-secret"
BODY = json.dumps({"id": "evt_1", "type": "spike.created", "spike": {"comments": "naïve ✓"}},
                  ensure_ascii=False, separators=(",", ":"))


def _snippet(language: str) -> str:
    return re.search(rf"```{language}\n(.*?)```", DOC, re.S).group(1)


def _cases():
    now = int(time.time())
    good = webhook_signing.signature_header([SECRET], BODY, now)
    rotated = webhook_signing.signature_header(["whsec_new", SECRET], BODY, now)
    return [(good, BODY, True), (rotated, BODY, True), (good, BODY + " ", False),
            (webhook_signing.signature_header(["whsec_other"], BODY, now), BODY, False),
            (webhook_signing.signature_header([SECRET], BODY, now - 3600), BODY, False)]


def test_python_snippet_verifies_deliveries():
    namespace: dict = {}
    exec(_snippet("python"), namespace)  # noqa: S102 - our own documentation
    for header, body, expected in _cases():
        assert namespace["verify"](SECRET, header, body.encode("utf-8")) is expected, header


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_snippet_verifies_deliveries():
    cases = [{"header": h, "body": b, "expected": e} for h, b, e in _cases()]
    script = _snippet("javascript") + f"""
const cases = {json.dumps(cases)};
const results = cases.map((c) => verify({json.dumps(SECRET)}, c.header, Buffer.from(c.body, "utf8")) === c.expected);
console.log(JSON.stringify(results));
"""
    output = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=30, check=True).stdout
    assert json.loads(output) == [True] * len(cases)
