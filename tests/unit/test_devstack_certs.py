"""Devstack certificates and the demo-model cache (no TensorFlow needed)."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509

from bot.devstack import savedmodels
from bot.devstack.certs import make_certs
from bot.devstack.savedmodels import DEMO_VERSIONS, DemoModelsUnavailable, ensure_demo_models


def test_certificates_have_the_expected_names_issuers_and_modes(tmp_path: Path) -> None:
    """The server cert covers tf-serving, localhost and 127.0.0.1; the rogue cert has another issuer; keys are 0600."""
    certs = make_certs(tmp_path)
    server = x509.load_pem_x509_certificate(certs.server_cert.read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {"tf-serving", "localhost"}
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    ca = x509.load_pem_x509_certificate(certs.ca.read_bytes())
    bot = x509.load_pem_x509_certificate(certs.bot_cert.read_bytes())
    rogue = x509.load_pem_x509_certificate(certs.rogue_cert.read_bytes())
    bot.verify_directly_issued_by(ca)
    assert rogue.issuer != ca.subject and rogue.subject == bot.subject
    for key in (certs.server_key, certs.bot_key, certs.rogue_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_existing_certificates_are_reused_and_broken_sets_replaced(tmp_path: Path) -> None:
    """A second call keeps valid files byte for byte; a missing file makes a fresh, consistent set."""
    first = make_certs(tmp_path).ca.read_bytes()
    assert make_certs(tmp_path).ca.read_bytes() == first
    (tmp_path / "bot.key").unlink()
    certs = make_certs(tmp_path)
    assert certs.bot_key.exists() and certs.ca.read_bytes() != first


def _fake_complete(root: Path) -> None:
    for spec in DEMO_VERSIONS:
        directory = root / "fraud_detector" / str(spec.version)
        directory.mkdir(parents=True)
        (directory / "saved_model.pb").write_bytes(b"")
        (directory / "metadata.json").write_text("{}")


def test_complete_demo_models_are_not_exported_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With every version present, ensure_demo_models returns the base path without running an export."""
    _fake_complete(tmp_path)
    monkeypatch.setattr(savedmodels, "_export", lambda root, versions: pytest.fail(f"exported {versions}"))
    assert ensure_demo_models(tmp_path) == tmp_path.resolve() / "fraud_detector"


def test_missing_tensorflow_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without TensorFlow the error says to install the demo-models extra."""
    monkeypatch.setattr(savedmodels.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DemoModelsUnavailable, match=r"demo-models"):
        ensure_demo_models(tmp_path)
