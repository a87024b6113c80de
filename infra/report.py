"""What the deploy prints once a stage is up: its addresses, and what is left to do by hand
(mail, Stripe, DNS)."""
from __future__ import annotations

from typing import Any, Callable, Dict, List

from infra import secrets
from infra.cloudformation import stack_name


class DeployReport:
    """The closing report of infra.deploy.Deployer, which holds the clients."""
    region: str
    ses: Any
    ssm: Any
    say: Callable[[str], None]

    def mail_status(self, mail_from: str) -> List[str]:
        """SES: is the sender (or its domain) verified, is the account still in the sandbox."""
        domain = mail_from.split("@", 1)[1]
        attributes = self.ses.get_identity_verification_attributes(Identities=[mail_from, domain])
        states = {name: value["VerificationStatus"] for name, value in attributes["VerificationAttributes"].items()}
        todo = []
        if "Success" not in states.values():
            if not states:
                self.ses.verify_email_identity(EmailAddress=mail_from)
                todo.append(f"SES: a verification mail was sent to {mail_from}; click its link (or verify the domain "
                            f"{domain} in the SES console, see docs/deploy.md). Until then no magic link is sent.")
            else:
                todo.append(f"SES: {mail_from} / {domain} is not verified yet ({', '.join(sorted(set(states.values())))}).")
        try:
            quota = self.ses.get_send_quota()
            if quota.get("Max24HourSend", 0) <= 200:
                todo.append("SES: the account is in the sandbox (mail only to verified addresses, 200 a day); "
                            "request production access (docs/deploy.md, 'Mail (SES)', step 2).")
        except Exception:  # noqa: BLE001 - informational only
            pass
        return todo

    def report(self, stage: str, outputs: Dict[str, str], described: Dict[str, Any]) -> None:
        parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in described["Parameters"]}
        url = outputs.get("PublicUrl") or outputs["ApiUrl"]
        todo = self.mail_status(parameters["MailFrom"])
        present = secrets.existing_parameters(self.ssm, stage)
        if "stripe_secret_key" not in present or not parameters.get("StripePriceId"):
            todo.append(f"Stripe: set the keys with `make secrets STAGE={stage}` and the price with "
                        f"`make deploy STAGE={stage} STRIPE_PRICE_ID=price_...` (billing answers 503 until then).")
        if outputs.get("CustomDomainTarget"):
            todo.append(f"DNS: point {parameters['DomainName']} (CNAME or alias) at {outputs['CustomDomainTarget']}.")
        self.say("")
        self.say(f"Stage {stage} is deployed (stack {stack_name(stage)}, region {self.region}).")
        self.say(f"  API URL:              {url}")
        self.say(f"  Stripe webhook URL:   {outputs['StripeWebhookUrl']}  (events: checkout.session.completed, "
                 "customer.subscription.*, invoice.payment_failed)")
        self.say(f"  Widget:               <script src=\"{outputs['WidgetScriptUrl']}\" data-project=\"my-project\" "
                 f"data-endpoint=\"{url}/spikes\"></script>")
        self.say(f"  CLI:                  export SPIKES_API_URL={url}")
        # Without agent signup (off in AWS unless enabled) the smoke needs someone's credential.
        credential = "" if parameters.get("AgentSignup") == "true" else \
            " TOKEN=<a bearer token from `spikes login`, or an API key>"
        self.say(f"  Check it:             make smoke URL={url}{credential}")
        if todo:
            self.say("Still to do by hand:")
            for item in todo:
                self.say(f"  - {item}")
        else:
            self.say("Nothing left to do by hand.")
