"""`modelbot` command line: serve, console, demo, check-config, db, audit, register."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bot.core.errors import ConfigError, ModelbotError

if TYPE_CHECKING:
    from bot.store.database import Database


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _setup_logging(args.command)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"Configuration problems in {exc.source}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    except ModelbotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _setup_logging(command: str = "") -> None:
    """Log to stderr: JSON lines under `serve` (MODELBOT_LOG_FORMAT=text for humans), text for the other commands
    (the console and the demo are read by people). structlog rather than python-json-logger: its contextvars
    binding carries the correlation and request ids to every line without touching call sites, and its
    ProcessorFormatter renders stdlib records from our modules and from the libraries in the same JSON shape.
    Secrets are redacted in both formats (bot/logging_setup.py); identical warnings and errors are rate-limited
    (bot/logfilter.py), so an outage writes one line per kind of failure every 30 s instead of one per attempt."""
    from bot import logging_setup

    default = "json" if command == "serve" else "text"
    fmt = os.environ.get(logging_setup.FORMAT_ENV, default) if command == "serve" else "text"
    logging_setup.configure(fmt, os.environ.get("MODELBOT_LOG_LEVEL", "WARNING"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelbot", description="Slack ChatOps for TensorFlow Serving.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the Slack app (HTTP on $PORT, or Socket Mode with SLACK_APP_TOKEN)")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    p.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"))  # noqa: S104 - a server listens
    p.set_defaults(func=_serve)

    p = sub.add_parser("console", help="the same bot in a terminal (no Slack needed)")
    p.add_argument("--as", dest="user", default=os.environ.get("MODELBOT_CONSOLE_USER", "U01ALICE"))
    p.add_argument("--groups", default="", help="comma-separated user-group ids, e.g. S0MLONCALL")
    p.set_defaults(func=_console)

    p = sub.add_parser("demo", help="local emulated TF Serving fleet over mTLS + demo models + SQLite + console")
    p.add_argument("--script", type=Path, help="run this console script non-interactively")
    p.add_argument("--replicas", type=int, default=3)
    p.add_argument("--no-story", action="store_true", help="skip the built-in walkthrough")
    p.set_defaults(func=_demo)

    p = sub.add_parser("check-config", help="validate modelbot.yaml and permissions.yaml")
    p.add_argument("--online", action="store_true", help="also reach every replica of the fleet")
    p.add_argument("--schema", action="store_true", help="print a JSON Schema of modelbot.yaml (for editors) and exit")
    p.set_defaults(func=_check_config)

    p = sub.add_parser("db", help="database schema")
    p.add_argument("action", choices=["upgrade"])
    p.set_defaults(func=_db)

    p = sub.add_parser("audit", help="verify or export the hash-chained audit trail")
    p.add_argument("action", choices=["verify", "export"])
    p.add_argument(
        "--format",
        choices=["jsonl", "csv", "markdown", "json"],
        help="jsonl (default) or csv for the whole trail; markdown (default) or json for one --request",
    )
    p.add_argument("--request", metavar="R7", help="export one request's whole story, for a postmortem")
    p.add_argument("--output", type=Path, help="file to write (default: stdout)")
    p.set_defaults(func=_audit)

    p = sub.add_parser("register", help="record registry metadata for a model version (for CI/CD)")
    p.add_argument("model")
    p.add_argument("version", type=int)
    p.add_argument("--metric", action="append", default=[], metavar="K=V")
    p.add_argument("--note", default="")
    p.add_argument("--actor", default=os.environ.get("MODELBOT_ACTOR", os.environ.get("USER", "ci")))
    p.set_defaults(func=_register)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from bot.frontends.server import serve
    from bot.frontends.slack.app import slack_env
    from bot.wiring import build_bot

    slack_env(os.environ)  # missing Slack secrets fail first, before touching the database or the fleet

    logging.getLogger().setLevel(os.environ.get("MODELBOT_LOG_LEVEL", "INFO"))
    return serve(build_bot(), host=args.host, port=args.port)


def _console(args: argparse.Namespace) -> int:
    from bot.frontends.console import Console, interactive_lines
    from bot.wiring import build_bot

    bot = build_bot()
    try:
        console = Console(bot.service, args.user, [g for g in args.groups.split(",") if g])
        failures = console.run(interactive_lines(), echo=not sys.stdin.isatty())
        return 1 if failures and not sys.stdin.isatty() else 0
    finally:
        bot.close()


def _demo(args: argparse.Namespace) -> int:
    from bot.devstack.demo import run_demo

    return run_demo(script=args.script, replicas=args.replicas, story=not args.no_story)


def _check_config(args: argparse.Namespace) -> int:
    from bot.checks import check_config, print_schema

    return print_schema() if args.schema else check_config(online=args.online)


def _db(args: argparse.Namespace) -> int:
    from bot.store.database import Database
    from bot.wiring import database_url

    Database(database_url()).upgrade()
    print("database schema is up to date")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from bot.store import audit_export
    from bot.store.database import Database
    from bot.wiring import database_url

    db = Database(database_url())
    if args.action == "verify" and args.request is None:
        result = audit_export.verify(db)
        if result.ok:
            print(f"audit trail OK: {result.checked} rows, hash chain intact")
            return 0
        print(f"audit trail BROKEN at row #{result.first_bad_seq}: {result.problem}", file=sys.stderr)
        return 1
    if args.request is not None:
        text = _request_story(db, args)
        if args.output:
            args.output.write_text(text)
        else:
            sys.stdout.write(text)
        return 0
    fmt: audit_export.ExportFormat = args.format or "jsonl"
    if fmt not in ("jsonl", "csv"):
        print(f"error: --format {fmt} needs --request R7 (the whole trail is jsonl or csv)", file=sys.stderr)
        return 1
    if args.output:
        with args.output.open("w", newline="") as out:
            audit_export.export(db, fmt, out)
    else:
        audit_export.export(db, fmt, sys.stdout)
    return 0


def _request_story(db: Database, args: argparse.Namespace) -> str:
    """`audit export --request R7`: the story as markdown (default) or JSON; roles from permissions.yaml."""
    from bot.core.errors import UsageError
    from bot.parsing import request_id_value
    from bot.policy_file import load_policy_file
    from bot.settings import DEFAULT_PERMISSIONS
    from bot.texts import postmortem as story_texts
    from bot.usecases.postmortem import load_story

    fmt = args.format or "markdown"
    if args.action != "export" or fmt not in ("markdown", "json"):
        raise UsageError(f"--request goes with `audit export --format markdown|json`, not {args.action} {fmt}")
    request_id = request_id_value(str(args.request).upper().removeprefix("#").removeprefix("R"))
    if request_id is None:
        raise UsageError(f"--request must look like R7, not {args.request!r}")
    policy = load_policy_file(Path(os.environ.get("MODELBOT_PERMISSIONS", DEFAULT_PERMISSIONS))).policy
    story = load_story(db, request_id, policy)
    return story_texts.markdown(story) if fmt == "markdown" else story_texts.as_json(story)


def _register(args: argparse.Namespace) -> int:
    from bot.register_command import register
    from bot.wiring import database_url

    return register(args.model, args.version, args.metric, note=args.note, actor=args.actor, db_url=database_url())


if __name__ == "__main__":
    raise SystemExit(main())
