"""The emulator's filesystem-source rules (which version directories a model aspires to) and its version policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format  # type: ignore[import-untyped]  # protobuf ships no stubs

from bot.devstack.serving.discovery import AspiredVersion, ServableToMonitor, VersionPolicy, parse_version, poll_config
from bot.devstack.serving.discovery import poll_servable as poll
from bot.devstack.serving.policy import Action, HarnessState, VersionSnapshot, next_action
from bot.devstack.serving.status import Code, TfError

NEW, READY, LOADING = HarnessState.NEW, HarnessState.READY, HarnessState.LOADING


def _model(base: Path, *children: str) -> ServableToMonitor:
    base.mkdir(parents=True, exist_ok=True)
    for child in children:
        (base / child).mkdir()
    return ServableToMonitor("m", str(base), VersionPolicy())


def _with(servable: ServableToMonitor, policy_text: str) -> ServableToMonitor:
    policy = VersionPolicy()
    text_format.Parse(policy_text, policy)
    return ServableToMonitor(servable.name, servable.base_path, policy)


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("1", 1),
        ("00000123", 123),
        (" 7 ", 7),
        ("+5", 5),
        ("-2", -2),
        ("v1", None),
        ("1.0", None),
        ("1_0", None),
        ("", None),
        ("99999999999999999999", None),
    ],
)
def test_version_numbers_follow_simple_atoi(name: str, version: int | None) -> None:
    """Directory names parse like absl::SimpleAtoi into int64; anything else is not a version."""
    assert parse_version(name) == version


def test_default_policy_is_the_single_highest_version(tmp_path: Path) -> None:
    """No policy means latest with one version; non-numeric names are ignored and leading zeros kept in the path."""
    servable = _model(tmp_path / "m", "1", "0003", "v9", "tmp.10")
    assert poll(servable) == [AspiredVersion(3, f"{tmp_path}/m/0003")]


def test_latest_n_and_num_versions_zero(tmp_path: Path) -> None:
    """latest{n} takes the n highest numbers; num_versions 0 counts as 1."""
    servable = _model(tmp_path / "m", "1", "2", "3")
    assert [a.version for a in poll(_with(servable, "latest { num_versions: 2 }"))] == [3, 2]
    assert [a.version for a in poll(_with(servable, "latest { num_versions: 0 }"))] == [3]


def test_all_policy_takes_every_numeric_child(tmp_path: Path) -> None:
    """all{} aspires every numeric child, in ascending order."""
    servable = _model(tmp_path / "m", "2", "10", "x")
    assert [a.version for a in poll(_with(servable, "all {}"))] == [2, 10]


def test_specific_policy_fast_and_listing_paths(tmp_path: Path) -> None:
    """specific{} uses the plain-number path when all exist, else lists the directory and keeps what exists."""
    servable = _model(tmp_path / "m", "1", "002")
    assert poll(_with(servable, "specific { versions: 1 }")) == [AspiredVersion(1, f"{tmp_path}/m/1")]
    mixed = poll(_with(servable, "specific { versions: 1 versions: 2 versions: 9 }"))
    assert mixed == [AspiredVersion(1, f"{tmp_path}/m/1"), AspiredVersion(2, f"{tmp_path}/m/002")]
    assert poll(_with(servable, "specific { versions: 9 }")) == []
    assert poll(_with(servable, "specific { }")) == []


def test_no_numeric_directory_is_an_empty_aspired_list(tmp_path: Path) -> None:
    """A model stored directly at base_path (no /1/) aspires nothing, which unloads whatever it had."""
    servable = _model(tmp_path / "m")
    (tmp_path / "m" / "saved_model.pb").write_bytes(b"")
    assert poll(servable) == []


def test_missing_base_path_aborts_the_whole_poll(tmp_path: Path) -> None:
    """One missing base path fails the poll for every model, with TF Serving's message."""
    present = _model(tmp_path / "ok", "1")
    missing = ServableToMonitor("gone", str(tmp_path / "gone"), VersionPolicy())
    with pytest.raises(TfError) as raised:
        poll_config([present, missing])
    assert raised.value.status.code == Code.INVALID_ARGUMENT
    assert raised.value.status.message == (
        f"Could not find base path {tmp_path}/gone for servable gone with error NOT_FOUND: {tmp_path}/gone not found"
    )


def test_object_store_uris_have_no_filesystem_here() -> None:
    """An s3:// base path cannot be listed by the emulator: the poll fails as for a missing path."""
    with pytest.raises(TfError, match="File system scheme 's3' not implemented"):
        poll(ServableToMonitor("m", "s3://bucket/m", VersionPolicy()))


@pytest.mark.parametrize(
    ("versions", "expected"),
    [
        # New version 2 loads while 1 keeps serving (load before unload).
        ([VersionSnapshot(1, READY, False), VersionSnapshot(2, NEW, True)], (Action.LOAD, 2)),
        # Once 2 is READY the unaspired 1 unloads.
        ([VersionSnapshot(1, READY, False), VersionSnapshot(2, READY, True)], (Action.UNLOAD, 1)),
        # 2 still loading: keep 1.
        ([VersionSnapshot(1, READY, False), VersionSnapshot(2, LOADING, True)], None),
        # Nothing aspired: unload, lowest first.
        ([VersionSnapshot(3, READY, False), VersionSnapshot(1, READY, False)], (Action.UNLOAD, 1)),
        # Two unaspired READY versions: one may go even though the aspired one is not ready.
        (
            [VersionSnapshot(1, READY, False), VersionSnapshot(2, READY, False), VersionSnapshot(3, NEW, True)],
            (Action.UNLOAD, 1),
        ),
        # Highest new aspired version first.
        ([VersionSnapshot(1, NEW, True), VersionSnapshot(3, NEW, True)], (Action.LOAD, 3)),
    ],
)
def test_availability_preserving_policy(versions: list[VersionSnapshot], expected: tuple[Action, int] | None) -> None:
    """One action per model, chosen so that the model never stops serving during a version change."""
    assert next_action(versions) == expected
