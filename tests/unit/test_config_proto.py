"""FleetConfig <-> ModelServerConfig and the models.config text file tensorflow_model_server reads."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from bot.core.desired import FleetConfig, ModelState, VersionPolicy
from bot.core.errors import ConfigError
from bot.serving.config_proto import (
    from_proto,
    from_text,
    read_model_config_file,
    to_proto,
    to_text,
    write_model_config_file,
)

FD = ModelState(
    name="fraud_detector",
    base_path="/models/fraud_detector",
    policy=VersionPolicy.specific([42, 43]),
    labels=(("canary", 43), ("stable", 42)),
)
OTHER = ModelState(name="churn", base_path="s3://bucket/churn", policy=VersionPolicy(kind="latest", num_versions=2))
CONFIG = FleetConfig(models=(OTHER, FD))

# The file as TF Serving's own docs write it (g3doc/serving_config.md), single quotes included.
DOCS_STYLE = """
model_config_list {
  config {
    name: 'fraud_detector'
    base_path: '/models/fraud_detector'
    model_platform: 'tensorflow'
    model_version_policy {
      specific {
        versions: 42
        versions: 43
      }
    }
    version_labels {
      key: 'stable'
      value: 42
    }
    version_labels {
      key: 'canary'
      value: 43
    }
  }
}
"""

EXPECTED_FD_TEXT = """  config {
    name: "fraud_detector"
    base_path: "/models/fraud_detector"
    model_platform: "tensorflow"
    model_version_policy {
      specific {
        versions: 42
        versions: 43
      }
    }
    version_labels {
      key: "canary"
      value: 43
    }
    version_labels {
      key: "stable"
      value: 42
    }
  }
"""


def test_round_trip_keeps_every_model_policy_and_label() -> None:
    """to_proto then from_proto gives back the same served config for every policy kind."""
    everything = CONFIG.with_model(ModelState(name="all", base_path="/m/all", policy=VersionPolicy(kind="all")))
    assert from_proto(to_proto(everything)) == everything


def test_proto_fields() -> None:
    """Labels go to version_labels, the policy to model_version_policy, the platform is tensorflow."""
    model = to_proto(CONFIG).model_config_list.config[1]
    assert model.name == "fraud_detector"
    assert model.model_platform == "tensorflow"
    assert list(model.model_version_policy.specific.versions) == [42, 43]
    assert dict(model.version_labels) == {"stable": 42, "canary": 43}


def test_empty_specific_is_explicit() -> None:
    """`specific {}` (serve nothing) must not collapse into an unset policy, which TF Serving reads as latest."""
    empty = FleetConfig(models=(ModelState(name="m", base_path="/m", policy=VersionPolicy.specific(())),))
    model = to_proto(empty).model_config_list.config[0]
    assert model.model_version_policy.WhichOneof("policy_choice") == "specific"
    assert from_proto(to_proto(empty)) == empty


def test_empty_fleet_is_an_empty_list_not_an_unset_config() -> None:
    """An unset config is INVALID_ARGUMENT on reload; an empty model_config_list is valid."""
    assert to_proto(FleetConfig()).WhichOneof("config") == "model_config_list"


def test_unset_policy_reads_as_latest_one() -> None:
    """A config file without model_version_policy means "serve the highest version" (reference §2)."""
    config = from_text("model_config_list { config { name: 'm' base_path: '/m' model_platform: 'tensorflow' } }")
    assert config.models[0].policy == VersionPolicy(kind="latest", num_versions=1)


def test_text_uses_snake_case_field_names() -> None:
    """The written text is exactly the config a TF Serving config file holds."""
    text = to_text(FleetConfig(models=(FD,)))
    assert text.splitlines()[0].startswith("#")  # a comment, which TF Serving's text parser skips
    assert "model_config_list {\n" + EXPECTED_FD_TEXT + "}\n" in text


def test_docs_style_file_parses() -> None:
    """A models.config written by hand the way TF Serving's docs show reads back into the same state."""
    assert from_text(DOCS_STYLE) == FleetConfig(models=(FD,))


def test_write_is_atomic_and_readable(tmp_path: Path) -> None:
    """The file is replaced in one rename, leaves no temp file, and is readable by the serving processes."""
    path = tmp_path / "serving" / "models.config"
    write_model_config_file(path, CONFIG)
    write_model_config_file(path, FleetConfig(models=(FD,)))
    assert read_model_config_file(path) == FleetConfig(models=(FD,))
    assert [p.name for p in path.parent.iterdir()] == ["models.config"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_bad_files_give_config_errors(tmp_path: Path) -> None:
    """Unparsable text, duplicate names, custom_model_config and a missing file are all ConfigErrors."""
    with pytest.raises(ConfigError, match="text format"):
        from_text("model_config_list { config { nam: 'x' } }")
    with pytest.raises(ConfigError, match="more than once"):
        from_text("model_config_list { config { name: 'a' } config { name: 'a' } }")
    with pytest.raises(ConfigError, match="model_config_list"):
        from_text("custom_model_config { }")
    with pytest.raises(ConfigError, match="cannot read"):
        read_model_config_file(tmp_path / "missing.config")
