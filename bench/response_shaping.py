"""What shaping an answer through its model costs on the feedback path, in process (no server):
the spike listing's page sent as it is (``Preshaped``, today) against plain ``json.dumps`` and
against validating every item through ``SpikePageOut``; POST /spikes' answer through its model
against a plain dict. Prints figures; run with ``.venv/bin/python -m bench.response_shaping``."""
from __future__ import annotations

import json
import timeit

from chalicelib.api import routing
from chalicelib.api.responses import Preshaped, SpikeCreatedOut, SpikePageOut

ITEM = {"id": "V1StGXR8_Z5jdHi6B-myT", "type": "element", "projectKey": "my-project", "page": "Home",
        "url": "https://example.com/pricing?plan=pro", "comments": "The button is hard to find " * 3,
        "timestamp": "2026-03-10T13:02:29.123Z", "reviewer": {"id": "r1", "name": "Jane"}, "rating": "love",
        "resolved": False, "resolvedAt": None, "selector": "main > button.cta", "xpath": "/html/body/main/button",
        "elementText": "Upgrade", "boundingBox": {"x": 10, "y": 20, "width": 300, "height": 40},
        "viewport": {"width": 1440, "height": 900}}


def best_ms(fn, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1000


def main() -> None:
    for count in (100, 1000):
        page = {"data": [dict(ITEM, id=f"spike{i:05d}") for i in range(count)], "next_cursor": None}
        plain = best_ms(lambda: json.dumps(page, separators=(",", ":")), 50)
        preshaped = best_ms(lambda: routing.json_response(Preshaped(SpikePageOut, page)), 50)
        validated = best_ms(lambda: routing.json_response(SpikePageOut.model_validate(page)), 10)
        print(f"GET /spikes, {count} items: json.dumps {plain:.2f} ms | json_response(Preshaped) {preshaped:.2f} ms "
              f"| validated through SpikePageOut {validated:.2f} ms")
    plain = best_ms(lambda: json.dumps({"ok": True, "id": "V1StGXR8_Z5jdHi6B-myT"}, separators=(",", ":")), 20000)
    model = best_ms(lambda: routing.json_response(SpikeCreatedOut(id="V1StGXR8_Z5jdHi6B-myT"), 201), 20000)
    print(f"POST /spikes answer: json.dumps of a dict {plain * 1000:.1f} us | "
          f"json_response(SpikeCreatedOut) {model * 1000:.1f} us")


if __name__ == "__main__":
    main()
