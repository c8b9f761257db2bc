"""deploy/slack's app manifests ask for exactly the scopes the code uses and point at the route `serve` exposes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.checks import SLACK_METHOD_SCOPES
from bot.texts.commands import COMMAND
from tests.unit.test_check_slack_scopes import CALL, web_api_methods_called

ROOT = Path(__file__).resolve().parents[2]
HTTP = ROOT / "deploy" / "slack" / "manifest.yaml"
SOCKET = ROOT / "deploy" / "slack" / "manifest-socket-mode.yaml"
# Methods only `check-config --online` calls, outside SLACK_METHOD_SCOPES: conversations.info needs channels:read
# for public channels and groups:read for private ones (the manifests' comment says why they are kept).
CHECK_ONLY_SCOPES = {"conversations.info": {"channels:read", "groups:read"}}
TOP_LEVEL = {"display_information", "features", "oauth_config", "settings"}


def load(path: Path) -> dict[str, Any]:
    manifest = yaml.safe_load(path.read_text())
    assert isinstance(manifest, dict)
    return manifest


def scopes_the_code_needs() -> set[str]:
    checks = {m.replace("_", ".") for m in CALL.findall((ROOT / "bot" / "checks.py").read_text())}
    called = web_api_methods_called() | checks
    assert called - set(SLACK_METHOD_SCOPES) - set(CHECK_ONLY_SCOPES) == set()  # every call has its scope known
    needed = {"commands"} | {s for m in called if (s := SLACK_METHOD_SCOPES.get(m))}
    return needed.union(*(CHECK_ONLY_SCOPES.get(m, set()) for m in called))


def slack_route() -> str:
    source = (ROOT / "bot" / "frontends" / "server.py").read_text()
    routes: list[str] = re.findall(r'router\.mount\("POST", "(/[^"]*)"', source)
    assert len(routes) == 1, routes
    return routes[0]


@pytest.mark.parametrize("path", [HTTP, SOCKET], ids=lambda p: p.name)
def test_manifest_parses_with_the_required_top_level_keys(path: Path) -> None:
    """Each manifest is YAML with Slack's top-level sections, a bot user and the /model command."""
    manifest = load(path)
    assert set(manifest) >= TOP_LEVEL
    assert manifest["display_information"]["name"]
    assert manifest["features"]["bot_user"]["display_name"]
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == [COMMAND]
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["org_deploy_enabled"] is False


@pytest.mark.parametrize("path", [HTTP, SOCKET], ids=lambda p: p.name)
def test_manifest_bot_scopes_are_exactly_the_ones_the_code_uses(path: Path) -> None:
    """The bot scopes equal `commands` plus the scopes of every Web API method the code calls, nothing more."""
    scopes = load(path)["oauth_config"]["scopes"]["bot"]
    assert len(scopes) == len(set(scopes))
    assert set(scopes) == scopes_the_code_needs()
    assert "user" not in load(path)["oauth_config"]["scopes"]


def test_http_manifest_urls_end_with_the_route_serve_exposes() -> None:
    """The slash command and interactivity URLs are HTTPS and end with the POST route server.py mounts."""
    manifest = load(HTTP)
    route = slack_route()
    assert route == "/slack/events"  # the regex found the real route
    urls = [c["url"] for c in manifest["features"]["slash_commands"]]
    urls.append(manifest["settings"]["interactivity"]["request_url"])
    urls.append(manifest["settings"]["event_subscriptions"]["request_url"])
    assert all(url.startswith("https://") and url.endswith(route) for url in urls), urls
    assert manifest["settings"]["socket_mode_enabled"] is False


def test_socket_mode_manifest_has_no_urls_and_enables_socket_mode() -> None:
    """The Socket Mode variant enables Socket Mode and carries no request URL anywhere."""
    manifest = load(SOCKET)
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert "request_url" not in manifest["settings"]["interactivity"]
    assert all("url" not in c for c in manifest["features"]["slash_commands"])
    assert "://" not in yaml.safe_dump(manifest)


def test_the_two_manifests_differ_only_in_transport() -> None:
    """Apart from URLs and socket_mode_enabled, the Socket Mode manifest is the HTTP one."""
    http, socket = load(HTTP), load(SOCKET)
    for manifest in (http, socket):
        manifest["settings"].pop("socket_mode_enabled")
        manifest["settings"]["interactivity"].pop("request_url", None)
        manifest["settings"]["event_subscriptions"].pop("request_url", None)
        for command in manifest["features"]["slash_commands"]:
            command.pop("url", None)
    assert http == socket
