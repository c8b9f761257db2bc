"""Realistic models.config files a fleet may have been started with, and a field-by-field proto comparison.

The files live in tests/data/model_configs/ with "{models_root}" where the models directory goes; `large_config`
generates a 1,000-model one. modelbot manages only `fraud_detector` (MANAGED); every other model belongs to
someone else and must reach the fleet exactly as adopted (issue 8).
"""

from __future__ import annotations

import struct
from pathlib import Path

from google.protobuf import text_format, unknown_fields  # type: ignore[import-untyped]  # protobuf ships no stubs
from google.protobuf.message import Message

from bot.serving.protos import tfs_apis_pb2

CORPUS_DIR = Path(__file__).resolve().parent / "data" / "model_configs"
MODELS_ROOT = "{models_root}"
MANAGED = "fraud_detector"
LARGE = "large_1000"
CUSTOM_PLATFORMS = "tensorflow,xgboost,tensorflow_text"  # what the build in platforms.config registers


def corpus_names() -> list[str]:
    return [*sorted(p.stem for p in CORPUS_DIR.glob("*.config")), LARGE]


def corpus_text(name: str, models_root: str = "/models") -> str:
    """One corpus file (or the generated large one) with "{models_root}" replaced."""
    text = large_config() if name == LARGE else (CORPUS_DIR / f"{name}.config").read_text()
    return text.replace(MODELS_ROOT, models_root)


def parsed(text: str) -> tfs_apis_pb2.ModelServerConfig:
    config = tfs_apis_pb2.ModelServerConfig()
    text_format.Parse(text, config)
    return config


def large_config(n: int = 1000) -> str:
    """n models: the managed one plus n-1 others mixing every policy kind, labels and logging configs."""
    entries = [
        f'name: "{MANAGED}" base_path: "{MODELS_ROOT}/{MANAGED}" model_platform: "tensorflow" '
        'model_version_policy { specific { versions: 3 } } version_labels { key: "stable" value: 3 }'
    ]
    policies = ("specific { versions: 2 versions: 3 }", "specific { versions: 3 }", "latest { num_versions: 2 }", "")
    for i in range(1, n):
        parts = [f'name: "team{i % 37:02d}_model{i:04d}"', f'base_path: "{MODELS_ROOT}/{MANAGED}"']
        parts.append('model_platform: "tensorflow"' if i % 11 else "model_type: TENSORFLOW")
        policy = "all {}" if i % 50 == 7 else policies[i % len(policies)]
        if policy:
            parts.append(f"model_version_policy {{ {policy} }}")
        if i % 4 == 0:
            parts.append('version_labels { key: "stable" value: 3 } version_labels { key: "canary" value: 2 }')
        if i % 3 == 0:
            parts.append(
                f'logging_config {{ log_collector_config {{ type: "file" filename_prefix: "/logs/m{i}" }} '
                f"sampling_config {{ sampling_rate: {1 / (i + 1)!r} attributes: {i % 4} }} }}"
            )
        entries.append(" ".join(parts))
    return "model_config_list {\n" + "".join(f"  config {{ {e} }}\n" for e in entries) + "}\n"


def field_diff(a: Message, b: Message, path: str = "") -> list[str]:
    """Every field path where two messages differ: presence, scalars (bit for bit), repeated and map fields,
    sub-messages recursively (ModelConfig lists keyed by name, in any order), and unknown fields. Empty: equal."""
    diffs: list[str] = []
    for field in a.DESCRIPTOR.fields:
        where = f"{path}{field.name}"
        left, right = getattr(a, field.name), getattr(b, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            if dict(left) != dict(right):
                diffs.append(where)
        elif field.is_repeated and field.message_type is not None:
            diffs += _repeated_diff(list(left), list(right), where)
        elif field.is_repeated:
            if [_bits(v) for v in left] != [_bits(v) for v in right]:
                diffs.append(where)
        elif field.has_presence and a.HasField(field.name) != b.HasField(field.name):
            diffs.append(where)
        elif field.message_type is not None:
            diffs += field_diff(left, right, where + ".")
        elif _bits(left) != _bits(right):
            diffs.append(where)
    if _unknown(a) != _unknown(b):
        diffs.append(f"{path}<unknown fields>")
    return diffs


def _unknown(message: Message) -> list[tuple[int, int, object]]:
    """The message's own unknown fields (those of its sub-messages are compared where they are)."""
    return [(f.field_number, f.wire_type, f.data) for f in unknown_fields.UnknownFieldSet(message)]


def _repeated_diff(left: list[Message], right: list[Message], where: str) -> list[str]:
    if left and right and all(isinstance(m, tfs_apis_pb2.ModelConfig) for m in left + right):
        # TF Serving keys the list by name (a name twice is illegal); the bot writes it in name order.
        mine, theirs = {m.name: m for m in left}, {m.name: m for m in right}
        missing = [f"{where}[{name}]" for name in sorted(set(mine) ^ set(theirs))]
        both = sorted(set(mine) & set(theirs))
        return missing + [d for name in both for d in field_diff(mine[name], theirs[name], f"{where}[{name}].")]
    if len(left) != len(right):
        return [f"{where}[len]"]
    return [d for i, (x, y) in enumerate(zip(left, right, strict=True)) for d in field_diff(x, y, f"{where}[{i}].")]


def _bits(value: object) -> object:
    """Floats compared bit for bit (nan equals nan, 0.0 differs from -0.0)."""
    return struct.pack("<d", value) if isinstance(value, float) else value
