"""Outgoing mail: SES in AWS, the console in the local stage."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Optional

from chalicelib.errors import DependencyUnavailable
from chalicelib.logs import get_logger, mask_email

log = get_logger("spikes.mail")


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str


class ConsoleMailer:
    """Prints the whole message: the local stage's way of delivering magic links."""

    def send(self, mail: Mail) -> None:
        bar = "=" * 72
        print(f"\n{bar}\nMAIL to {mail.to}\nSubject: {mail.subject}\n\n{mail.text}\n{bar}\n", file=sys.stdout, flush=True)
        log.info("mail.printed", to=mask_email(mail.to), subject=mail.subject)


class SesMailer:
    def __init__(self, client: Any, sender: str, configuration_set: Optional[str] = None):
        self._client = client
        self._sender = sender
        self._tracking = {"ConfigurationSetName": configuration_set} if configuration_set else {}

    def send(self, mail: Mail) -> None:
        from botocore.exceptions import BotoCoreError, ClientError
        try:
            self._client.send_email(
                Source=self._sender,
                Destination={"ToAddresses": [mail.to]},
                Message={"Subject": {"Data": mail.subject, "Charset": "UTF-8"},
                         "Body": {"Text": {"Data": mail.text, "Charset": "UTF-8"}}},
                **self._tracking,
            )
        except (BotoCoreError, ClientError) as exc:
            log.error("mail.failed", to=mask_email(mail.to), error=type(exc).__name__)
            raise DependencyUnavailable("Could not send e-mail; retry shortly") from exc
        log.info("mail.sent", to=mask_email(mail.to), subject=mail.subject)
