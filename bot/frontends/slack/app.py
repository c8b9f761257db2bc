"""Builds the slack_bolt App: Slack settings from the environment, the Web API client, the listeners.

Listeners run with `process_before_response=True`: a listener only acks (and opens a modal when a
trigger_id must be used at once) and hands the work to the bounded worker pool, so the HTTP answer goes
out as soon as the listener returns, without bolt's 10 ms ack polling and never behind a slow rollout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from slack_bolt import App
from slack_bolt.error import BoltError
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError
from slack_sdk.http_retry import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

from bot.core.errors import ConfigError, ModelbotError
from bot.frontends.http.metrics import Metrics
from bot.frontends.slack import buttons
from bot.frontends.slack import commands as slash_commands
from bot.frontends.slack.alert_actions import register as register_alert_actions
from bot.frontends.slack.channels import register as register_channels
from bot.frontends.slack.guard import bolt_logger
from bot.frontends.slack.home import register as register_home
from bot.frontends.slack.identity import Directory, policy_groups
from bot.frontends.slack.notices import Notices
from bot.frontends.slack.ratelimit import RateGate
from bot.frontends.slack.runtime import SlackRuntime
from bot.frontends.slack.workers import Workers
from bot.service import Service

DEFAULT_API_URL = "https://slack.com/api/"
ENVIRONMENT = "environment"
PROGRESS_TIMEOUT_S = 5


@dataclass(frozen=True)
class SlackEnv:
    """Slack settings; secrets only ever come from the environment."""

    bot_token: str
    signing_secret: str
    app_token: str
    api_url: str = DEFAULT_API_URL

    @property
    def socket_mode(self) -> bool:
        return bool(self.app_token)


def slack_env(environ: Mapping[str, str]) -> SlackEnv:
    """Read and check the Slack variables; ConfigError lists every problem (never a secret's value)."""
    env = SlackEnv(
        bot_token=environ.get("SLACK_BOT_TOKEN", "").strip(),
        signing_secret=environ.get("SLACK_SIGNING_SECRET", "").strip(),
        app_token=environ.get("SLACK_APP_TOKEN", "").strip(),
        api_url=environ.get("SLACK_API_URL", "").strip() or DEFAULT_API_URL,
    )
    problems = []
    if not env.bot_token:
        problems.append("SLACK_BOT_TOKEN is not set (the bot token, xoxb-...)")
    if env.app_token and not env.app_token.startswith("xapp-"):
        problems.append("SLACK_APP_TOKEN must be an app-level token (xapp-...) for Socket Mode")
    if not env.socket_mode and not env.signing_secret:
        problems.append(
            "SLACK_SIGNING_SECRET is not set: in HTTP mode the bot cannot verify that requests come from Slack"
            " (set it, or set SLACK_APP_TOKEN to use Socket Mode)"
        )
    if problems:
        raise ConfigError(ENVIRONMENT, problems)
    return env


def web_client(env: SlackEnv, *, retries: bool = True, timeout: int = 30) -> WebClient:
    """A Web API client; `retries` adds one connection retry and two 429 retries honouring Retry-After."""
    handlers = [ConnectionErrorRetryHandler(), RateLimitErrorRetryHandler(max_retry_count=2)] if retries else []
    return WebClient(token=env.bot_token, base_url=env.api_url, timeout=timeout, retry_handlers=handlers)


@dataclass
class SlackFrontend:
    app: App
    workers: Workers
    directory: Directory

    def drain(self, timeout_s: float) -> bool:
        """Stop taking work and wait for running work (rollouts) to finish; True if everything finished."""
        return self.workers.drain(timeout_s)


def build_app(
    service: Service,
    env: SlackEnv,
    *,
    client: WebClient | None = None,
    metrics: Metrics | None = None,
    wake_outbox: Callable[[], None] = lambda: None,
    token_verification_enabled: bool = True,
    workers: Workers | None = None,
    rate_gate: RateGate | None = None,
    notices: Notices | None = None,
) -> SlackFrontend:
    """The bolt App with the `/model` command, the card buttons and the reason modals registered.

    `token_verification_enabled` calls auth.test now (tests point SLACK_API_URL at a fake first).
    `rate_gate`: the process's Slack rate-limit gate, shared by live progress and the outbox (one of its own
    when not given). `notices`: where commands leave their response_url for the outbox (routing.py).
    """
    client = client or web_client(env)
    try:
        app = App(
            client=client,
            signing_secret=env.signing_secret,
            token_verification_enabled=token_verification_enabled,
            process_before_response=True,
            logger=bolt_logger(),  # bolt logs request bodies below WARNING; this logger drops those lines
        )
    except (BoltError, SlackClientError, OSError) as exc:  # auth.test failed: bad token, or Slack unreachable
        raise ModelbotError(f"Slack did not accept SLACK_BOT_TOKEN at {env.api_url} (auth.test): {exc}") from None
    directory = Directory(client, policy_groups(service.policy_members()))
    runtime = SlackRuntime(
        service=service,
        directory=directory,
        workers=workers or Workers(),
        progress_client=web_client(env, retries=False, timeout=PROGRESS_TIMEOUT_S),
        metrics=metrics or Metrics(),
        wake_outbox=wake_outbox,
        rate_gate=rate_gate or RateGate(),
        notices=notices or Notices(),
    )
    slash_commands.register(app, runtime)
    buttons.register(app, runtime)
    register_alert_actions(app, runtime)
    register_home(app, runtime)  # the App Home tab (app_home_opened)
    register_channels(app, runtime)  # the bot added to a channel (member_joined_channel): undelivered cards
    return SlackFrontend(app=app, workers=runtime.workers, directory=directory)
