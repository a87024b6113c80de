"""Deploy options reach the stack exactly as given. The Makefile wrapped each in single quotes:
`make deploy MAIL_FROM_NAME="Bob's Feedback"` broke the shell command, a `$` was read by make,
a value starting with `-` was taken by argparse for an option; and a sender name with a comma or
a letter outside ASCII, passed on as it came, made SES refuse every magic-link mail."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from chalicelib.services.addresses import sender_header
from chalicelib.services.mailer import Mail, SesMailer
from infra import deploy
from tests.deploy.conftest import STAGE, deploy_stack, function_environment

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("clean_spikes_env")
AWKWARD = "Bob's \"Feedback\", $HOME $(x) `id` ; & # \\ end"


def recorded_make(tmp_path, *arguments: str) -> list:
    """Runs `make` with a python that records its arguments instead of running anything."""
    fake_bin, log, stamp = tmp_path / "bin", tmp_path / "argv", tmp_path / "installed"
    fake_bin.mkdir()
    (fake_bin / "python").write_text(f"#!{sys.executable}\nimport json, sys\n"
                                     f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
    (fake_bin / "python").chmod(0o755)
    stamp.touch()  # the venv counts as installed: nothing is installed into the shared one
    env = {key: value for key, value in os.environ.items() if key not in ("STAGE", "URL", "ROTATE")}
    done = subprocess.run(["make", "-s", *arguments, f"BIN={fake_bin}", f"STAMP={stamp}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_make_passes_each_value_as_given(tmp_path):
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    calls = recorded_make(tmp_path, "deploy", "STAGE=staging", f"MAIL_FROM_NAME={AWKWARD}",
                          "ALARM_EMAIL=-ops@example.com", "STRIPE_PRICE_ID=")
    command = next(call for call in calls if call[:2] == ["-m", "infra.deploy"])
    assert f"--mail-from-name={AWKWARD}" in command
    assert "--alarm-email=-ops@example.com" in command and "--stripe-price-id=" in command
    assert not any(word.startswith("--domain-name") for word in command)  # left out: kept as deployed


def test_make_secrets_and_smoke_pass_their_values_as_given(tmp_path):
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "smoke").mkdir()
    secrets_call = recorded_make(tmp_path / "secrets", "secrets", "STAGE=staging", "ROTATE=it's $x")[-1]
    assert secrets_call[-2:] == ["--stage=staging", "--rotate=it's $x"]
    smoke_call = recorded_make(tmp_path / "smoke", "smoke", "URL=https://x.example/api?a='b'&c=$d")[-1]
    assert smoke_call[-1] == "https://x.example/api?a='b'&c=$d"


def test_make_smoke_hands_over_only_a_token_from_its_command_line(tmp_path):
    # An exported TOKEN (the README's local walkthrough) is not handed over: smoke refuses it.
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    fake_bin, log, stamp = tmp_path / "bin", tmp_path / "seen", tmp_path / "installed"
    fake_bin.mkdir()
    stamp.touch()
    (fake_bin / "python").write_text(f"#!{sys.executable}\nimport json, os\n"
                                     f"open({str(log)!r}, 'a').write(json.dumps(os.environ.get('SMOKE_TOKEN')) + '\\n')\n")
    (fake_bin / "python").chmod(0o755)
    env = {key: value for key, value in os.environ.items() if key not in ("URL", "TOKEN", "SMOKE_TOKEN")}
    for arguments, extra_env in ((["TOKEN=it's $x"], {}), ([], {"TOKEN": "exported"}), (["TOKEN="], {"TOKEN": "exported"})):
        done = subprocess.run(["make", "-s", "smoke", "URL=https://x.example/api", *arguments, f"BIN={fake_bin}",
                               f"STAMP={stamp}"], cwd=ROOT, env={**env, **extra_env}, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "it's" not in done.stdout + done.stderr  # the line carrying the token is not echoed
    assert [json.loads(line) for line in log.read_text().splitlines()] == ["it's $x", None, ""]


def test_the_deploy_command_takes_a_value_starting_with_a_dash(monkeypatch):
    seen = {}

    class Recorder:
        def deploy(self, stage, build_dir, options, interactive=False):
            seen.update(options)

    monkeypatch.setattr(deploy, "Deployer", Recorder)
    deploy.main(["deploy", "--stage=staging", "--mail-from-name=-- Spikes --"])
    assert seen["mail_from_name"] == "-- Spikes --"


def test_the_sender_name_reaches_the_stack_as_given_and_ses_in_its_header_form(built):
    name = "Acme, Inc. 'Feedback' Café"
    with mock_aws():
        deploy_stack(built, mail_from_name=name)
        described = boto3.client("cloudformation").describe_stacks(StackName=f"spikes-{STAGE}")["Stacks"][0]
        assert {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]}["MailFromName"] == name
        sender = function_environment(f"spikes-{STAGE}-api")["SPIKES_MAIL_SENDER"]
    assert sender == f"{name} <no-reply@spikes.example>"
    header = sender_header(sender)
    assert header.startswith("=?utf-8?") and header.endswith(" <no-reply@spikes.example>")
    from email.header import decode_header, make_header
    assert str(make_header(decode_header(header.rsplit(" <", 1)[0]))) == name


def test_ses_gets_a_sender_it_can_parse():
    sent = []

    class Client:
        def send_email(self, **kwargs):
            sent.append(kwargs["Source"])

    for configured, expected in [("Spikes <no-reply@x.example>", "Spikes <no-reply@x.example>"),
                                 ("Acme, Inc. <no-reply@x.example>", '"Acme, Inc." <no-reply@x.example>'),
                                 ('"Acme, Inc." <no-reply@x.example>', '"Acme, Inc." <no-reply@x.example>'),
                                 ("no-reply@x.example", "no-reply@x.example")]:
        SesMailer(Client(), configured).send(Mail(to="someone@example.com", subject="s", text="t"))
        assert sent[-1] == expected
