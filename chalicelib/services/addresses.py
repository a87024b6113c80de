"""What an e-mail address is to us: the form we store, the inbox it reaches and the form SES
takes. Sign-in, the mail budget, the mailer and billing each need one of these; one module keeps
them from drifting apart."""
from __future__ import annotations

from typing import Optional

# Gmail ignores dots in the name and serves both domains to the same inbox.
DOTLESS_DOMAINS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


def normalize_email(email: str) -> str:
    """The stored form: an account's identity (its id is derived from it)."""
    return email.strip().lower()


def mailbox(address: str) -> str:
    """The inbox a (normalised) ``address`` reaches: its ``+tag`` dropped, Gmail's dots too."""
    local, _, domain = address.rpartition("@")
    base = local.split("+", 1)[0] or local
    if domain in DOTLESS_DOMAINS:
        base, domain = base.replace(".", "") or base, DOTLESS_DOMAINS[domain]
    return f"{base}@{domain}"


def ascii_address(address: str) -> Optional[str]:
    """``address`` in ASCII, as SES takes it (it has no SMTPUTF8): an internationalised domain,
    which validation writes in Unicode (``bücher.de``), in IDNA's ``xn--`` form; None when the
    name before the @ is not ASCII (nothing can carry it then)."""
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        return None
    if domain.isascii():
        return address
    import idna  # email-validator's own IDNA 2008 codec; only an internationalised domain needs it
    try:
        return f"{local}@{idna.encode(domain).decode('ascii')}"
    except idna.IDNAError:
        return None


def sender_header(sender: str) -> str:
    """The ``Name <address>`` a stage is deployed with (infra/stack.py joins the two options) as
    SES takes it: a name with a comma, quote or other special quoted, one outside ASCII encoded
    (RFC 2047). Written as it came, such a name made SES refuse every mail."""
    from email.utils import formataddr, unquote
    if not sender.endswith(">") or " <" not in sender:
        return sender
    name, address = sender[:-1].rsplit(" <", 1)  # the address has no space: the last " <" starts it
    name = name.strip()
    if len(name) > 1 and name.startswith('"') and name.endswith('"'):
        name = unquote(name)  # quoted by the operator already: not quoted twice
    return formataddr((name, ascii_address(address) or address), charset="utf-8")
