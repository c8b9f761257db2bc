"""The desired FleetConfig <-> TF Serving's ModelServerConfig, and the models.config text file.

The file uses protobuf text format with snake_case field names, exactly what `tensorflow_model_server
--model_config_file` parses (reference/tfserving.md §2); the bot writes it so restarted replicas agree.

Lossless: the bot owns only a model's version policy and labels. An adopted ModelConfig that its domain fields
cannot reproduce (logging_config, a deprecated model_type, an unset policy, fields newer than our protos...) is
kept whole in `ModelState.adopted` and sent back with only what the bot changed overwritten.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import replace
from pathlib import Path

from google.protobuf import descriptor_pool, text_format  # type: ignore[import-untyped]  # protobuf ships no stubs

from bot.core.desired import FleetConfig, ModelState, VersionPolicy
from bot.core.errors import ConfigError
from bot.serving.protos import tfs_apis_pb2 as apis

PLATFORM = "tensorflow"  # the only platform the stock server knows (reference §1.4 step 8)
_HEADER = "# Written by modelbot; it owns this file. Edits are overwritten by the next rollout.\n"
_Policy = apis.FileSystemStoragePathSourceConfig.ServableVersionPolicy
log = logging.getLogger(__name__)


def to_proto(config: FleetConfig) -> apis.ModelServerConfig:
    """The whole ModelServerConfig: every model, in name order (a reload replaces the whole list)."""
    proto = apis.ModelServerConfig()
    proto.model_config_list.SetInParent()  # an empty list is valid and unloads everything; unset is not
    for state in config.models:
        proto.model_config_list.config.append(model_to_proto(state))
    return proto


def model_to_proto(state: ModelState) -> apis.ModelConfig:
    """The adopted ModelConfig with only what the bot changed overwritten; built from the fields without one."""
    if not state.adopted:
        return _built(state)
    model = apis.ModelConfig()
    model.ParseFromString(state.adopted)  # fields our protos do not know are kept as unknown fields
    was = _fields(model)
    if state.policy != was.policy:
        model.model_version_policy.CopyFrom(_policy_to_proto(state.policy))
    if state.labels != was.labels:
        model.ClearField("version_labels")
        model.version_labels.update(dict(state.labels))
    # The bot never changes these of an adopted model; if it ever does, the fleet must see it too.
    if state.name != was.name:
        model.name = state.name
    if state.base_path != was.base_path:
        model.base_path = state.base_path
    if state.platform != was.platform:
        model.ClearField("model_type")  # setting both is INVALID_ARGUMENT (reference §1.4 step 5)
        model.model_platform = state.platform
    return model


def from_proto(proto: apis.ModelServerConfig) -> FleetConfig:
    """Back to domain values; bot bookkeeping (generation, stable history) starts empty."""
    if proto.WhichOneof("config") != "model_config_list":
        raise ConfigError("ModelServerConfig", ["only model_config_list is supported (as by TF Serving's reload)"])
    states = [model_from_proto(m) for m in proto.model_config_list.config]
    names = [s.name for s in states]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError("ModelServerConfig", [f"model {n!r} is listed more than once" for n in duplicates])
    return FleetConfig(models=tuple(sorted(states, key=lambda s: s.name)))


def model_from_proto(model: apis.ModelConfig) -> ModelState:
    """Domain values, plus the whole serialized ModelConfig when they alone would not give it back exactly."""
    state = _fields(model)
    adopted = model.SerializeToString(deterministic=True)
    if _built(state).SerializeToString(deterministic=True) == adopted:
        return state  # the usual case: nothing to keep beyond the fields (and the stored state stays small)
    return replace(state, adopted=adopted)


def to_text(config: FleetConfig) -> str:
    return _HEADER + _lossless_text(to_proto(config))


def from_text(text: str, source: str = "model config") -> FleetConfig:
    proto = apis.ModelServerConfig()
    try:
        text_format.Parse(text, proto)
    except text_format.ParseError as exc:
        raise ConfigError(source, [f"not a ModelServerConfig in text format: {exc}"]) from None
    return from_proto(proto)


def write_model_config_file(path: Path | str, config: FleetConfig) -> None:
    """Replace the file atomically (temp file in the same directory + os.replace): a replica polling it
    never reads a half-written config."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(to_text(config))
        Path(tmp).chmod(0o644)  # readable by the serving processes; mkstemp creates 0600
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_model_config_file(path: Path | str) -> FleetConfig:
    """Adopt the config the fleet was started with (DESIGN.md §4 step 0)."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(source), [f"cannot read: {exc.strerror or exc}"]) from None
    return from_text(text, str(source))


def _built(state: ModelState) -> apis.ModelConfig:
    model = apis.ModelConfig(name=state.name, base_path=state.base_path, model_platform=state.platform or PLATFORM)
    model.model_version_policy.CopyFrom(_policy_to_proto(state.policy))
    for label, version in state.labels:
        model.version_labels[label] = version
    return model


def _fields(model: apis.ModelConfig) -> ModelState:
    platform = model.model_platform
    if not platform and model.model_type == apis.TENSORFLOW:  # deprecated field, still accepted by the server
        platform = PLATFORM
    return ModelState(
        name=model.name,
        base_path=model.base_path,
        platform=platform or PLATFORM,
        policy=_policy_from_proto(model.model_version_policy),
        labels=tuple(sorted(model.version_labels.items())),
    )


def _lossless_text(proto: apis.ModelServerConfig) -> str:
    """Text that parses back to exactly `proto`. An Any printed in its readable expanded form is re-serialized,
    which can drop or reorder what it packs, so then every Any is printed as type_url + value bytes instead."""
    text = str(text_format.MessageToString(proto))
    if _parses_back(text, proto):
        return text
    raw = str(text_format.MessageToString(proto, descriptor_pool=descriptor_pool.DescriptorPool()))
    if not _parses_back(raw, proto):
        # Only fields unknown to our protos can be missing: text format has no way to write them.
        unknown = [m.name for m in proto.model_config_list.config if not _parses_back_model(m)]
        log.warning("models.config cannot hold fields unknown to modelbot's protos of %s", ", ".join(unknown))
    return raw


def _parses_back(text: str, proto: apis.ModelServerConfig) -> bool:
    again = apis.ModelServerConfig()
    text_format.Parse(text, again)
    return bool(again.SerializeToString(deterministic=True) == proto.SerializeToString(deterministic=True))


def _parses_back_model(model: apis.ModelConfig) -> bool:
    proto = apis.ModelServerConfig()
    proto.model_config_list.config.append(model)
    raw = str(text_format.MessageToString(proto, descriptor_pool=descriptor_pool.DescriptorPool()))
    return _parses_back(raw, proto)


def _policy_to_proto(policy: VersionPolicy) -> _Policy:
    proto = _Policy()
    # SetInParent first: an empty `specific {}` (serve nothing) is not the same as no policy (latest 1).
    if policy.kind == "specific":
        proto.specific.SetInParent()
        proto.specific.versions.extend(sorted(policy.versions))
    elif policy.kind == "all":
        proto.all.SetInParent()
    else:
        proto.latest.SetInParent()
        proto.latest.num_versions = policy.num_versions
    return proto


def _policy_from_proto(proto: _Policy) -> VersionPolicy:
    kind = proto.WhichOneof("policy_choice")
    if kind == "specific":
        return VersionPolicy.specific(proto.specific.versions)
    if kind == "all":
        return VersionPolicy(kind="all")
    if kind == "latest":
        return VersionPolicy(kind="latest", num_versions=max(proto.latest.num_versions, 1))
    return VersionPolicy()  # unset = latest, 1 version (reference §2)
