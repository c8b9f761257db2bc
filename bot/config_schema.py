"""The strict shape of modelbot.yaml (pydantic), the YAML reader both config files share, and pydantic's errors
turned into our problem lines: a dotted path, what is wrong, and a did-you-mean.

Strict on purpose: `slack: {audit_chanel: C1}` used to load without a word and silently switch the audit mirror off.
Every mapping forbids unknown keys, a key written twice is reported (YAML would keep only the last), and values
must have the type YAML gives them (no "2" for 2). bot/settings.py builds the runtime Settings from the result;
bot/policy_file.py does the same for permissions.yaml with the building blocks here.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from fnmatch import fnmatch
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Self, Union, get_args, get_origin

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic import WithJsonSchema as JsonSchema
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bot.core.durations import parse_duration as core_parse_duration
from bot.core.errors import ConfigError

_MERGE_TAG = "tag:yaml.org,2002:merge"
_EXPONENT = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)[eE][-+]?\d+")

# --- reading YAML


def read_yaml(path: Path) -> tuple[Any, list[str]]:
    """Parse one YAML file: (data, a problem per duplicate key with its dotted path); ConfigError if unreadable."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, ["file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [f"cannot read the file: {exc}"]) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, []
        duplicates = _duplicates(node, (), set())
        return loader.construct_document(node), duplicates
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"not valid YAML: {' '.join(str(exc).split())}"]) from None
    finally:
        loader.dispose()


def _duplicates(node: Node, path: tuple[object, ...], walked: set[int]) -> list[str]:
    """Walk the node tree before construction, where a repeated key is still visible."""
    if id(node) in walked:  # an alias of an anchor already walked (or a recursive one)
        return []
    walked.add(id(node))
    found: list[str] = []
    if isinstance(node, MappingNode):
        first_line: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            child = path
            if isinstance(key_node, ScalarNode) and key_node.tag != _MERGE_TAG:  # `<<:` merges may be overridden
                child = (*path, key_node.value)
                key, line = (key_node.tag, key_node.value), key_node.start_mark.line + 1
                if key in first_line:
                    found.append(
                        f"{dotted(child)}: duplicate key on line {line} (first on line {first_line[key]});"
                        " YAML keeps only the last, so merge the two entries"
                    )
                else:
                    first_line[key] = line
            found += _duplicates(value_node, child, walked)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            found += _duplicates(item, (*path, index), walked)
    return found


# --- value types shared by both files


def parse_duration(value: object) -> timedelta:
    """`30m`, `2h`, `90s`, `1h30m`, `1d` -> timedelta; ValueError otherwise."""
    found = core_parse_duration(value)
    if found is None:
        raise ValueError(f"must be a duration like 30m, 2h, 90s or 1h30m, not {value!r}")
    return found


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


def _yaml_float(value: object) -> object:
    """PyYAML (YAML 1.1) reads `1e-4` as a string; accept the exponent form it misses, nothing else."""
    return float(value) if isinstance(value, str) and _EXPONENT.fullmatch(value) else value


_DURATION_JSON = JsonSchema(
    {"type": "string", "pattern": r"^(\d+d)?(\d+h)?(\d+m)?(\d+s)?$", "examples": ["30m", "1h30m"]}
)
Duration = Annotated[timedelta, BeforeValidator(parse_duration), _DURATION_JSON]
PositiveDuration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive), _DURATION_JSON]
Seconds = Annotated[float, BeforeValidator(_yaml_float), Field(gt=0)]
Text = Annotated[str, Field(min_length=1)]


class StrictSection(BaseModel):
    """A mapping of the config files: unknown keys are errors and YAML types are taken as they are."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, protected_namespaces=())


# --- modelbot.yaml (DESIGN.md §2)


class SlackSection(StrictSection):
    audit_channel: Text | None = Field(None, description="channel id that mirrors every audit row")
    incident_channel: Text | None = Field(None, description="channel id for executed changes and failures")
    approval_channel: Text | None = Field(None, description="channel id for approval cards (default for every model)")
    notify_approvers: Literal["dm", "none"] | None = Field(None, description="dm: DM each approver a link to the card")


class TlsSection(StrictSection):
    ca_cert: Text = Field(description="CA that signed the replicas' certificates (relative to this file)")
    client_cert: Text | None = Field(None, description="the bot's client certificate (goes with client_key)")
    client_key: Text | None = Field(None, description="the bot's client key (goes with client_cert)")
    server_name: Text | None = Field(None, description="name in the server certificate when targets are IPs")

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> Self:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together")
        return self


class ServingSection(StrictSection):
    targets: list[Text] = Field(min_length=1, description="host:port or dns:///name:port (every address a replica)")
    tls: TlsSection
    model_config_file: Text | None = Field(None, description="text-proto file the bot writes for restarted replicas")
    rpc_timeout_s: Seconds = 10.0
    converge_timeout_s: Seconds = 300.0
    status_poll_interval_s: Seconds = 0.05
    drift_check_interval_s: Seconds = Field(60.0, description="serve compares replicas with the desired state")


class SmokeTestSection(StrictSection):
    request: Text = Field(description="golden PredictRequest inputs (REST JSON), relative to this file")
    expect: Text | None = Field(None, description="expected outputs (REST JSON); without it: keys, dtypes, shapes")
    tolerance: Annotated[float, BeforeValidator(_yaml_float), Field(ge=0)] = 1e-4
    timeout_s: Seconds = Field(2.0, description="deadline of each replica's Predict call")


class AutoRollbackSection(StrictSection):
    on_alerts: list[Text] = Field(min_length=1, description="alert names that trigger an automatic rollback")
    to: Literal["last_known_good"] = "last_known_good"
    min_firing: Duration = Field(timedelta(0), json_schema_extra={"default": "0s"})
    cooldown: Duration = Field(timedelta(minutes=15), json_schema_extra={"default": "15m"})
    max_per_hour: int = Field(1, ge=0)
    min_stable: Duration = Field(
        timedelta(minutes=30),
        json_schema_extra={"default": "30m"},
        description="last_known_good: the newest other version that was stable at least this long"
        " (a period that ended in a rollback does not count)",
    )


class PagerDutySection(StrictSection):
    model_field: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")] = Field(
        "service.summary", description="dotted path in the webhook's event.data naming the model"
    )
    models: dict[Text, Text] = Field(
        default_factory=dict, description="value of model_field -> model name, when the two differ"
    )


class AlertsSection(StrictSection):
    pagerduty: PagerDutySection | None = None


class ModelSection(StrictSection):
    base_path: Text = Field(description="absolute path, path relative to this file, or s3:// gs:// URI")
    routing: Literal["labels", "latest"] = "labels"
    keep_warm: int = Field(1, ge=0, description="previous stable versions kept loaded for instant rollback")
    label: Text = Field("stable", description="the version label a rollback moves (routing: labels)")
    incident_channel: Text | None = None
    approval_channel: Text | None = None
    notify_approvers: Literal["dm", "none"] | None = None
    smoke_test: SmokeTestSection | None = None
    auto_rollback: AutoRollbackSection | None = None


class ModelbotFile(StrictSection):
    """modelbot.yaml: Slack channels, the TF Serving fleet, and the models the bot manages."""

    model_config = ConfigDict(title="modelbot.yaml")

    slack: SlackSection | None = None
    serving: ServingSection
    models: dict[Text, ModelSection] = Field(min_length=1)
    alerts: AlertsSection | None = None


def modelbot_json_schema() -> dict[str, Any]:
    """JSON Schema of modelbot.yaml, for editors (`modelbot check-config --schema`)."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **ModelbotFile.model_json_schema()}


# --- pydantic's errors as our problem lines

# Friendlier words than pydantic's for a value of the wrong type or out of range, by dotted path.
_WRONG = {
    "serving.targets": "give a list of host:port or dns:///name:port",
    "serving.*_s": "must be a positive number of seconds",
    "models": "list at least one model",
    "models.*.keep_warm": "must be a whole number >= 0",
}
_MISSING = {
    "serving.tls": "a mapping with ca_cert at least: the admin channel is always TLS",
    "models": "list at least one model",
}
_KINDS = {
    "string_type": "a string",
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "timedelta_type": "a duration like 30m",
    "time_type": "a time like 16:00",
}


def schema_problems(exc: ValidationError, schema: type[BaseModel]) -> list[str]:
    """One line per pydantic error, in the file's vocabulary: `slack.audit_chanel: unknown key (did you mean ...)`."""
    return [_problem(dict(error), schema) for error in exc.errors(include_url=False)]


def did_you_mean(word: object, candidates: Iterable[str]) -> str:
    match = difflib.get_close_matches(str(word), list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def dotted(loc: Sequence[object]) -> str:
    """('models', 'm', 'keep_warm') -> models.m.keep_warm; list indexes as [0]."""
    text = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or "top level"


def path_of(problem: str) -> str | None:
    """The dotted path a problem line starts with, if it starts with one."""
    head, sep, _ = problem.partition(": ")
    return head if sep and " " not in head else None


def _problem(error: dict[str, Any], schema: type[BaseModel]) -> str:
    loc, kind = tuple(error["loc"]), str(error["type"])
    if loc and loc[-1] == "[key]":
        return f"{dotted(loc[:-2])}: key {loc[-2]!r} must be a string (quote it)"
    where = dotted(loc)
    if kind == "extra_forbidden":
        known = _keys_at(schema, loc[:-1])
        return f"{where}: unknown key{did_you_mean(loc[-1], known) or ' (expected ' + ', '.join(known) + ')'}"
    if kind == "missing":
        hint = _hint(_MISSING, where)
        return f"{where}: required" + (f" ({hint})" if hint else "")
    if kind == "value_error":
        return f"{where}: {str(error['msg']).removeprefix('Value error, ')}"
    return f"{where}: {_wrong_value(error, schema)}"


def _wrong_value(error: dict[str, Any], schema: type[BaseModel]) -> str:
    """A value of the wrong type or out of range: what it must be, what it is, and a did-you-mean for a choice."""
    loc, kind, given = tuple(error["loc"]), str(error["type"]), error.get("input")
    not_given = f", not {_short(given)}"
    if kind == "list_type" and isinstance(given, str):
        not_given += f" (one entry is written [{given}])"
    hint = _hint(_WRONG, dotted(loc))
    if hint:
        return f"{hint}{not_given}"
    if kind == "literal_error":
        choices = [str(c) for c in get_args(_type_at(schema, loc))]
        return f"must be {error['ctx']['expected']}{not_given}{did_you_mean(given, choices)}"
    return f"{_constraint(kind, error.get('ctx') or {}, str(error['msg']))}{not_given}"


def _constraint(kind: str, ctx: Mapping[str, Any], message: str) -> str:
    if kind in _KINDS:
        return f"must be {_KINDS[kind]}"
    words = {
        "greater_than": f"must be greater than {ctx.get('gt')}",
        "greater_than_equal": f"must be {ctx.get('ge')} or more",
        "too_short": "must not be empty",
        "string_too_short": "must not be empty",
    }
    return words.get(kind, message[:1].lower() + message[1:])


def _hint(table: Mapping[str, str], where: str) -> str:
    return next((text for pattern, text in table.items() if fnmatch(where, pattern)), "")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _keys_at(schema: type[BaseModel], loc: Sequence[object]) -> list[str]:
    section = _type_at(schema, loc)
    if isinstance(section, type) and issubclass(section, BaseModel):
        return [field.alias or name for name, field in section.model_fields.items()]
    return []


def _type_at(schema: type[BaseModel], loc: Sequence[object]) -> Any:
    """The declared type at a location of the schema (through sections, mappings and lists)."""
    current: Any = schema
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {field.alias or name: field for name, field in current.model_fields.items()}
            if part not in fields:
                return None
            current = fields[str(part)].annotation
        elif get_origin(current) in (dict, list):
            current = get_args(current)[-1]
        else:
            return None
    return _unwrap(current)


def _unwrap(kind: Any) -> Any:
    """Annotated[X, ...] -> X and X | None -> X."""
    while True:
        origin = get_origin(kind)
        if origin is Annotated:
            kind = get_args(kind)[0]
        elif origin in (Union, UnionType) and len(options := [a for a in get_args(kind) if a is not type(None)]) == 1:
            kind = options[0]
        else:
            return kind
