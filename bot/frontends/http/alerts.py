"""POST /alerts authentication: a bearer token (MODELBOT_ALERT_TOKEN) compared in constant time.

Without a configured token every call is refused. What an alert does is bot.usecases.alerts (Service.alert).
"""

from __future__ import annotations

import hmac

from bot.usecases.alerts import AlertsOutcome, BadAlert

__all__ = ["AlertsOutcome", "BadAlert", "authorized"]


def authorized(header: str, token: str) -> bool:
    """True when `header` is exactly `Bearer <token>`; constant time, and False when no token is configured."""
    if not token:
        return False
    return hmac.compare_digest(header.encode(), f"Bearer {token}".encode())
