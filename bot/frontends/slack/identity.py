"""Who is acting: the user ID of the signed payload, plus what Slack says about that account.

The ID comes only from the signed payload (command `user_id`, interaction `user.id`), never from button
values or text. Slack adds: user-group membership (only for groups the policy lists, resolved when the
user acts, cached about a minute because usergroups.* are Tier 2), and whether the account is a bot or
deactivated (users.info, cached a few minutes). Anything Slack cannot confirm is refused (fail closed).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.core.errors import ModelbotError
from bot.core.policy import Identity
from bot.texts import slack as texts

log = logging.getLogger(__name__)
GROUPS_TTL_S = 60.0
USERS_TTL_S = 300.0
FAILURE_TTL_S = 5.0  # after a failed lookup, ask Slack again this soon (not a whole TTL later)


class UserRefused(ModelbotError):
    """The account may not act (deactivated) or Slack could not confirm who it is."""


@dataclass(frozen=True)
class Account:
    is_bot: bool
    deleted: bool


class Directory:
    """Identity of a Slack user at decision time; thread-safe."""

    def __init__(
        self,
        client: WebClient,
        policy_groups: Collection[str],
        *,
        groups_ttl_s: float = GROUPS_TTL_S,
        users_ttl_s: float = USERS_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._policy_groups = frozenset(policy_groups)
        self._groups_ttl_s = groups_ttl_s
        self._users_ttl_s = users_ttl_s
        self._clock = clock
        self._lock = threading.Lock()  # guards the account cache
        self._groups_lock = threading.Lock()  # one group refresh at a time; others wait for its result
        self._groups: tuple[float, Mapping[str, frozenset[str]]] = (float("-inf"), {})
        self._accounts: dict[str, tuple[float, Account]] = {}

    def identity(self, user_id: str) -> Identity:
        """The Identity the policy judges; raises UserRefused for deactivated or unverifiable accounts."""
        account = self.account(user_id)
        if account.deleted:
            raise UserRefused(texts.SLACK_DEACTIVATED)
        groups = frozenset(g for g, users in self.memberships().items() if user_id in users)
        return Identity(user_id, groups, is_bot=account.is_bot)

    def account(self, user_id: str) -> Account:
        now = self._clock()
        with self._lock:
            cached = self._accounts.get(user_id)
            if cached and cached[0] > now:
                return cached[1]
        try:
            user = self._client.users_info(user=user_id)["user"]
        except (SlackClientError, OSError, KeyError, TypeError) as exc:
            log.warning("users.info failed for %s: %s", user_id, _reason(exc))
            raise UserRefused(texts.SLACK_CANNOT_VERIFY_USER) from None
        account = Account(is_bot=bool(user.get("is_bot")), deleted=bool(user.get("deleted")))
        with self._lock:
            self._accounts[user_id] = (now + self._users_ttl_s, account)
        return account

    def memberships(self) -> Mapping[str, frozenset[str]]:
        """Members of each user group the policy lists (refreshed at most every TTL)."""
        if not self._policy_groups:
            return {}
        with self._groups_lock:
            until, groups = self._groups
            if until > self._clock():
                return groups
            try:
                groups = self._fetch_groups()
                self._groups = (self._clock() + self._groups_ttl_s, groups)
            except (SlackClientError, OSError, KeyError, TypeError) as exc:
                log.warning("user-group lookup failed, group roles are not granted for now: %s", _reason(exc))
                groups = {}  # fail closed: nobody gets a role through a group we could not read
                self._groups = (self._clock() + FAILURE_TTL_S, groups)
            return groups

    def _fetch_groups(self) -> dict[str, frozenset[str]]:
        existing = {g["id"] for g in self._client.usergroups_list()["usergroups"]}
        missing = sorted(self._policy_groups - existing)
        if missing:
            log.warning("user groups in the policy that Slack does not know (or are disabled): %s", ", ".join(missing))
        return {
            group: frozenset(self._client.usergroups_users_list(usergroup=group)["users"])
            for group in sorted(self._policy_groups & existing)
        }


def policy_groups(members: Collection[str]) -> frozenset[str]:
    """The user-group IDs (S...) among the policy's member entries."""
    return frozenset(m for m in members if m.startswith("S"))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error", "error"))
    return type(exc).__name__
