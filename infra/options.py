"""The deploy options, checked before ``make deploy`` creates or changes anything.

CloudFormation checks a parameter's allowed values when the stack operation is asked for, after
the deploy has written the stage's secrets and uploaded its code, and a custom domain without its
certificate, a certificate from another region or an alarm address SNS refuses only when the
resource is created, halfway through the stack (a first creation then rolls back). Each is
refused here first, all at once, with what to set instead.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional

from infra import stack

# Parameter -> the make variable an operator sets (infra/deploy.OPTION_PARAMETERS, upper-cased).
VARIABLES = {"MailFrom": "MAIL_FROM", "MailFromName": "MAIL_FROM_NAME", "DomainName": "DOMAIN_NAME",
             "CertificateArn": "CERTIFICATE_ARN", "StripePriceId": "STRIPE_PRICE_ID",
             "StripeAgentSpikePriceId": "STRIPE_AGENT_SPIKE_PRICE_ID",
             "StripeAgentSharePriceId": "STRIPE_AGENT_SHARE_PRICE_ID", "AgentSignup": "AGENT_SIGNUP",
             "AlarmEmail": "ALARM_EMAIL", "LogRetentionDays": "LOG_RETENTION_DAYS", "PublicBaseUrl": "PUBLIC_BASE_URL"}
# A host name API Gateway takes as a regional custom domain (no scheme, path, port or wildcard).
HOST_NAME = re.compile(r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$")
CERTIFICATE = re.compile(r"^arn:(?P<partition>aws[a-z-]*):acm:(?P<region>[a-z0-9-]+):\d{12}:certificate/[A-Za-z0-9-]+$")
# SNS refuses an e-mail subscription to anything but an address with a dotted domain.
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
CERTIFICATE_EXAMPLE = "arn:aws:acm:{region}:<account>:certificate/<id>"


def problems(given: Dict[str, str], previous: Dict[str, str], region: str, partition: str,
             creating: bool) -> List[str]:
    """What is wrong with ``given`` (parameter -> value, empty = back to the default) over the
    stack's ``previous`` parameters, each with what to do; empty when the deploy may go on."""
    found = [problem for parameter, value in given.items()
             if (problem := mail_from_problem(value) if parameter == "MailFrom" else allowed(parameter, value))]
    merged = {**previous, **given}
    if creating and not merged.get("MailFrom"):
        found.append("The first deploy needs the mail sender: MAIL_FROM=no-reply@your-domain")
    domain, certificate = merged.get("DomainName", ""), merged.get("CertificateArn", "")
    example = CERTIFICATE_EXAMPLE.format(region=region)
    if domain and not HOST_NAME.match(domain):
        found.append(f"DOMAIN_NAME={domain!r} is not a host name: give the name alone, lower case, e.g. "
                     "DOMAIN_NAME=feedback.example.com (no https://, path, port or wildcard)")
    if domain and not certificate:
        found.append(f"DOMAIN_NAME={domain} needs its certificate: CERTIFICATE_ARN={example}, an ACM certificate "
                     f"in {region} covering {domain} (or DOMAIN_NAME= for no custom domain)")
    if domain and certificate:
        found.extend(certificate_problems(certificate, region, partition))
    alarm = merged.get("AlarmEmail", "")
    if alarm and not EMAIL.match(alarm):
        found.append(f"ALARM_EMAIL={alarm!r} is not an e-mail address SNS can subscribe (ALARM_EMAIL= for none)")
    return found


def allowed(parameter: str, value: str) -> Optional[str]:
    """The template's own rule for the parameter (its AllowedValues or AllowedPattern)."""
    declared = stack.PARAMETERS.get(parameter, {})
    variable = VARIABLES.get(parameter, parameter)
    values = [str(item) for item in declared.get("AllowedValues", [])]
    if values and value not in values:
        shown = ", ".join(repr(item) if not item else item for item in values)
        return f"{variable}={value!r} is not one of {shown}"
    pattern = declared.get("AllowedPattern")
    if pattern and not re.search(pattern, value):
        return f"{variable}={value!r} does not match {pattern}"
    return None


def issued_certificate_problems(certificate: Dict[str, Any], domain: str) -> List[str]:
    """What ACM says of the certificate (``DescribeCertificate``): API Gateway takes only an issued
    one covering the domain, and refuses any other when it creates the domain, in the stack."""
    status = certificate.get("Status", "")
    if status != "ISSUED":
        return [f"CERTIFICATE_ARN is {status} in ACM, not ISSUED: wait until ACM shows it Issued (with DNS "
                "validation, once its CNAME record is in your DNS), then deploy"]
    names = certificate.get("SubjectAlternativeNames") or [certificate.get("DomainName", "")]
    if not any(covers(name, domain) for name in names):
        return [f"CERTIFICATE_ARN covers {', '.join(names)}, not {domain}: use a certificate for {domain}"]
    return []


def covers(name: str, domain: str) -> bool:
    """A certificate name covers the domain itself, or as a wildcard one label of it."""
    name, domain = name.lower(), domain.lower()
    if name.startswith("*."):
        return domain.split(".", 1)[-1] == name[2:] and "." in domain
    return name == domain


def mail_from_problem(address: str) -> Optional[str]:
    """The sender as SES and the functions' policy (``ses:SendEmail`` on its identity) name it: an
    address alone, in ASCII. An internationalised domain is verified in SES in its xn-- form, so
    the policy written with the Unicode one would refuse every mail."""
    if "<" in address or " " in address.strip():
        return (f"MAIL_FROM={address!r}: give the address alone (MAIL_FROM=no-reply@example.com); the name "
                "goes in MAIL_FROM_NAME")
    if not address.isascii():
        from chalicelib.services.addresses import ascii_address
        ascii_form = ascii_address(address)
        return (f"MAIL_FROM={address!r}: SES sends from ASCII addresses only: "
                + (f"write it MAIL_FROM={ascii_form}" if ascii_form else "the part before the @ must be ASCII"))
    return allowed("MailFrom", address)


def certificate_problems(certificate: str, region: str, partition: str) -> List[str]:
    example = CERTIFICATE_EXAMPLE.format(region=region)
    shape = CERTIFICATE.match(certificate)
    if not shape:
        return [f"CERTIFICATE_ARN={certificate!r} is not an ACM certificate ARN ({example})"]
    if shape["partition"] != partition or shape["region"] != region:
        return [f"CERTIFICATE_ARN is a certificate in {shape['region']}, the stack is in {region}: a regional API "
                f"domain needs a certificate in the stack's own region (request or import it in ACM in {region})"]
    return []
