"""Lossless config (issue 8): an adopted models.config reaches the fleet and the file again exactly, except the
version policy and labels of the model the bot changed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from bot.core.desired import FleetConfig, ModelState, VersionPolicy
from bot.serving.config_proto import (
    from_proto,
    model_from_proto,
    model_to_proto,
    read_model_config_file,
    to_proto,
    to_text,
    write_model_config_file,
)
from bot.serving.protos import tfs_apis_pb2 as apis
from tests.model_config_corpus import MANAGED, corpus_names, corpus_text, field_diff, parsed

UNKNOWN_FIELD = b"\xa8\x06\x05"  # field 101, varint 5: a field a newer TF Serving might add to a message
MANAGED_CHANGE = {f"model_config_list.config[{MANAGED}].model_version_policy.specific.versions"}


def _adopted(name: str) -> tuple[apis.ModelServerConfig, FleetConfig]:
    text = corpus_text(name)
    return parsed(text), from_proto(parsed(text))


def _rolled_back(config: FleetConfig) -> FleetConfig:
    """What a cold rollback of the managed model from 3 to 2 (keep_warm 1) leaves in the desired state."""
    state = config.model(MANAGED)
    assert state is not None
    return config.with_model(state.with_versions([2, 3]).with_labels({**state.label_map(), "stable": 2}))


@pytest.mark.parametrize("name", corpus_names())
def test_adopted_config_is_sent_unchanged(name: str) -> None:
    """Every corpus file, adopted and turned back into a ModelServerConfig, equals the original field by field."""
    original, adopted = _adopted(name)
    assert field_diff(original, to_proto(adopted)) == []


@pytest.mark.parametrize("name", corpus_names())
def test_only_the_managed_models_policy_and_labels_change(name: str) -> None:
    """After a rollback of the managed model, the config differs from the adopted one only in its policy and labels."""
    original, adopted = _adopted(name)
    sent = to_proto(_rolled_back(adopted))
    labels = f"model_config_list.config[{MANAGED}].version_labels"
    assert set(field_diff(original, sent)) == MANAGED_CHANGE | {labels}
    managed = next(m for m in sent.model_config_list.config if m.name == MANAGED)
    assert list(managed.model_version_policy.specific.versions) == [2, 3]
    assert managed.version_labels["stable"] == 2


@pytest.mark.parametrize("name", corpus_names())
def test_written_file_parses_back_to_what_is_sent(name: str, tmp_path: Path) -> None:
    """The text file the bot writes holds everything the replicas are sent, and reads back to the same state."""
    _, adopted = _adopted(name)
    desired = _rolled_back(adopted)
    path = tmp_path / "models.config"
    write_model_config_file(path, desired)
    assert field_diff(to_proto(desired), parsed(path.read_text())) == []
    assert field_diff(to_proto(desired), to_proto(read_model_config_file(path))) == []


@pytest.mark.parametrize("name", corpus_names())
def test_adopted_state_survives_the_database(name: str) -> None:
    """Each adopted ModelState comes back from its stored JSON form identical, adopted bytes included."""
    _, adopted = _adopted(name)
    for state in adopted.models:
        stored = json.loads(json.dumps(state.to_dict(), sort_keys=True))
        assert ModelState.from_dict(stored) == state


def test_request_logging_is_kept_for_the_managed_model() -> None:
    """The managed model's logging_config (collector, sampling, per-task rules) is still sent after a rollback."""
    original, adopted = _adopted("request_logging")
    sent = to_proto(_rolled_back(adopted))
    before = next(m for m in original.model_config_list.config if m.name == MANAGED)
    after = next(m for m in sent.model_config_list.config if m.name == MANAGED)
    assert after.HasField("logging_config")
    assert field_diff(before.logging_config, after.logging_config) == []
    assert after.logging_config.sampling_config.per_task_sampling_configs[0].HasField("task_index")


def test_deprecated_model_type_and_unset_policy_are_not_rewritten() -> None:
    """A model_type TENSORFLOW model with no policy is sent as such: no model_platform added, no policy invented."""
    _, adopted = _adopted("platforms")
    sent = next(m for m in to_proto(adopted).model_config_list.config if m.name == "legacy_scorer")
    assert sent.model_type == apis.TENSORFLOW and sent.model_platform == ""
    assert not sent.HasField("model_version_policy")


def test_a_plain_model_keeps_no_adopted_bytes() -> None:
    """A model its fields alone reproduce stores no bytes, so existing states keep their stored form and digest."""
    state = ModelState("m", "/models/m", policy=VersionPolicy.specific([1, 2]), labels=(("stable", 2),))
    assert model_from_proto(model_to_proto(state)) == state
    assert "adopted" not in state.to_dict()


def test_unknown_fields_survive_adoption_and_a_change() -> None:
    """Fields our protos do not know are kept in the adopted bytes and still sent after the labels change."""
    known = apis.ModelConfig(name="m", base_path="/models/m", model_platform="tensorflow")
    model = apis.ModelConfig()
    model.ParseFromString(known.SerializeToString() + UNKNOWN_FIELD)
    state = model_from_proto(model)
    assert state.adopted
    expected = apis.ModelConfig()
    expected.CopyFrom(model)
    expected.version_labels["stable"] = 1
    changed = model_to_proto(state.with_labels({"stable": 1}))
    assert field_diff(expected, changed) == []
    assert UNKNOWN_FIELD in changed.SerializeToString()


def test_an_any_packing_unknown_fields_is_written_as_bytes() -> None:
    """A custom_logging_config whose packed message has fields we do not know is written raw, so nothing is lost."""
    model = apis.ModelConfig(name="m", base_path="/models/m", model_platform="tensorflow")
    model.logging_config.custom_logging_config.Pack(apis.LogCollectorConfig(type="pubsub"))
    model.logging_config.custom_logging_config.value += UNKNOWN_FIELD
    config = FleetConfig((model_from_proto(model),))
    text = to_text(config)
    assert 'type_url: "type.googleapis.com/tensorflow.serving.LogCollectorConfig"' in text
    assert field_diff(to_proto(config), parsed(text)) == []


def test_a_readable_any_stays_readable() -> None:
    """An Any we can expand and re-serialize exactly is written in its readable expanded form."""
    _, adopted = _adopted("request_logging")
    assert "[type.googleapis.com/tensorflow.serving.LogCollectorConfig] {" in to_text(adopted)


def test_a_changed_platform_replaces_the_deprecated_model_type() -> None:
    """Should a state's platform ever differ from the adopted one, model_platform is set and model_type cleared."""
    legacy = apis.ModelConfig(name="m", base_path="/models/m", model_type=apis.TENSORFLOW)
    state = model_from_proto(legacy)
    sent = model_to_proto(replace(state, platform="xgboost"))
    assert (sent.model_type, sent.model_platform) == (apis.MODEL_TYPE_UNSPECIFIED, "xgboost")
    assert model_to_proto(state) == legacy
