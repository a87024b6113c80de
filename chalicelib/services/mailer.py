"""Outgoing mail: SES in AWS, the console in the local stage."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Optional

from chalicelib.errors import DependencyUnavailable, ServerMisconfigured, ValidationFailed
from chalicelib.logs import get_logger, mask_email
from chalicelib.services.addresses import ascii_address, sender_header

log = get_logger("spikes.mail")

SES_CANNOT_DELIVER = ("This server mails through Amazon SES, which cannot deliver to an address with letters "
                      "outside ASCII before the @: use another address")


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str


class ConsoleMailer:
    """Prints the whole message: the local stage's way of delivering magic links."""

    def refuse_undeliverable(self, address: str) -> None:
        """Any address prints."""

    def send(self, mail: Mail) -> None:
        bar = "=" * 72
        print(f"\n{bar}\nMAIL to {mail.to}\nSubject: {mail.subject}\n\n{mail.text}\n{bar}\n", file=sys.stdout, flush=True)
        log.info("mail.printed", to=mask_email(mail.to), subject=mail.subject)


class UnconfiguredMailer:
    """A deployed stage left on the console mailer (no ``SPIKES_MAIL_MODE=ses``): printing would
    put every sign-in link in the stage's logs, a session for anyone to whoever reads them, and
    mail nobody. Refuses instead (docs/security.md, 182)."""

    def refuse_undeliverable(self, address: str) -> None:
        self._refuse()

    def send(self, mail: Mail) -> None:
        self._refuse()

    @staticmethod
    def _refuse() -> None:
        log.error("mail.unconfigured", fix="set SPIKES_MAIL_MODE=ses (infra/stack.py does)")
        raise ServerMisconfigured("This server has no mail service configured (SPIKES_MAIL_MODE=ses)")


class SesMailer:
    def __init__(self, client: Any, sender: str, configuration_set: Optional[str] = None):
        self._client = client
        self._sender = sender_header(sender)
        self._tracking = {"ConfigurationSetName": configuration_set} if configuration_set else {}

    def refuse_undeliverable(self, address: str) -> None:
        """400 for an address SES cannot deliver to: before anything is counted or stored for
        it, since SES would refuse it on every retry (a 503 "retry shortly" for good)."""
        if ascii_address(address) is None:
            # The message at the top as well: the CLI prints a 4xx answer's `error` only.
            raise ValidationFailed(SES_CANNOT_DELIVER, details=ValidationFailed.field("email", SES_CANNOT_DELIVER).details)

    def send(self, mail: Mail) -> None:
        from botocore.exceptions import BotoCoreError, ClientError
        to = ascii_address(mail.to)
        if to is None:  # an owner's address from before sign-ins refused it: nothing can reach it
            log.error("mail.undeliverable", to=mask_email(mail.to))
            return
        try:
            self._client.send_email(
                Source=self._sender,
                Destination={"ToAddresses": [to]},
                Message={"Subject": {"Data": mail.subject, "Charset": "UTF-8"},
                         "Body": {"Text": {"Data": mail.text, "Charset": "UTF-8"}}},
                **self._tracking,
            )
        except (BotoCoreError, ClientError) as exc:
            log.error("mail.failed", to=mask_email(mail.to), error=type(exc).__name__)
            raise DependencyUnavailable("Could not send e-mail; retry shortly") from exc
        log.info("mail.sent", to=mask_email(mail.to), subject=mail.subject)
