"""Deploy options a stack can only fail on late are refused before anything is created or changed.
`make deploy DOMAIN_NAME=...` without CERTIFICATE_ARN wrote the stage's secrets, uploaded its code
and started the stack, which failed at the custom domain halfway through (a first creation rolled
back); an allowed-values mistake (AGENT_SIGNUP=yes) failed after the secrets and the upload."""
from __future__ import annotations

import io

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from infra import stack
from infra.deploy import Deployer
from infra.options import problems
from tests.deploy.conftest import BUILD_ROOT, MAIL_FROM, STAGE, deploy_stack

pytestmark = pytest.mark.usefixtures("clean_spikes_env")
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-aaaa-bbbb-cccc-0123456789ab"


def deploy(**options):
    return Deployer(out=io.StringIO()).deploy(STAGE, BUILD_ROOT, {"mail_from": MAIL_FROM, **options})


def test_a_custom_domain_without_its_certificate_is_refused_before_anything_exists(built):
    with mock_aws():
        with pytest.raises(SystemExit, match="CERTIFICATE_ARN=arn:aws:acm:us-east-1:") as refused:
            deploy(domain_name="feedback.example.com")
        assert "Nothing was deployed or changed" in str(refused.value)
        with pytest.raises(ClientError):
            boto3.client("cloudformation").describe_stacks(StackName=f"spikes-{STAGE}")
        assert boto3.client("s3").list_buckets()["Buckets"] == []  # no artifact bucket, no upload
        assert boto3.client("ssm").describe_parameters()["Parameters"] == []  # no secrets written
        assert boto3.client("dynamodb").list_tables()["TableNames"] == []


def test_an_update_with_options_the_stack_would_refuse_changes_nothing(built):
    with mock_aws():
        deploy_stack(built)
        before = boto3.client("cloudformation").describe_stacks(StackName=f"spikes-{STAGE}")["Stacks"][0]
        with pytest.raises(SystemExit) as refused:
            deploy(domain_name="https://feedback.example.com/", agent_signup="yes", log_retention_days="45",
                   alarm_email="ops")
        message = str(refused.value)
        for expected in ("DOMAIN_NAME='https://feedback.example.com/' is not a host name", "needs its certificate",
                         "AGENT_SIGNUP='yes' is not one of", "LOG_RETENTION_DAYS='45'", "ALARM_EMAIL='ops'"):
            assert expected in message
        after = boto3.client("cloudformation").describe_stacks(StackName=f"spikes-{STAGE}")["Stacks"][0]
        assert after["Parameters"] == before["Parameters"]
        assert after["StackStatus"] == before["StackStatus"]


def test_the_certificate_is_read_with_the_domain_the_stack_keeps():
    kept = {"MailFrom": MAIL_FROM, "DomainName": "feedback.example.com", "CertificateArn": CERTIFICATE}
    assert problems({"MailFromName": "Feedback"}, kept, "us-east-1", "aws", creating=False) == []
    assert problems({"DomainName": "new.example.com"}, kept, "us-east-1", "aws", creating=False) == []
    # Clearing both (the documented way to remove the domain) and the domain alone are fine.
    assert problems({"DomainName": "", "CertificateArn": ""}, kept, "us-east-1", "aws", creating=False) == []
    assert problems({"DomainName": ""}, kept, "us-east-1", "aws", creating=False) == []
    cleared = problems({"CertificateArn": ""}, kept, "us-east-1", "aws", creating=False)
    assert len(cleared) == 1 and "needs its certificate" in cleared[0]
    elsewhere = problems({}, kept, "eu-west-1", "aws", creating=False)
    assert len(elsewhere) == 1 and "certificate in us-east-1, the stack is in eu-west-1" in elsewhere[0]
    assert "not an ACM certificate" in problems({"CertificateArn": "cert-123"}, kept, "us-east-1", "aws", False)[0]
    assert "first deploy needs the mail sender" in problems({}, {}, "us-east-1", "aws", creating=True)[0]


def test_every_allowed_value_of_the_template_is_accepted():
    for parameter, declared in stack.PARAMETERS.items():
        for value in declared.get("AllowedValues", []):
            assert problems({parameter: str(value)}, {"MailFrom": MAIL_FROM}, "us-east-1", "aws", False) == []


def test_a_wrong_stage_name_is_a_usage_error_not_a_traceback(capsys):
    from infra import deploy, package, secrets
    commands = (package.main, secrets.main, lambda argv: deploy.main(["deploy", *argv]),
                lambda argv: deploy.main(["destroy", *argv]))
    for command in commands:
        with pytest.raises(SystemExit) as refused:
            command(["--stage=Prod"])
        assert refused.value.code == 2
        assert "lower-case letters" in capsys.readouterr().err


def test_a_local_stages_name_is_not_deployed(capsys):
    """make deploy STAGE=test (a natural first try) deployed functions that took themselves for
    the local server: agent sign-up open to anyone by default, a missing secret not refused
    (security finding 197). Refused before anything runs; a stage deployed so can be destroyed."""
    from infra import deploy, package, secrets
    for stage in ("test", "local"):
        for command in (package.main, secrets.main, lambda argv: deploy.main(["deploy", *argv])):
            with pytest.raises(SystemExit) as refused:
                command([f"--stage={stage}"])
            assert refused.value.code == 2
            assert "STAGE=staging" in capsys.readouterr().err
        assert stack.destroyed_stage_argument(stage) == stage
    assert stack.check_stage("testing") == "testing"


def test_the_sender_is_an_ascii_address_alone():
    # A Unicode domain passed the template's pattern, and the functions' policy then named an SES
    # identity that does not exist (SES verifies the xn-- form): every mail refused.
    unicode_domain = problems({"MailFrom": "no-reply@bücher.de"}, {}, "us-east-1", "aws", creating=True)
    assert unicode_domain == ["MAIL_FROM='no-reply@bücher.de': SES sends from ASCII addresses only: write it "
                              "MAIL_FROM=no-reply@xn--bcher-kva.de"]
    named = problems({"MailFrom": "Spikes <no-reply@example.com>"}, {}, "us-east-1", "aws", creating=True)
    assert len(named) == 1 and "the name goes in MAIL_FROM_NAME" in named[0]
    assert problems({"MailFrom": "no-reply@example.com"}, {}, "us-east-1", "aws", creating=True) == []


def test_a_certificate_acm_has_not_issued_for_the_domain_is_refused_before_anything_exists(built):
    # API Gateway refuses a pending certificate, or one for other names, only when the stack
    # creates the domain: halfway through, a first creation rolled back.
    with mock_aws():
        acm = boto3.client("acm")
        pending = acm.request_certificate(DomainName="feedback.example.com", ValidationMethod="DNS")["CertificateArn"]
        with pytest.raises(SystemExit, match="PENDING_VALIDATION in ACM, not ISSUED"):
            deploy(domain_name="feedback.example.com", certificate_arn=pending)
        with pytest.raises(SystemExit, match="is not in ACM in us-east-1"):
            deploy(domain_name="feedback.example.com", certificate_arn=CERTIFICATE)
        with pytest.raises(ClientError):
            boto3.client("cloudformation").describe_stacks(StackName=f"spikes-{STAGE}")
        assert boto3.client("ssm").describe_parameters()["Parameters"] == []
    from infra.options import issued_certificate_problems
    issued = {"Status": "ISSUED", "DomainName": "example.com", "SubjectAlternativeNames": ["example.com", "*.example.com"]}
    assert issued_certificate_problems(issued, "feedback.example.com") == []
    assert "not a.b.example.com" in issued_certificate_problems(issued, "a.b.example.com")[0]
