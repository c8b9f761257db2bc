"""Command-line flags: the real server's names and defaults (model_servers/main.cc), plus `--devstack_*` knobs."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


@dataclass(frozen=True)
class ServerFlags:
    """Parsed flags. Poll intervals accept fractions of a second so tests can run fast (the real ones are int)."""

    port: int = 8500
    host: str = "127.0.0.1"
    model_config_file: str = ""
    model_name: str = "default"
    model_base_path: str = ""
    ssl_config_file: str = ""
    file_system_poll_wait_seconds: float = 1.0
    model_config_file_poll_wait_seconds: float = 0.0
    allow_version_labels_for_unavailable_models: bool = False
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60_000_000
    saved_model_tags: str = "serve"
    # Emulator-only knobs.
    devstack_load_seconds: float = 0.2
    devstack_manage_interval_seconds: float = 0.1
    devstack_stall: frozenset[tuple[str, int]] = frozenset()
    # Predict answers of MODEL:VERSION get this offset added on this replica (a skewed replica for smoke tests).
    devstack_predict_offset: frozenset[tuple[str, int, float]] = frozenset()
    devstack_reload_delay_seconds: float = 0.0  # every ReloadConfig after start-up is applied this much later
    devstack_predict_delay_seconds: float = 0.0  # every Predict answers this much later (or at its deadline)
    devstack_parent_pid: int = 0  # exit when this process is gone, so a killed test run leaves no replicas
    # A build with a request logger (ServerCore::Options::server_request_logger set): logging_config is accepted.
    devstack_request_logger: bool = False
    # The platforms this build can load (PlatformConfigMap; the stock server knows only "tensorflow").
    devstack_platforms: frozenset[str] = frozenset({"tensorflow"})
    # Test-only: after every reload that stored a config, write it here (binary ModelServerConfig, atomically).
    devstack_dump_config: str = ""

    @property
    def load_retry_interval_seconds(self) -> float:
        return self.load_retry_interval_micros / 1_000_000

    @property
    def tags(self) -> frozenset[str]:
        return frozenset(tag for tag in self.saved_model_tags.split(",") if tag)


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _stall(text: str) -> tuple[str, int]:
    model, sep, version = text.rpartition(":")
    if not sep or not model or not version.lstrip("-").isdigit():
        raise argparse.ArgumentTypeError(f"expected MODEL:VERSION, got {text!r}")
    return model, int(version)


def _offset(text: str) -> tuple[str, int, float]:
    target, _, amount = text.partition("=")
    try:
        model, version = _stall(target)
        return model, version, float(amount)
    except (argparse.ArgumentTypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected MODEL:VERSION=OFFSET, got {text!r}") from None


def _platforms(text: str) -> frozenset[str]:
    platforms = frozenset(p.strip() for p in text.split(",") if p.strip())
    if not platforms:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of platforms, got {text!r}")
    return platforms


def _parser() -> argparse.ArgumentParser:
    defaults = ServerFlags()
    parser = argparse.ArgumentParser(
        prog="python -m bot.devstack.serving",
        description="Emulated tensorflow_model_server (gRPC ModelService + PredictionService).",
        allow_abbrev=False,
    )
    add = parser.add_argument
    add("--port", type=int, default=defaults.port, help="gRPC port; 0 picks a free one (emulator only)")
    add("--host", default=defaults.host, help="address to bind; the emulator defaults to loopback")
    add("--model_config_file", default=defaults.model_config_file)
    add("--model_name", default=defaults.model_name)
    add("--model_base_path", default=defaults.model_base_path)
    add("--ssl_config_file", default=defaults.ssl_config_file)
    add("--file_system_poll_wait_seconds", type=float, default=defaults.file_system_poll_wait_seconds)
    add("--model_config_file_poll_wait_seconds", type=float, default=defaults.model_config_file_poll_wait_seconds)
    add(
        "--allow_version_labels_for_unavailable_models",
        type=_bool,
        nargs="?",
        const=True,
        default=defaults.allow_version_labels_for_unavailable_models,
    )
    add("--max_num_load_retries", type=int, default=defaults.max_num_load_retries)
    add("--load_retry_interval_micros", type=int, default=defaults.load_retry_interval_micros)
    add("--saved_model_tags", default=defaults.saved_model_tags)
    add("--devstack_load_seconds", type=float, default=defaults.devstack_load_seconds, help="simulated load time")
    add("--devstack_manage_interval_seconds", type=float, default=defaults.devstack_manage_interval_seconds)
    add(
        "--devstack_stall",
        type=_stall,
        action="append",
        default=[],
        metavar="MODEL:VERSION",
        help="this version stays LOADING forever on this replica (repeatable)",
    )
    add(
        "--devstack_predict_offset",
        type=_offset,
        action="append",
        default=[],
        metavar="MODEL:VERSION=OFFSET",
        help="Predict on that version answers every output value plus OFFSET on this replica (repeatable)",
    )
    add(
        "--devstack_predict_delay_seconds",
        type=float,
        default=defaults.devstack_predict_delay_seconds,
        help="every Predict answers this long later; one whose deadline comes first fails DEADLINE_EXCEEDED then",
    )
    add(
        "--devstack_reload_delay_seconds",
        type=float,
        default=defaults.devstack_reload_delay_seconds,
        help="every ReloadConfig after start-up waits this long (holding the config lock) before it is applied",
    )
    add(
        "--devstack_request_logger",
        type=_bool,
        nargs="?",
        const=True,
        default=defaults.devstack_request_logger,
        help="emulate a build with a request logger: accept each model's logging_config and keep it (the stock "
        'server answers INVALID_ARGUMENT "No request-logger-creator provided." to any config that has one)',
    )
    add(
        "--devstack_platforms",
        type=_platforms,
        action="append",
        default=[],
        metavar="A,B",
        help="the model_platforms this build can load, like --platform_config_file (default: tensorflow; "
        'repeatable); any other is "Model <name> requests unsupported platform <platform>"',
    )
    add(
        "--devstack_dump_config",
        default=defaults.devstack_dump_config,
        metavar="FILE",
        help="test-only: after every reload that stored a config (accepted, or rejected after it was stored), "
        "write the stored ModelServerConfig to FILE (binary proto, replaced atomically); TF Serving has no call "
        "that returns it",
    )
    add("--devstack_parent_pid", type=int, default=defaults.devstack_parent_pid, help="exit when this pid is gone")
    return parser


def parse_flags(argv: Sequence[str]) -> ServerFlags:
    """Parse `--flag=value` or `--flag value`; exits with usage on a bad flag, like the real server."""
    args = _parser().parse_args(list(argv))
    values = vars(args)
    values["devstack_stall"] = frozenset(values["devstack_stall"])
    values["devstack_predict_offset"] = frozenset(values["devstack_predict_offset"])
    values["devstack_platforms"] = frozenset().union(*values["devstack_platforms"]) or ServerFlags.devstack_platforms
    return ServerFlags(**values)
