"""The alert webhooks: `POST /alerts` (Alertmanager, a bearer token MODELBOT_ALERT_TOKEN compared in constant time)
and `POST /pagerduty` (PagerDuty V3, `X-PagerDuty-Signature: v1=<hex HMAC-SHA256 of the raw body>`, possibly
several comma-separated during a secret rotation, with MODELBOT_PAGERDUTY_SECRET). Authentication comes before
parsing, and nothing is recorded for a request that fails it. What an alert does is bot.usecases.alerts.

Without MODELBOT_ALERT_TOKEN every /alerts call is refused (401). Without MODELBOT_PAGERDUTY_SECRET /pagerduty
answers 404: the source is switched off, as if the route did not exist. Not 503, which PagerDuty retries (for
hours) and Alertmanager-style clients take for a passing outage: no retry can succeed until an operator sets
the secret, and PagerDuty disables a subscription that keeps failing, which is right for a disabled source.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable

from bot.frontends.http.metrics import Metrics
from bot.frontends.http.router import Environ, Response, read_body
from bot.logging_setup import bound_context, new_correlation_id
from bot.service import Service
from bot.texts import alerts as texts
from bot.texts.slack import SLACK_UNAUTHORIZED
from bot.usecases.alerts import AlertsOutcome, BadAlert

__all__ = ["AlertEndpoints", "AlertsOutcome", "BadAlert", "authorized", "pagerduty_signed"]

log = logging.getLogger(__name__)
PAGERDUTY_SECRET_ENV = "MODELBOT_PAGERDUTY_SECRET"  # noqa: S105 - the variable's name, not a secret
PAGERDUTY_MAX_BODY = 256 * 1024  # PagerDuty drops bodies above 256 KB: anything larger is not from it
MAX_SIGNATURES = 8  # a rotation shows two or three; more is not PagerDuty


def authorized(header: str, token: str) -> bool:
    """True when `header` is exactly `Bearer <token>`; constant time, and False when no token is configured."""
    if not token:
        return False
    return hmac.compare_digest(header.encode(), f"Bearer {token}".encode())


def pagerduty_signed(header: str, body: bytes, secret: str) -> bool:
    """True when one of the header's `v1=` signatures is the HMAC-SHA256 of `body` with `secret` (each compared
    in constant time); False without a secret."""
    if not secret:
        return False
    expected = ("v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()).encode()
    found = False
    for candidate in header.split(",")[:MAX_SIGNATURES]:
        found |= hmac.compare_digest(candidate.strip().encode(), expected)
    return found


class AlertEndpoints:
    """The two webhook routes; `wake` tells the outbox something was queued."""

    def __init__(
        self, service: Service, metrics: Metrics, wake: Callable[[], None], *, token: str, pagerduty_secret: str
    ) -> None:
        self._service, self._metrics, self._wake = service, metrics, wake
        self._token, self._pagerduty_secret = token, pagerduty_secret

    def alertmanager(self, environ: Environ) -> Response:
        if not authorized(str(environ.get("HTTP_AUTHORIZATION", "")), self._token):
            self._metrics.alert("unauthorized")
            return Response.text(401, SLACK_UNAUTHORIZED)
        body = read_body(environ)
        if body is None:
            self._metrics.alert("too_large")
            return Response.text(413, "body too large")
        return self._take(self._service.alert, body, 200)

    def pagerduty(self, environ: Environ) -> Response:
        if not self._pagerduty_secret:
            return Response.text(404, texts.PAGERDUTY_NOT_CONFIGURED)
        body = read_body(environ, PAGERDUTY_MAX_BODY)
        if body is None:
            self._metrics.alert("too_large")
            return Response.text(413, "body too large")
        signature = str(environ.get("HTTP_X_PAGERDUTY_SIGNATURE", ""))
        if not pagerduty_signed(signature, body, self._pagerduty_secret):
            self._metrics.alert("unauthorized")
            return Response.text(401, texts.PAGERDUTY_UNSIGNED)
        return self._take(self._service.pagerduty, body, 202)  # PagerDuty's docs ask for 202 Accepted

    def _take(self, take: Callable[[bytes], AlertsOutcome], body: bytes, status: int) -> Response:
        try:
            with bound_context(correlation_id=new_correlation_id(), trigger="alert"):
                outcome = take(body)
        except BadAlert as exc:
            self._metrics.alert("malformed")
            return Response.text(400, str(exc))
        except Exception:
            self._metrics.alert("error")
            raise
        self._metrics.alert("accepted", queued=outcome.queued, ignored=outcome.ignored)
        self._wake()
        return Response.json(status, {"queued": outcome.queued, "ignored": outcome.ignored})
