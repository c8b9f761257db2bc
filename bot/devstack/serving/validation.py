"""ServerCore's checks on a new ModelConfigList (model_servers/server_core.cc), with upstream's messages."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from bot.devstack.serving.discovery import URI_SCHEME
from bot.devstack.serving.status import Code, TfError
from bot.serving.protos import tfs_apis_pb2

ModelConfig = tfs_apis_pb2.ModelConfig

# model_platform_types.h; the stock server registers only this one without --platform_config_file
# (--devstack_platforms emulates a build that registers others).
SUPPORTED_PLATFORMS = frozenset({"tensorflow"})


def get_platform(config: ModelConfig) -> str:
    """The model's platform, from model_platform or the deprecated model_type (never both, never neither)."""
    if config.model_type != tfs_apis_pb2.MODEL_TYPE_UNSPECIFIED:
        if config.model_platform:
            raise TfError(
                Code.INVALID_ARGUMENT,
                "Illegal setting both ModelServerConfig::model_type (deprecated) and "
                f"ModelServerConfig::model_platform, model name is {config.name}",
            )
        if config.model_type != tfs_apis_pb2.TENSORFLOW:
            raise TfError(
                Code.INVALID_ARGUMENT, f"ModelServerConfig::model_type choice {config.model_type} not supported."
            )
        return "tensorflow"
    if not config.model_platform:
        raise TfError(
            Code.INVALID_ARGUMENT,
            "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
            f"ModelServerConfig::model_platform, model name is {config.name}",
        )
    return config.model_platform


def uri_is_relative_path(uri: str) -> bool:
    """io::ParseURI found no scheme and the path does not start with a slash."""
    return URI_SCHEME.match(uri) is None and not uri.startswith("/")


def validate_model_config_list(configs: Sequence[ModelConfig]) -> None:
    """ValidateModelConfigList: unique names, then absolute base paths (no model_config_list_root_dir)."""
    seen: set[str] = set()
    for config in configs:
        if config.name in seen:
            raise TfError(Code.INVALID_ARGUMENT, f"Illegal to list model {config.name} multiple times in config list")
        seen.add(config.name)
    for config in configs:
        if uri_is_relative_path(config.base_path):
            raise TfError(
                Code.INVALID_ARGUMENT,
                f"Expected model {config.name} to have an absolute path or URI; got base_path()={config.base_path}",
            )


def validate_no_models_change_platforms(old: Sequence[ModelConfig], new: Sequence[ModelConfig]) -> None:
    """Models present in both lists keep their platform. The OLD list's platforms are recomputed too, so a stored
    config with an empty platform makes every later reload fail (upstream behaviour)."""
    old_platforms = {config.name: get_platform(config) for config in old}
    for config in new:
        if config.name not in old_platforms:
            continue
        new_platform = get_platform(config)
        if new_platform != old_platforms[config.name]:
            raise TfError(
                Code.INVALID_ARGUMENT,
                f"Illegal to change a model's platform. For model {config.name} platform was "
                f"{old_platforms[config.name]} and new platform requested is {new_platform}",
            )


def check_routes(configs: Sequence[ModelConfig], platforms: Collection[str] = SUPPORTED_PLATFORMS) -> None:
    """CreateStoragePathRoutes: every model's platform must have a source adapter."""
    for config in configs:
        platform = get_platform(config)
        if platform not in platforms:
            raise TfError(Code.INVALID_ARGUMENT, f"Model {config.name} requests unsupported platform {platform}")
