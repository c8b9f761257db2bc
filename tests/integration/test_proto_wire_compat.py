"""The hand-written protos in bot/serving/protos match TensorFlow / TF Serving's real ones on the wire."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.core.desired import FleetConfig, ModelState, VersionPolicy
from bot.serving.config_proto import from_proto, to_proto, write_model_config_file
from tests.integration.describe_protos import OURS, dump
from tests.model_config_corpus import corpus_names, corpus_text, parsed

pytestmark = pytest.mark.tensorflow
ROOT = Path(__file__).resolve().parents[2]

# ssl_config.proto is not shipped in the tensorflow-serving-api wheel (reference §6): checked by hand.
SSL_CONFIG = {"server_key": (1, 9), "server_cert": (2, 9), "custom_ca": (3, 9), "client_verify": (4, 8)}
SERVER_CONFIG = "tensorflow.serving.ModelServerConfig"
# Parses each text-format file with TF Serving's own ModelServerConfig; prints its binary form, hex, one a line.
PARSE_WITH_REAL_PROTO = (
    "import sys\nfrom google.protobuf import text_format\n"
    "from tensorflow_serving.config import model_server_config_pb2 as m\n"
    "for path in sys.argv[1:]:\n"
    "    c = text_format.Parse(open(path).read(), m.ModelServerConfig())\n"
    "    print(c.SerializeToString(deterministic=True).hex())\n"
)


@pytest.fixture(scope="module")
def real() -> dict[str, Any]:
    pytest.importorskip("tensorflow_serving")
    script = ROOT / "tests" / "integration" / "describe_protos.py"  # imports only the real modules
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


@pytest.fixture(scope="module")
def ours() -> dict[str, Any]:
    return dump(OURS)


def test_every_message_field_matches(ours: dict[str, Any], real: dict[str, Any]) -> None:
    """Each of our fields has the real field's name, number, type, label, type name, oneof and packing."""
    mismatches = []
    for name, fields in ours["messages"].items():
        if name == "tensorflow.serving.SSLConfig":
            continue
        if name not in real["messages"]:
            mismatches.append(f"{name}: no such message upstream")
            continue
        for field_name, spec in fields.items():
            upstream = real["messages"][name].get(field_name)
            if upstream != spec:
                mismatches.append(f"{name}.{field_name}: ours {spec} upstream {upstream}")
    assert mismatches == []


def test_every_enum_value_matches(ours: dict[str, Any], real: dict[str, Any]) -> None:
    """Each of our enum values exists upstream with the same number."""
    mismatches = [
        f"{enum}.{value}={number} upstream {real['enums'].get(enum, {}).get(value)}"
        for enum, values in ours["enums"].items()
        for value, number in values.items()
        if real["enums"].get(enum, {}).get(value) != number
    ]
    assert mismatches == []


def test_service_methods_match(ours: dict[str, Any], real: dict[str, Any]) -> None:
    """Method paths and request/response types are the real ones (so /tensorflow.serving.X/Y routes)."""
    for service, methods in ours["services"].items():
        for method, types in methods.items():
            assert real["services"][service][method] == types, f"{service}/{method}"


def test_the_whole_model_server_config_is_ours(ours: dict[str, Any], real: dict[str, Any]) -> None:
    """Every message and enum ModelServerConfig contains upstream (logging configs included) has all its fields
    and values in ours, so an adopted config never loses a field it could hold (issue 8)."""
    reachable, todo = set(), [SERVER_CONFIG]
    while todo:
        name = todo.pop()
        if name in reachable or name.startswith("google.protobuf."):  # Any: a well-known type, kept whole
            continue
        reachable.add(name)
        todo += [spec["type_name"] for spec in real["messages"].get(name, {}).values() if spec["type_name"]]
    assert "tensorflow.serving.PerTaskSamplingConfig" in reachable  # the walk reaches the logging configs
    for name in sorted(reachable):
        if name in real["enums"]:
            assert ours["enums"].get(name) == real["enums"][name], name
        else:
            assert ours["messages"].get(name) == real["messages"][name], name
    attributes = "tensorflow.serving.SamplingConfig.Attributes"  # a nested enum no field refers to
    assert ours["enums"][attributes] == real["enums"][attributes]


def test_the_comparison_covers_what_the_bot_uses(ours: dict[str, Any]) -> None:
    """Guard against a vacuous pass: the messages the bot sends and reads are in the comparison."""
    for name in (
        "tensorflow.serving.ModelServerConfig",
        "tensorflow.serving.ModelConfig",
        "tensorflow.serving.LoggingConfig",
        "tensorflow.serving.SamplingConfig",
        "tensorflow.serving.PerTaskSamplingConfig",
        "tensorflow.serving.LogCollectorConfig",
        "tensorflow.serving.ReloadConfigRequest",
        "tensorflow.serving.GetModelStatusResponse",
        "tensorflow.serving.GetModelMetadataResponse",
        "tensorflow.SavedModel",
        "tensorflow.SignatureDef",
    ):
        assert ours["messages"][name]
    assert set(ours["services"]) == {"tensorflow.serving.ModelService", "tensorflow.serving.PredictionService"}


def test_ssl_config_matches_the_reference(ours: dict[str, Any]) -> None:
    """SSLConfig (not in the pip wheel) has the field numbers and types of config/ssl_config.proto."""
    fields = ours["messages"]["tensorflow.serving.SSLConfig"]
    assert {k: (v["number"], v["type"]) for k, v in fields.items()} == SSL_CONFIG


def test_written_models_config_parses_with_the_real_proto(tmp_path: Path) -> None:
    """The models.config the bot writes is read by TF Serving's own ModelServerConfig text parser."""
    config = FleetConfig(
        models=(
            ModelState("fd", "/models/fd", policy=VersionPolicy.specific([1, 2]), labels=(("stable", 2),)),
            ModelState("other", "gs://b/other", policy=VersionPolicy(kind="latest", num_versions=2)),
        )
    )
    path = tmp_path / "models.config"
    write_model_config_file(path, config)
    assert _parse_with_real_proto([path]) == [to_proto(config).SerializeToString(deterministic=True)]


def test_corpus_reads_the_same_with_the_real_proto_and_is_written_back_losslessly(tmp_path: Path) -> None:
    """Each corpus file parses to the same bytes with TF Serving's protos as with ours (nothing unknown to us), and
    the file the bot writes after adopting it parses, with TF Serving's protos, to exactly what the bot sends."""
    originals, written, sent = [], [], []
    for name in corpus_names():
        original = tmp_path / f"{name}.config"
        original.write_text(corpus_text(name))
        adopted = from_proto(parsed(original.read_text()))
        write_model_config_file(tmp_path / f"{name}.written", adopted)
        originals.append(original)
        written.append(tmp_path / f"{name}.written")
        sent.append(to_proto(adopted).SerializeToString(deterministic=True))
    real_originals = _parse_with_real_proto(originals)
    assert real_originals == [parsed(p.read_text()).SerializeToString(deterministic=True) for p in originals]
    assert _parse_with_real_proto(written) == sent


def _parse_with_real_proto(paths: list[Path]) -> list[bytes]:
    args = [sys.executable, "-c", PARSE_WITH_REAL_PROTO, *map(str, paths)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [bytes.fromhex(line) for line in proc.stdout.split()]
