"""PagerDuty V3 signatures (bot/frontends/http/alerts.py): HMAC-SHA256 of the raw body, one of several may match."""

from __future__ import annotations

import hashlib
import hmac

from bot.frontends.http.alerts import pagerduty_signed

SECRET = "whsec"
BODY = b'{"event": {"event_type": "incident.triggered"}}'


def sign(body: bytes, secret: str = SECRET) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_the_raw_body_signature_is_accepted() -> None:
    """The exact v1= HMAC of the body passes; so does it among others during a secret rotation."""
    assert pagerduty_signed(sign(BODY), BODY, SECRET)
    assert pagerduty_signed(f"{sign(BODY, 'old')},{sign(BODY)}", BODY, SECRET)
    assert pagerduty_signed(f"v1=deadbeef, {sign(BODY)}", BODY, SECRET)


def test_forged_or_altered_is_refused() -> None:
    """Another secret, another body (one byte re-encoded), no scheme, an empty header, or no secret: refused."""
    assert not pagerduty_signed(sign(BODY, "guess"), BODY, SECRET)
    assert not pagerduty_signed(sign(BODY), BODY.replace(b" ", b""), SECRET)
    assert not pagerduty_signed(sign(BODY).removeprefix("v1="), BODY, SECRET)
    assert not pagerduty_signed("", BODY, SECRET)
    assert not pagerduty_signed(sign(BODY, ""), BODY, "")
