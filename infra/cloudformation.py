"""The stage's stack as CloudFormation runs it: its state, waited for and brought back from what a
failed deploy or destroy left, and its creation, update and deletion (``make deploy``/``make destroy``,
infra/deploy.py)."""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Set

CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
POLL_SECONDS = 5
WAIT_ATTEMPTS = 360  # half an hour at POLL_SECONDS: the longest a stack operation is waited for
# A stack in one of these holds nothing to update: it is created again (after a look at what it holds).
CREATED_AGAIN = ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "REVIEW_IN_PROGRESS", "IMPORT_ROLLBACK_COMPLETE")


def stack_name(stage: str) -> str:
    return f"spikes-{stage}"


class StackOperations:
    """The stack operations of infra.deploy.Deployer, which holds the clients."""
    cfn: Any
    poll_seconds: float
    say: Callable[[str], None]

    def describe(self, stage: str) -> Optional[Dict[str, Any]]:
        from botocore.exceptions import ClientError
        try:
            stacks = self.cfn.describe_stacks(StackName=stack_name(stage))["Stacks"]
        except ClientError as exc:
            if "does not exist" in str(exc):
                return None
            raise
        return stacks[0] if stacks and stacks[0]["StackStatus"] != "DELETE_COMPLETE" else None

    def wait_while_in_progress(self, stage: str) -> Optional[Dict[str, Any]]:
        """The stack once no operation runs on it (an earlier deploy interrupted by Ctrl-C goes
        on in AWS), bounded as the deploy's own waits are; None once it is gone."""
        described = self.describe(stage)
        for _ in range(WAIT_ATTEMPTS):
            # REVIEW_IN_PROGRESS is a change set never executed: nothing runs, nothing will.
            if not described or not described["StackStatus"].endswith("_IN_PROGRESS") \
                    or described["StackStatus"] == "REVIEW_IN_PROGRESS":
                return described
            self.say(f"Stack {stack_name(stage)} is {described['StackStatus']} (an earlier deploy or destroy is "
                     "still running in AWS); waiting for it to finish ...")
            time.sleep(self.poll_seconds)
            described = self.describe(stage)
        raise SystemExit(f"Stack {stack_name(stage)} is still {described['StackStatus']}: try again later.")

    def settled(self, stage: str) -> Optional[Dict[str, Any]]:
        """The stack in a state an update starts from, or None when a creation is needed. The
        states a failed deploy or destroy leaves refuse updates: each is brought back, or the
        operator is told what to do, rather than failing every later deploy with AWS's error."""
        name = stack_name(stage)
        existing = self.wait_while_in_progress(stage)
        status = existing["StackStatus"] if existing else None
        if status in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED"):
            # A first creation that failed: nothing to update; its retained tables and bucket
            # are checked as leftovers before the new creation.
            self.say(f"Stack {name} failed its first creation ({status}); deleting it before trying again.")
            self.delete_stack(stage)
            return None
        if status in ("REVIEW_IN_PROGRESS", "IMPORT_ROLLBACK_COMPLETE") and not self.holds_resources(name):
            # An import of kept data (IMPORT_DATA=yes) that did not finish: the stack holds
            # nothing (the tables and the bucket are retained); it is created again.
            self.say(f"Stack {name} holds nothing ({status}: an import that did not finish); deleting it before "
                     "trying again.")
            self.delete_stack(stage)
            return None
        if status == "UPDATE_ROLLBACK_FAILED":
            # An update failed and so did its rollback: the stack takes no update until the
            # rollback is finished.
            self.say(f"Stack {name} is {status}: an earlier update failed and so did its rollback; finishing the "
                     "rollback ...")
            self.cfn.continue_update_rollback(StackName=name)
            existing = self.wait_while_in_progress(stage)
            if not existing or existing["StackStatus"] != "UPDATE_ROLLBACK_COMPLETE":
                self.say(self._failure_events(name))
                raise SystemExit(
                    f"Stack {name} could not finish its rollback ({existing and existing['StackStatus']}). Fix or "
                    "delete the failed resources listed above, or continue the rollback skipping them (CloudFormation "
                    "console: Stack actions, Continue update rollback), then deploy again (docs/deploy.md, "
                    "'Upgrading').")
            return existing
        if status == "DELETE_FAILED":
            self.say(self._failure_events(name))
            raise SystemExit(f"Stack {name} is {status}: an earlier `make destroy` did not finish. Run "
                             f"`make destroy STAGE={stage}` again (it retries the deletion), then deploy.")
        return existing

    def holds_resources(self, name: str) -> bool:
        return bool(self.cfn.list_stack_resources(StackName=name)["StackResourceSummaries"])

    def delete_stack(self, stage: str) -> None:
        from botocore.exceptions import WaiterError
        name = stack_name(stage)
        self.cfn.delete_stack(StackName=name)
        try:
            self.cfn.get_waiter("stack_delete_complete").wait(
                StackName=name, WaiterConfig={"Delay": self.poll_seconds, "MaxAttempts": WAIT_ATTEMPTS})
        except WaiterError as exc:
            self.say(self._failure_events(name))
            raise SystemExit(f"Stack {name} was not deleted: {exc}. Fix or delete the failed resources listed "
                             f"above, then `make destroy STAGE={stage}` again.") from exc

    @staticmethod
    def outputs(described: Dict[str, Any]) -> Dict[str, str]:
        return {item["OutputKey"]: item["OutputValue"] for item in described.get("Outputs", [])}

    @staticmethod
    def _parameters(values: Dict[str, Optional[str]], previous: Dict[str, str],
                    declared: Set[str]) -> List[Dict[str, Any]]:
        """Given values, else the stack's current ones (explicitly: a template may add parameters),
        of those the template declares: CloudFormation refuses an update naming one a newer
        version of the template dropped."""
        merged = {**previous, **{key: value for key, value in values.items() if value is not None}}
        return [{"ParameterKey": key, "ParameterValue": value} for key, value in sorted(merged.items())
                if key in declared]

    def _create_or_update(self, stage: str, template_url: str, parameters: List[dict], update: bool) -> None:
        from botocore.exceptions import ClientError
        name = stack_name(stage)
        common = dict(StackName=name, TemplateURL=template_url, Parameters=parameters, Capabilities=CAPABILITIES,
                      Tags=[{"Key": "spikes:stage", "Value": stage}])
        if update:
            try:
                self.cfn.update_stack(**common)
            except ClientError as exc:
                if "No updates are to be performed" in str(exc):
                    self.say(f"Stack {name} is already up to date.")
                    return
                raise
            self.say(f"Updating stack {name} ...")
            waiter = "stack_update_complete"
        else:
            self.cfn.create_stack(**common, OnFailure="ROLLBACK", EnableTerminationProtection=False)
            self.say(f"Creating stack {name} ...")
            waiter = "stack_create_complete"
        from botocore.exceptions import WaiterError
        try:
            self.cfn.get_waiter(waiter).wait(StackName=name, WaiterConfig={"Delay": self.poll_seconds,
                                                                           "MaxAttempts": WAIT_ATTEMPTS})
        except WaiterError as exc:
            self.say(self._failure_events(name))
            raise SystemExit(f"Stack {name} did not finish: {exc}") from exc

    def _failure_events(self, name: str) -> str:
        events = self.cfn.describe_stack_events(StackName=name)["StackEvents"][:30]
        failed = [f"  {e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}" for e in events
                  if e["ResourceStatus"].endswith("FAILED")]
        return "Failed resources:\n" + "\n".join(failed) if failed else "No failed resource reported."
