"""The README's settings table is what chalicelib/settings.py reads: every setting, and no
variable that does nothing."""
from __future__ import annotations

import re
from pathlib import Path

from chalicelib.settings import Settings

README = Path(__file__).resolve().parent.parent / "README.md"


def _settings_table_variables() -> set:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Settings", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split(" | ")[0])}


def test_the_settings_table_lists_every_setting_and_nothing_else():
    fields = Settings.model_fields
    expected = {field.validation_alias if isinstance(field.validation_alias, str) else f"SPIKES_{name.upper()}"
                for name, field in fields.items()}
    listed = _settings_table_variables()
    assert sorted(listed - expected) == [], "listed in the README but not read by chalicelib/settings.py"
    assert sorted(expected - listed) == [], "read by chalicelib/settings.py but missing from the README"
