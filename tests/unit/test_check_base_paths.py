"""`check-config --online`, model base paths: each one listed with its versions, or one line saying what is wrong."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from bot.checks import check_base_paths
from bot.core.signatures import Signature
from bot.settings import ModelSettings
from tests.savedmodel_files import write_saved_model


class UnreadableCatalog:
    """A catalog whose storage refuses to list anything, as an object store without credentials does."""

    def versions(self, base_path: str) -> tuple[int, ...]:
        raise PermissionError(13, "Permission denied", base_path)

    def signature(self, base_path: str, version: int) -> Signature | None:
        return None

    def metadata(self, base_path: str, version: int) -> Mapping[str, Any]:
        return {}


def models(**base_paths: str) -> dict[str, ModelSettings]:
    return {name: ModelSettings(name, path) for name, path in base_paths.items()}


def test_local_base_path_lists_its_versions(tmp_path: Path) -> None:
    """A base path with version directories holding saved_model.pb gives an OK line listing them."""
    write_saved_model(tmp_path / "m" / "1")
    write_saved_model(tmp_path / "m" / "3")
    found = check_base_paths(models(fraud_detector=str(tmp_path / "m")))
    assert found.problems == []
    assert found.ok == [f"models OK: fraud_detector: versions 1, 3 in {tmp_path / 'm'}"]


def test_base_path_without_versions_is_a_problem(tmp_path: Path) -> None:
    """A base path with no version directory is named: TF Serving would have nothing to load."""
    (tmp_path / "m" / "v1").mkdir(parents=True)
    found = check_base_paths(models(fraud_detector=str(tmp_path / "m")))
    assert found.ok == []
    assert found.problems == [
        f"models.fraud_detector.base_path: no version in {tmp_path / 'm'} (a directory named by a number,"
        " holding saved_model.pb)"
    ]


@pytest.mark.parametrize(("uri", "extra"), [("s3://bucket/fraud", "s3"), ("gs://bucket/fraud", "gcs")])
def test_object_store_without_fsspec_names_the_extra(monkeypatch: pytest.MonkeyPatch, uri: str, extra: str) -> None:
    """s3:// and gs:// base paths without fsspec installed say which extra of modelbot to install."""
    monkeypatch.setitem(sys.modules, "fsspec", None)  # `import fsspec` raises ImportError, installed or not
    found = check_base_paths(models(fraud_detector=uri))
    scheme = uri.partition(":")[0]
    assert found.problems == [
        f"models.fraud_detector.base_path: {scheme}:// base paths need fsspec: pip install 'modelbot[{extra}]'"
    ]


def test_unreadable_base_path_is_named_with_the_reason() -> None:
    """A base path the storage refuses to list is one line with the setting, the path and the reason."""
    found = check_base_paths(models(fraud_detector="s3://bucket/fraud"), UnreadableCatalog())
    assert found.problems == [
        "models.fraud_detector.base_path: cannot list s3://bucket/fraud: [Errno 13]"
        " Permission denied: 's3://bucket/fraud'"
    ]


def test_every_model_is_checked(tmp_path: Path) -> None:
    """One model's problem does not hide another's OK line (and the other way round)."""
    write_saved_model(tmp_path / "good" / "2")
    (tmp_path / "empty").mkdir()
    found = check_base_paths(models(good=str(tmp_path / "good"), empty=str(tmp_path / "empty")))
    assert found.ok == [f"models OK: good: versions 2 in {tmp_path / 'good'}"]
    assert len(found.problems) == 1 and found.problems[0].startswith("models.empty.base_path: no version in")
