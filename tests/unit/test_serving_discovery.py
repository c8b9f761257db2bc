"""LocalCatalog (bot/serving/discovery.py): versions, signatures and metadata found the way TF Serving finds them."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from bot.core.errors import ConfigError
from bot.core.signatures import TensorSpec
from bot.serving.discovery import LocalCatalog
from bot.serving.protos import tf_framework_pb2 as fw
from tests.savedmodel_files import signature_def, tensor_info, write_saved_model


@pytest.fixture
def base(tmp_path: Path) -> Path:
    root = tmp_path / "fraud_detector"
    write_saved_model(root / "1")
    write_saved_model(root / "0002")  # leading zeros are fine (reference §5)
    write_saved_model(root / "v3")  # not numeric: ignored
    write_saved_model(root / "1.0")  # not an integer: ignored
    (root / "4").mkdir()  # numeric but no saved_model.pb (a half-copied export)
    (root / "5").write_text("a file, not a directory")
    return root


def test_versions_are_numeric_dirs_with_a_saved_model(base: Path) -> None:
    """Leading zeros parse, non-numeric names and dirs without saved_model.pb are skipped."""
    assert LocalCatalog().versions(str(base)) == (1, 2)


def test_missing_base_path_has_no_versions(tmp_path: Path) -> None:
    """A base_path that does not exist has no versions (rather than an exception)."""
    assert LocalCatalog().versions(str(tmp_path / "nope")) == ()


def test_file_uri_is_a_local_path(base: Path) -> None:
    """file:// base paths are read locally."""
    assert LocalCatalog().versions(f"file://{base}") == (1, 2)


def test_signature_is_read_from_the_serve_meta_graph(base: Path) -> None:
    """serving_default comes from the meta graph tagged exactly "serve", found through a zero-padded dir."""
    saved = fw.SavedModel(saved_model_schema_version=1)
    gpu = saved.meta_graphs.add()  # listed first, but TF Serving loads the tag-set {"serve"}
    gpu.meta_info_def.tags.extend(["serve", "gpu"])
    gpu.signature_def["serving_default"].CopyFrom(signature_def({"x": tensor_info("x:0", fw.DT_HALF)}))
    serve = saved.meta_graphs.add()
    serve.meta_info_def.tags.append("serve")
    serve.signature_def["serving_default"].CopyFrom(signature_def({"x": tensor_info("x:0", fw.DT_INT64, (-1, 7))}))
    (base / "0002" / "saved_model.pb").write_bytes(saved.SerializeToString())
    signature = LocalCatalog().signature(str(base), 2)
    assert signature is not None
    assert signature.inputs == {"x": TensorSpec("DT_INT64", (-1, 7))}


def test_signature_absent_cases(base: Path) -> None:
    """No such version, no serve tag, or a corrupt file all give None instead of a crash."""
    catalog = LocalCatalog()
    assert catalog.signature(str(base), 9) is None
    write_saved_model(base / "6", tags=("train",))
    assert catalog.signature(str(base), 6) is None
    (base / "7").mkdir()
    (base / "7" / "saved_model.pb").write_bytes(b"\xff\xff not a proto")
    assert catalog.signature(str(base), 7) is None


def test_signature_cache_notices_a_rewritten_file(base: Path) -> None:
    """The parse cache is keyed by the file's stat, so a re-export is read again."""
    catalog = LocalCatalog()
    assert catalog.signature(str(base), 1) is not None
    write_saved_model(base / "1", signature_def({"x": tensor_info("x:0", fw.DT_INT32, (-1, 20))}))
    signature = catalog.signature(str(base), 1)
    assert signature is not None and signature.inputs["x"].dtype == "DT_INT32"


def test_metadata_json(base: Path) -> None:
    """metadata.json is returned when it is a JSON object and ignored otherwise."""
    catalog = LocalCatalog()
    (base / "1" / "metadata.json").write_text(json.dumps({"auc": 0.91, "commit": "abc123"}))
    assert catalog.metadata(str(base), 1) == {"auc": 0.91, "commit": "abc123"}
    (base / "0002" / "metadata.json").write_text("[1, 2]")
    assert catalog.metadata(str(base), 2) == {}
    assert catalog.metadata(str(base), 9) == {}


def test_object_store_without_fsspec_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """An s3:// base path without fsspec installed says which extra to install."""
    monkeypatch.setitem(sys.modules, "fsspec", None)
    with pytest.raises(ConfigError, match=r"modelbot\[s3\]"):
        LocalCatalog().versions("s3://bucket/models/fd")
    with pytest.raises(ConfigError, match=r"modelbot\[gcs\]"):
        LocalCatalog().versions("gs://bucket/models/fd")


class _DirFS:
    """A tiny fsspec-like filesystem over a local directory (what s3fs/gcsfs look like to the catalog)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _p(self, path: str) -> Path:
        return self.root / path.split("://", 1)[-1]

    def ls(self, path: str, detail: bool = True) -> list[dict[str, Any]]:
        if not self._p(path).is_dir():
            raise FileNotFoundError(path)
        kind = {True: "directory", False: "file"}
        return [{"name": f"{path}/{c.name}", "type": kind[c.is_dir()]} for c in self._p(path).iterdir()]

    def isfile(self, path: str) -> bool:
        return self._p(path).is_file()

    def cat_file(self, path: str) -> bytes:
        return self._p(path).read_bytes()

    def info(self, path: str) -> dict[str, Any]:
        st = self._p(path).stat()
        return {"size": st.st_size, "mtime": st.st_mtime_ns}


def test_object_store_through_fsspec(monkeypatch: pytest.MonkeyPatch, base: Path) -> None:
    """With fsspec present, s3:// paths are listed and read through it exactly like local ones."""
    fake = types.ModuleType("fsspec")
    fake.filesystem = lambda protocol: _DirFS(base.parent)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fsspec", fake)
    catalog = LocalCatalog()
    assert catalog.versions("s3://fraud_detector") == (1, 2)
    signature = catalog.signature("s3://fraud_detector", 2)
    assert signature is not None and signature.outputs["y"] == TensorSpec("DT_FLOAT", (-1, 1))
