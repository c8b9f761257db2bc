"""ServerCore: ReloadConfig, the version-label map and ModelSpec resolution (model_servers/server_core.cc)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Collection, Sequence
from pathlib import Path

from bot.devstack.serving.discovery import FileSystemSource, ServableToMonitor, VersionPolicy
from bot.devstack.serving.loading import LoadedServable
from bot.devstack.serving.manager import AspiredVersionsManager
from bot.devstack.serving.monitor import FreshMonitor, ManagerState, ServableState, StateMonitor
from bot.devstack.serving.status import Code, TfError
from bot.devstack.serving.validation import (
    SUPPORTED_PLATFORMS,
    check_routes,
    validate_model_config_list,
    validate_no_models_change_platforms,
)
from bot.serving.protos import tfs_apis_pb2

log = logging.getLogger("devstack.core")

ModelServerConfig = tfs_apis_pb2.ModelServerConfig
# ServerRequestLogger::CreateUpdateRequestLocked (core/server_request_logger.cc): the stock server creates its
# logger with no request-logger-creator (ServerCore::Create), so any logging_config is refused with this.
NO_REQUEST_LOGGER = "No request-logger-creator provided."


def _unavailable_error(reached: Sequence[ServableState], noun: str) -> TfError | None:
    """WaitUntilModelsAvailable's UNKNOWN error when some awaited model ended (END) instead of loading."""
    failed = [s for s in reached if s.state is not ManagerState.AVAILABLE]
    if not failed:
        return None
    entries = "".join(
        f"{{{{name: {s.model} version: {s.version}}}"
        + ("" if s.health.ok else f" due to error: {s.health.to_string()}")
        + "}, "
        for s in failed
    )
    return TfError(Code.UNKNOWN, f"{len(failed)} {noun} did not become available: {{{entries}}}")


def _copied(config: tfs_apis_pb2.LoggingConfig) -> tfs_apis_pb2.LoggingConfig:
    copy = tfs_apis_pb2.LoggingConfig()
    copy.CopyFrom(config)
    return copy


def _copy_policy(config: tfs_apis_pb2.ModelConfig) -> VersionPolicy:
    policy = VersionPolicy()
    policy.CopyFrom(config.model_version_policy)
    return policy


class ServerCore:
    def __init__(
        self,
        monitor: StateMonitor,
        manager: AspiredVersionsManager,
        *,
        file_system_poll_wait_seconds: float,
        allow_version_labels_for_unavailable_models: bool,
        stopping: threading.Event,
        request_logger: bool = False,
        platforms: Collection[str] = SUPPORTED_PLATFORMS,
        dump_config: str = "",
    ) -> None:
        """`request_logger`: a build with a request-logger-creator (stock: none); `platforms`: the ones it can
        load; `dump_config`: test-only file that receives the stored config whenever a reload stores one."""
        self._monitor = monitor
        self._reload_delay_seconds = 0.0
        self._manager = manager
        self._poll_wait_seconds = file_system_poll_wait_seconds
        self._allow_unavailable_labels = allow_version_labels_for_unavailable_models
        self._stopping = stopping
        # config_mu_: held for a whole reload, including the wait for new models, so reloads queue up.
        self._config_mu = threading.Lock()
        self._config = ModelServerConfig()
        self._labels_mu = threading.Lock()
        self._labels: dict[str, dict[str, int]] | None = None  # None until the first successful label update
        self._source: FileSystemSource | None = None
        self._request_logger = request_logger
        self._platforms = frozenset(platforms)
        self._dump_config = dump_config
        self._logging_configs: dict[str, tfs_apis_pb2.LoggingConfig] = {}  # what the request logger applies

    def config(self) -> ModelServerConfig:
        """A copy of the stored config (which may be a rejected one, see reload_config)."""
        copy = ModelServerConfig()
        copy.CopyFrom(self._config)
        return copy

    # --- ReloadConfig -------------------------------------------------------------------------------------
    def delay_reloads(self, seconds: float) -> None:
        """Emulator knob (--devstack_reload_delay_seconds): every later reload waits this long inside the config
        mutex before it is applied, like a slow replica; reloads behind it queue, and it is still applied even
        when the client gave up (the handler ignores deadlines, reference §1.3)."""
        self._reload_delay_seconds = seconds

    def reload_config(self, new_config: ModelServerConfig) -> None:
        """Apply a whole new config or raise the TF error. Not rolled back: the stored config is replaced before
        the label check and the model update, so a failure there leaves the rejected config stored."""
        with self._config_mu:
            if self._reload_delay_seconds > 0:  # emulator knob: a slow replica (the reload is still applied)
                log.info("devstack: reload received; applied in %gs", self._reload_delay_seconds)  # tests wait for it
                self._stopping.wait(self._reload_delay_seconds)
            old_case = self._config.WhichOneof("config")
            new_case = new_config.WhichOneof("config")
            is_first = old_case is None
            if not (is_first or self._config == new_config or old_case == new_case == "model_config_list"):
                raise TfError(
                    Code.FAILED_PRECONDITION,
                    "Cannot transition to requested config. "
                    "It is only legal to transition from one ModelConfigList to another.",
                )
            if new_case is None:
                log.info("Taking no action for empty config.")
                return
            if new_case == "model_config_list":
                validate_model_config_list(new_config.model_config_list.config)
                if old_case == "model_config_list":
                    validate_no_models_change_platforms(
                        self._config.model_config_list.config, new_config.model_config_list.config
                    )
            self._config = ModelServerConfig()
            self._config.CopyFrom(new_config)
            self._dump_stored_config()  # from here on it stays stored, even if a later step fails or hangs
            self._apply_stored_config(new_case)

    def _apply_stored_config(self, case: str) -> None:
        """ReloadConfig after `config_ = new_config`: labels, models, then the request logger (steps 7-9)."""
        self._update_label_map()
        if case == "custom_model_config":
            # server.cc LoadCustomModelConfig is a LOG(FATAL): the real process dies here.
            log.critical("ModelServer does not yet support custom model config.")
            os._exit(1)
        self._add_models()
        self._update_request_logger()
        log.info("Finished reloading config")

    def _update_request_logger(self) -> None:
        """MaybeUpdateServerRequestLogger, after every model was added or updated (and new ones awaited): a
        failure here leaves everything else applied and the logger as it was."""
        configs = {
            model.name: _copied(model.logging_config)
            for model in self._config.model_config_list.config
            if model.HasField("logging_config")
        }
        if configs and not self._request_logger:
            raise TfError(Code.INVALID_ARGUMENT, NO_REQUEST_LOGGER)
        if configs != self._logging_configs:
            log.info("Request logger updated; logging model(s): %s", ", ".join(sorted(configs)) or "none")
        self._logging_configs = configs

    def _dump_stored_config(self) -> None:
        if not self._dump_config:
            return
        target = Path(self._dump_config)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            tmp.write_bytes(self._config.SerializeToString(deterministic=True))
            tmp.replace(target)
        except OSError as error:  # a test knob must not change how the reload ends
            log.error("--devstack_dump_config: cannot write %s: %s", target, error)

    def _update_label_map(self) -> None:
        """Build and validate the complete label map against CURRENT states, then swap it in atomically."""
        new_map: dict[str, dict[str, int]] = {}
        for model in self._config.model_config_list.config:
            states = {s.version: s.state for s in self._monitor.versions(model.name)}
            for label in sorted(model.version_labels):
                version = model.version_labels[label]
                allow_any = False
                if self._allow_unavailable_labels:
                    existing = self._current_label(model.name, label)
                    # Only MOVING an existing label still needs the target to be AVAILABLE.
                    allow_any = existing is None or existing == version
                if not allow_any and states.get(version) is not ManagerState.AVAILABLE:
                    raise TfError(
                        Code.FAILED_PRECONDITION,
                        f"Request to assign label to version {version} of model {model.name}, "
                        "which is not currently available for inference",
                    )
                new_map.setdefault(model.name, {})[label] = version
        with self._labels_mu:
            self._labels = new_map

    def _current_label(self, model: str, label: str) -> int | None:
        with self._labels_mu:
            return None if self._labels is None else self._labels.get(model, {}).get(label)

    def _add_models(self) -> None:
        """AddModelsViaModelConfigList: routes, then the source; wait only for model names that are new."""
        configs = self._config.model_config_list.config
        servables = [ServableToMonitor(c.name, c.base_path, _copy_policy(c)) for c in configs]
        check_routes(configs, self._platforms)
        if self._source is None:
            self._start_source(servables)
            return
        with FreshMonitor(self._monitor) as fresh:
            new_models = {s.name for s in servables} - {s.name for s in self._source.config()}
            self._source.update_config(servables)
            reached = fresh.wait_until_available(new_models, self._stopping)
        self._raise_if_unavailable(reached, len(new_models), "model(s)")

    def _start_source(self, servables: Sequence[ServableToMonitor]) -> None:
        """First config: create the source, poll at once and wait for every model (parallel initial loads)."""
        source = FileSystemSource(self._poll_wait_seconds, self._manager.set_aspired_versions, self._stopping)
        source.update_config(servables)
        self._source = source
        try:
            with FreshMonitor(self._monitor) as fresh:
                source.start()
                reached = fresh.wait_until_available([s.name for s in servables], self._stopping)
        finally:
            self._manager.finish_initial_load()
        self._raise_if_unavailable(reached, len(servables), "servable(s)")

    def _raise_if_unavailable(self, reached: Sequence[ServableState], awaited: int, noun: str) -> None:
        if awaited and not reached:
            raise TfError(Code.CANCELLED, "server is shutting down")
        error = _unavailable_error(reached, noun)
        if error is not None:
            raise error

    # --- request resolution -------------------------------------------------------------------------------
    def version_for_label(self, model: str, label: str) -> int:
        with self._labels_mu:
            if self._labels is None:
                raise TfError(Code.UNAVAILABLE, f"Model labels does not init yet.{label}")
            version = self._labels.get(model, {}).get(label)
        if version is None:
            raise TfError(Code.INVALID_ARGUMENT, f"Unrecognized servable version label: {label}")
        return version

    def servable(self, spec: tfs_apis_pb2.ModelSpec) -> LoadedServable:
        """ServableRequestFromModelSpec + the manager's serving map: version, label, or Latest = highest READY."""
        if not spec.name:
            raise TfError(Code.INVALID_ARGUMENT, "ModelSpec has no name specified.")
        choice = spec.WhichOneof("version_choice")
        version: int | None = None
        if choice == "version":
            version = spec.version.value
        elif choice == "version_label":
            version = self.version_for_label(spec.name, spec.version_label)
        found = self._manager.servable(spec.name, version)
        if found is None:
            request = f"Latest({spec.name})" if version is None else f"Specific({spec.name}, {version})"
            raise TfError(Code.NOT_FOUND, f"Servable not found for request: {request}")
        return found
