"""bot/serving/tls_check.py without a network: names as gRPC matches them, and the bot's own TLS files."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bot.devstack.certs import DevCerts, make_custom_certs
from bot.serving.tls_check import check_local, name_matches, names_in
from bot.settings import TlsSettings


def _now() -> datetime.datetime:
    """The time at the check, not at import: a long suite collects this module minutes before it runs it."""
    return datetime.datetime.now(datetime.UTC)


@pytest.mark.parametrize(
    ("name", "pattern", "matches"),
    [
        ("tf-serving", "tf-serving", True),
        ("TF-Serving.", "tf-serving", True),  # case and a trailing dot do not matter
        ("a.tfs.svc", "*.tfs.svc", True),
        ("tfs.svc", "*.tfs.svc", False),  # a wildcard stands for exactly one label
        ("a.b.tfs.svc", "*.tfs.svc", False),
        ("127.0.0.1", "127.0.0.1", True),
        ("::1", "0:0:0:0:0:0:0:1", True),  # addresses compare as addresses
        ("127.0.0.1", "127.0.0.2", False),
        ("tf-serving.prod", "tf-serving", False),
    ],
)
def test_name_matching(name: str, pattern: str, matches: bool) -> None:
    """A name matches a certificate name exactly, by address, or through a one-label wildcard."""
    assert name_matches(name, pattern) is matches


def _certificate(san: list[x509.GeneralName] | None) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "only-the-cn")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(_now())
        .not_valid_after(_now() + datetime.timedelta(days=1))
    )
    if san is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(key, hashes.SHA256())


def test_names_are_the_subject_alternative_names() -> None:
    """DNS then IP names of the SAN; the common name is ignored when a SAN exists."""
    cert = _certificate([x509.DNSName("tf-serving"), x509.IPAddress(ipaddress.ip_address("10.0.0.5"))])
    assert names_in(cert) == ["tf-serving", "10.0.0.5"]


def test_without_san_the_common_name_is_the_name() -> None:
    """A certificate without a SAN is matched on its common name, as gRPC does."""
    assert names_in(_certificate(None)) == ["only-the-cn"]


@pytest.fixture
def certs(tmp_path: Path) -> DevCerts:
    return make_custom_certs(tmp_path / "pki")


def test_good_files_have_no_problem(certs: DevCerts) -> None:
    """The CA, the bot's certificate and its key load and match: present them, nothing to report."""
    local = check_local(TlsSettings(certs.ca, certs.bot_cert, certs.bot_key), _now())
    assert local.problems == () and local.present_client and not local.client_faulty


def test_an_encrypted_key_is_named(certs: DevCerts, tmp_path: Path) -> None:
    """gRPC cannot use a password-protected key: said, with client_key and the path."""
    key = serialization.load_pem_private_key(certs.bot_key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encryption = serialization.BestAvailableEncryption(b"secret")
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    local = check_local(TlsSettings(certs.ca, certs.bot_cert, encrypted), _now())
    assert local.problems == (f"serving.tls.client_key: {encrypted} is encrypted: gRPC needs an unencrypted key",)
    assert not local.present_client and local.client_faulty


def test_an_expired_ca_is_named(certs: DevCerts) -> None:
    """A ca_cert past its end date is named with the date (checked against the `now` passed in)."""
    later = _now() + datetime.timedelta(days=3650)
    local = check_local(TlsSettings(certs.ca, certs.bot_cert, certs.bot_key), later)
    assert local.problems[0].startswith(f"serving.tls.ca_cert: {certs.ca} expired on ")
    assert local.problems[1].startswith(f"serving.tls.client_cert: {certs.bot_cert} expired on ")
    assert len(local.problems) == 2
