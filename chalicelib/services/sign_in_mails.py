"""The mails that sign a person in (services/accounts.py): a link that signs in whoever opens it,
or, for a sign-in another program asked for (the CLI's e-mail poll, a device), a link to a page
that shows what would be approved first: the code that program shows, when and from where it
asked, so that a person approves only a sign-in they started themselves."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

from chalicelib.services.mailer import Mail


@dataclass(frozen=True)
class SignInRequest:
    """What a person approves when a sign-in is handed to another program (the CLI's e-mail
    poll, a device): the code that program shows, when and from where it asked."""
    code: str
    requested_at: int
    requester_ip: str

    def when(self) -> str:
        return datetime.fromtimestamp(self.requested_at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def link_mail(base_url: str, ttl_seconds: int, email: str, token: str, subject: str, intro: str,
              request: Optional[SignInRequest] = None, approvable_for: Optional[int] = None) -> Mail:
    """The mail of a login ``token`` valid for ``ttl_seconds`` (``approvable_for``: a device's
    link approves only while the device code lives, often less than the link)."""
    link = f"{base_url}/auth/verify?token={token}"
    minutes = ttl_seconds // 60 if approvable_for is None else max(1, min(ttl_seconds, approvable_for + 30) // 60)
    if request is None:
        action = f"Open this link to sign in (valid for {minutes} minutes, once):\n{link}"
    else:
        action = (f"What you would approve:\n  code       {request.code}\n"
                  f"  requested  {request.when()}\n  from       {request.requester_ip}\n\n"
                  "Approve only if you started this sign-in yourself and the program or page that "
                  f"asked shows the same code. Open this link to review and approve it (valid for "
                  f"{minutes} minutes, once):\n{link}")
    text = (f"{intro}\n\n{action}\n\n"
            f"Or exchange the token for a session of your own (it signs in only you):\n"
            f"  curl -X POST {base_url}/auth/verify "
            f"-H 'Content-Type: application/json' -d '{{\"login_token\": \"{token}\"}}'\n\n"
            "If you did not ask for this, ignore this e-mail: nothing happens unless you approve.")
    return Mail(to=email, subject=subject, text=text)
