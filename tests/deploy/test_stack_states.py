"""A deploy after one that did not end well: the stack is left in a state CloudFormation takes no
update in (an operation still running after Ctrl-C, an update whose rollback failed, a deletion
that failed). moto never reaches those states: a thin wrapper of its client reports them and
refuses updates in them as CloudFormation does."""
from __future__ import annotations

import io
from typing import Any, List, Optional

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from infra.deploy import Deployer, stack_name
from tests.deploy.conftest import BUILD_ROOT, MAIL_FROM, STAGE, deploy_stack

pytestmark = pytest.mark.usefixtures("clean_spikes_env")
UPDATABLE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"}


class StackInState:
    """moto's CloudFormation client, with the stage's stack reported in ``status`` for the next
    ``describes`` reads (then as moto has it), as an operation running or failed in AWS would."""

    def __init__(self, real: Any, status: str, describes: int = 1_000):
        self.real, self.status, self.describes = real, status, describes
        self.calls: List[str] = []

    def current(self) -> Optional[str]:
        return self.status if self.describes > 0 else None

    def describe_stacks(self, **kwargs: Any) -> dict:
        answer = self.real.describe_stacks(**kwargs)
        if self.current():
            answer["Stacks"][0]["StackStatus"] = self.status
            self.describes -= 1
        return answer

    def update_stack(self, **kwargs: Any) -> dict:
        if self.current() and self.status not in UPDATABLE:
            raise ClientError({"Error": {"Code": "ValidationError", "Message": (
                f"Stack:{kwargs['StackName']} is in {self.status} state and can not be updated.")}}, "UpdateStack")
        self.calls.append("update_stack")
        self.describes = 0
        return self.real.update_stack(**kwargs)

    def continue_update_rollback(self, **kwargs: Any) -> dict:
        self.calls.append("continue_update_rollback")
        self.status = "UPDATE_ROLLBACK_COMPLETE"
        return {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def deploy_over(status: str, describes: int = 1_000) -> tuple[StackInState, str]:
    out = io.StringIO()
    deployer = Deployer(out=out)
    deployer.poll_seconds = 0
    deployer.cfn = StackInState(deployer.cfn, status, describes)
    deployer.deploy(STAGE, BUILD_ROOT, {"mail_from": MAIL_FROM, "mail_from_name": f"After {status}"})
    return deployer.cfn, out.getvalue()


def parameter(name: str) -> str:
    described = boto3.client("cloudformation").describe_stacks(StackName=stack_name(STAGE))["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]}[name]


def test_a_deploy_after_an_interrupted_or_failed_one_updates_the_stack(built):
    with mock_aws():
        deploy_stack(built)
        # Ctrl-C during a deploy: the update goes on in AWS; the next deploy waits for it.
        cfn, log = deploy_over("UPDATE_IN_PROGRESS", describes=2)
        assert "UPDATE_IN_PROGRESS (an earlier deploy or destroy is still running in AWS); waiting" in log
        assert parameter("MailFromName") == "After UPDATE_IN_PROGRESS"
        # An update whose rollback failed takes no update until the rollback is finished.
        cfn, log = deploy_over("UPDATE_ROLLBACK_FAILED")
        assert cfn.calls == ["continue_update_rollback", "update_stack"]
        assert "finishing the rollback" in log
        assert parameter("MailFromName") == "After UPDATE_ROLLBACK_FAILED"


def test_a_deploy_over_a_failed_deletion_says_what_to_do(built):
    with mock_aws():
        deploy_stack(built)
        with pytest.raises(SystemExit, match=f"make destroy STAGE={STAGE}` again"):
            deploy_over("DELETE_FAILED")


class StackWithRetiredParameter:
    """moto's client, with the stack deployed by an earlier version holding a parameter this
    version's template no longer declares; an update naming it is refused as CloudFormation does."""

    def __init__(self, real: Any, declared: set):
        self.real, self.declared = real, declared

    def describe_stacks(self, **kwargs: Any) -> dict:
        answer = self.real.describe_stacks(**kwargs)
        answer["Stacks"][0]["Parameters"].append({"ParameterKey": "RetiredOption", "ParameterValue": "kept"})
        return answer

    def update_stack(self, **kwargs: Any) -> dict:
        unknown = [p["ParameterKey"] for p in kwargs["Parameters"] if p["ParameterKey"] not in self.declared]
        if unknown:
            raise ClientError({"Error": {"Code": "ValidationError", "Message": (
                f"Parameters: {unknown} do not exist in the template")}}, "UpdateStack")
        return self.real.update_stack(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_an_upgrade_whose_template_dropped_a_parameter_updates_the_stack(built):
    with mock_aws():
        deploy_stack(built)
        deployer = Deployer(out=io.StringIO())
        deployer.cfn = StackWithRetiredParameter(deployer.cfn, set(built["template"]["Parameters"]))
        deployer.deploy(STAGE, BUILD_ROOT, {"mail_from_name": "After an upgrade"})
        assert parameter("MailFromName") == "After an upgrade"
