"""`modelbot check-config`: validate both YAML files (with --online, prove the whole set-up; or print the schema).

--online proves, from where the bot runs: TLS and GetModelStatus on every replica (bot/serving/tls_check.py says
what is wrong with TLS in terms of the setting that fixes it), every model's base_path with its versions, and,
when SLACK_BOT_TOKEN is set, the token, its scopes and the channels the bot posts to. One line per problem.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.config_schema import modelbot_json_schema
from bot.core.errors import ConfigError, ModelbotError, ServingError
from bot.core.ports import VersionCatalog
from bot.frontends.slack.app import DEFAULT_API_URL, SlackEnv, slack_env, web_client
from bot.policy_file import load_policy
from bot.serving import tls_check
from bot.serving.channel import ChannelPool
from bot.serving.discovery import LocalCatalog
from bot.serving.errors import describe
from bot.serving.smoke import request_problems
from bot.serving.targets import Targets
from bot.settings import DEFAULT_PERMISSIONS, ModelSettings, ServingSettings, Settings, load_settings
from bot.usecases.smoke import load_golden

T = TypeVar("T")

# Web API methods the Slack front end calls (bot/frontends/slack) and the bot-token scope each needs (slack.md §5);
# a test scans the front end so that a new call cannot be left out here.
SLACK_METHOD_SCOPES: dict[str, str | None] = {
    "auth.test": None,
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.postEphemeral": "chat:write",
    "views.open": None,
    "views.publish": None,  # the Home tab
    "chat.getPermalink": None,  # the card's link in link-backs and approver DMs
    "conversations.open": "im:write",  # DMs: approvers (notify_approvers: dm), a requester whose card went nowhere
    "users.info": "users:read",
    "usergroups.list": "usergroups:read",
    "usergroups.users.list": "usergroups:read",
}
SLACK_SCOPE_USES = {
    "commands": "the /model slash command",
    "chat:write": "cards, audit and incident posts",
    "users:read": "users.info (deleted and bot users cannot approve)",
    "usergroups:read": "user-group members in permissions.yaml",
    "im:write": "DMs to approvers and to requesters whose card could not be posted",
}
PUBLIC_POSTING = "chat:write.public"


@dataclass
class Findings:
    ok: list[str] = field(default_factory=list)  # one line per area (or model) that is fine
    problems: list[str] = field(default_factory=list)

    def add(self, other: Findings) -> Findings:
        self.ok += other.ok
        self.problems += other.problems
        return self


def check_config(online: bool = False) -> int:
    """Print every problem found; exit status 1 if there is any."""
    problems: list[str] = []
    settings = _try(load_settings, problems)
    policy_path = Path(os.environ.get("MODELBOT_PERMISSIONS", DEFAULT_PERMISSIONS))
    # Rules for models modelbot.yaml does not configure are problems (when modelbot.yaml itself loaded).
    known_models = settings.models if settings is not None else None
    _try(lambda: load_policy(policy_path, known_models), problems)
    if settings is not None:
        problems += _file_problems(settings)
        if online and not problems:
            found = online_findings(settings, os.environ)
            problems += found.problems
            for line in found.ok:
                print(line)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) found.", file=sys.stderr)
        return 1
    print("configuration OK" + (" (and every online check above)" if online else ""))
    return 0


def online_findings(settings: Settings, environ: Mapping[str, str]) -> Findings:
    """What `--online` proves, area by area."""
    found = check_fleet(settings.serving, settings.models)
    found.add(check_base_paths(settings.models))
    found.add(check_smoke_tests(settings.models))
    return found.add(check_slack(settings, environ))


def print_schema() -> int:
    """`check-config --schema`: the JSON Schema of modelbot.yaml on stdout, for editors."""
    print(json.dumps(modelbot_json_schema(), indent=2))
    return 0


def _try(load: Callable[[], T], problems: list[str]) -> T | None:
    try:
        return load()
    except ConfigError as exc:
        problems += [f"{exc.source}: {p}" for p in exc.problems]
        return None


def _file_problems(settings: Settings) -> list[str]:
    tls = settings.serving.tls
    problems = []
    for name, path in (("ca_cert", tls.ca_cert), ("client_cert", tls.client_cert), ("client_key", tls.client_key)):
        if path is not None and not path.is_file():
            problems.append(f"serving.tls.{name}: {path} does not exist")
    mcf = settings.serving.model_config_file
    if mcf is not None and not mcf.parent.is_dir():
        problems.append(f"serving.model_config_file: directory {mcf.parent} does not exist")
    for model in settings.models.values():
        if "://" not in model.base_path and not Path(model.base_path).is_dir():
            problems.append(f"models.{model.name}.base_path: {model.base_path} does not exist")
        if model.smoke_test is not None:
            try:
                load_golden(model.smoke_test)
            except ModelbotError as exc:  # unreadable, not JSON, or not a request/expectation
                problems.append(f"models.{model.name}.smoke_test: {exc}")
    return problems


# --- the fleet: TLS, then GetModelStatus, per replica -----------------------------------------------------


def check_fleet(serving: ServingSettings, models: Iterable[str], now: datetime | None = None) -> Findings:
    """TLS diagnosed per replica, then GetModelStatus of every model on each replica whose TLS is fine."""
    now = now or datetime.now(UTC)
    local = tls_check.check_local(serving.tls, now)
    problems = list(local.problems)
    try:
        targets = Targets(serving.targets)
        replicas = targets.replicas()
    except ConfigError as exc:
        return Findings(problems=[*problems, *(f"{exc.source}: {p}" for p in exc.problems)])
    except ServingError as exc:  # a dns:/// name that does not resolve
        return Findings(problems=[*problems, f"serving.targets: {exc}"])
    if not replicas:
        return Findings(problems=[*problems, "serving.targets: no replica found"])

    def diagnose(replica: str) -> list[str]:
        return tls_check.check_replica(replica, targets.tls_name(replica), local, serving.rpc_timeout_s, now)

    with ThreadPoolExecutor(max_workers=min(8, len(replicas))) as pool:
        tls_problems = dict(zip(replicas, pool.map(diagnose, replicas), strict=True))
    problems += [p for replica in replicas for p in tls_problems[replica]]
    if not local.problems:  # with unusable files every RPC fails in the handshake: that is already said
        fine = [r for r in replicas if not tls_problems[r]]
        problems += _rpc_problems(serving, targets, fine, list(models))
    if problems:
        return Findings(problems=problems)
    name = f", server name {serving.tls.server_name!r}" if serving.tls.server_name else ""
    client = ", client certificate" if serving.tls.client_cert else ""
    return Findings(ok=[f"fleet OK: {', '.join(replicas)} (TLS{name}{client}, GetModelStatus)"])


def _rpc_problems(serving: ServingSettings, targets: Targets, replicas: list[str], models: list[str]) -> list[str]:
    pool = ChannelPool(serving.tls, serving.rpc_timeout_s)
    problems = []
    try:
        for replica in replicas:
            client = pool.client(replica, targets.tls_name(replica))
            for model in models:
                try:
                    client.status(model)
                except ServingError as exc:
                    if exc.code != "NOT_FOUND":  # not loaded there yet: the bot's first rollout loads it
                        problems.append(f"replica {replica}: GetModelStatus of {model} failed: {describe(exc)}")
    finally:
        pool.close()
    return problems


# --- base paths -------------------------------------------------------------------------------------------


def check_base_paths(models: Mapping[str, ModelSettings], catalog: VersionCatalog | None = None) -> Findings:
    """Every model's base_path can be listed (local, or s3:// gs:// through fsspec) and holds versions."""
    catalog = catalog or LocalCatalog()
    found = Findings()
    for model in models.values():
        setting = f"models.{model.name}.base_path"
        try:
            versions = catalog.versions(model.base_path)
        except ConfigError as exc:  # fsspec or its backend missing: the message says which extra to install
            found.problems += [f"{setting}: {problem}" for problem in exc.problems]
            continue
        except Exception as exc:  # object stores raise their own types (credentials, permissions, network)
            found.problems.append(f"{setting}: cannot list {model.base_path}: {exc}")
            continue
        if versions:
            listed = ", ".join(str(v) for v in versions)
            found.ok.append(f"models OK: {model.name}: versions {listed} in {model.base_path}")
        else:
            found.problems.append(
                f"{setting}: no version in {model.base_path} (a directory named by a number, holding saved_model.pb)"
            )
    return found


SMOKE_VERSIONS_CHECKED = 10  # the newest versions on disk: reading a signature from an object store costs a GET


def check_smoke_tests(models: Mapping[str, ModelSettings], catalog: VersionCatalog | None = None) -> Findings:
    """Each model's golden request against the signatures of its newest versions on disk: a version the file names
    an expectation for must take the request and have the expected outputs (a problem); any other version that
    would fail its smoke test is named on the model's OK line (a rollout to it would fail, before any label moves)."""
    catalog = catalog or LocalCatalog()
    found = Findings()
    for model in models.values():
        if model.smoke_test is None:
            continue
        setting = f"models.{model.name}.smoke_test"
        try:
            golden = load_golden(model.smoke_test)
            versions = catalog.versions(model.base_path)[-SMOKE_VERSIONS_CHECKED:]
            signatures = {v: catalog.signature(model.base_path, v) for v in reversed(versions)}
        except Exception as exc:  # a bad file (offline checks name it), an unreadable base_path or object store
            found.problems.append(f"{setting}: cannot check it: {exc}")
            continue
        named = {int(v) for v in (golden.expect or {}) if v.isdigit()}
        fits, unfit = [], []
        for version, signature in signatures.items():
            problems = request_problems(golden, signature, version) if signature else ["no serving_default signature"]
            if not problems:
                fits.append(f"v{version}")
            elif version in named:
                found.problems.append(f"{setting}: v{version}: {'; '.join(problems)}")
            else:
                unfit.append(f"v{version} ({'; '.join(problems)})")
        if not fits and not [p for p in found.problems if p.startswith(setting)]:
            found.problems.append(f"{setting}: the golden request fits no version on disk: {', '.join(unfit)}")
        elif fits:
            line = f"smoke test OK: {model.name}: the golden request fits {', '.join(fits)}"
            found.ok.append(line + (f"; a rollout to these would fail it: {', '.join(unfit)}" if unfit else ""))
    return found


# --- Slack ------------------------------------------------------------------------------------------------


def check_slack(settings: Settings, environ: Mapping[str, str]) -> Findings:
    """auth.test, the granted scopes against the ones the bot uses, and every channel the bot posts to."""
    token = environ.get("SLACK_BOT_TOKEN", "").strip()
    if not token:
        return Findings(ok=["Slack not checked: SLACK_BOT_TOKEN is not set"])
    problems: list[str] = []
    _try(lambda: slack_env(environ), problems)  # what `serve` would refuse (SLACK_SIGNING_SECRET...)
    api_url = environ.get("SLACK_API_URL", "").strip() or DEFAULT_API_URL
    client = web_client(
        SlackEnv(bot_token=token, signing_secret="", app_token="", api_url=api_url), retries=False, timeout=10
    )
    try:
        auth = client.auth_test()
    except SlackApiError as exc:
        error = exc.response.get("error")
        return Findings(problems=[*problems, f"SLACK_BOT_TOKEN: Slack refused it at {api_url} (auth.test: {error})"])
    except (SlackClientError, OSError) as exc:
        return Findings(problems=[*problems, f"SLACK_API_URL: cannot reach Slack at {api_url}: {exc}"])
    scopes = _granted_scopes(auth.headers)
    problems += _scope_problems(scopes)
    channels = _channels(settings)
    problems += _channel_problems(client, channels, scopes, str(auth.get("user", "")))
    if problems:
        return Findings(problems=problems)
    where = ", ".join(sorted({channel for _, channel in channels})) or "none configured"
    bot = f"@{auth.get('user')} ({auth.get('user_id')}) in {auth.get('team')}"
    return Findings(ok=[f"Slack OK: token of {bot}, scopes {', '.join(sorted(scopes or ()))}, channels {where}"])


def _granted_scopes(headers: Mapping[str, Any]) -> set[str] | None:
    for key, value in headers.items():
        if key.lower() == "x-oauth-scopes":
            text = value[0] if isinstance(value, list) else value
            return {s.strip() for s in str(text).split(",") if s.strip()}
    return None


def _scope_problems(scopes: set[str] | None) -> list[str]:
    if scopes is None:
        return ["SLACK_BOT_TOKEN: Slack sent no x-oauth-scopes header with auth.test, so the scopes are unknown"]
    needed = {"commands"} | {s for s in SLACK_METHOD_SCOPES.values() if s}
    return [
        f"SLACK_BOT_TOKEN: the scope {scope} is missing (needed for {SLACK_SCOPE_USES.get(scope, scope)}): add it"
        " under OAuth & Permissions and reinstall the app"
        for scope in sorted(needed - scopes)
    ]


def _channels(settings: Settings) -> list[tuple[str, str]]:
    """(setting, channel id) of every channel the bot posts audit rows and incidents to."""
    found = [
        ("slack.audit_channel", settings.slack.audit_channel),
        ("slack.incident_channel", settings.slack.incident_channel),
    ]
    found += [(f"models.{m.name}.incident_channel", m.incident_channel) for m in settings.models.values()]
    found.append(("slack.approval_channel", settings.slack.approval_channel))
    found += [(f"models.{m.name}.approval_channel", m.approval_channel) for m in settings.models.values()]
    return [(setting, channel) for setting, channel in found if channel]


def _channel_problems(
    client: WebClient, channels: list[tuple[str, str]], scopes: set[str] | None, bot: str
) -> list[str]:
    answers: dict[str, str | None] = {}
    problems = []
    for setting, channel in channels:
        if channel not in answers:
            answers[channel] = _channel_problem(client, channel, scopes or set(), bot)
        if answers[channel] is not None:
            problems.append(f"{setting}: {answers[channel]}")
    return problems


def _channel_problem(client: WebClient, channel: str, scopes: set[str], bot: str) -> str | None:
    try:
        info = client.conversations_info(channel=channel)["channel"]
    except SlackApiError as exc:
        return _channel_error(channel, str(exc.response.get("error")))
    except (SlackClientError, OSError) as exc:
        return f"cannot check channel {channel}: {exc}"
    label = f"#{info.get('name', channel)} ({channel})"
    if info.get("is_archived"):
        return f"channel {label} is archived: the bot cannot post there"
    if info.get("is_member") or (not info.get("is_private") and PUBLIC_POSTING in scopes):
        return None
    public = "" if info.get("is_private") else f", or add the {PUBLIC_POSTING} scope"
    return f"the bot is not a member of {label}, so it cannot post there: /invite @{bot} in that channel{public}"


def _channel_error(channel: str, error: str) -> str:
    if error == "channel_not_found":
        return f"channel {channel} does not exist, or is private and the bot is not in it: check the id"
    if error == "missing_scope":
        return f"cannot check channel {channel}: conversations.info needs channels:read (groups:read if private)"
    return f"cannot check channel {channel}: conversations.info failed ({error})"
