"""Demo PKI for a mutually-authenticated fleet: a CA, a server certificate, the bot's client certificate, and a
"rogue" client certificate from a different CA that a correctly configured server must refuse at the handshake."""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from google.protobuf import text_format  # type: ignore[import-untyped]  # protobuf ships no stubs

from bot.serving.protos import tfs_apis_pb2

SERVER_NAMES = ("tf-serving", "localhost")
SERVER_IPS = ("127.0.0.1",)
BOT_COMMON_NAME = "modelbot"
_VALIDITY = datetime.timedelta(days=825)
# Regenerate well before expiry so a long-lived demo directory never serves an expired certificate.
_MIN_REMAINING = datetime.timedelta(days=7)


@dataclass(frozen=True)
class DevCerts:
    """Paths of the PEM files written by make_certs (keys are mode 0600)."""

    directory: Path
    ca: Path
    server_cert: Path
    server_key: Path
    bot_cert: Path
    bot_key: Path
    rogue_cert: Path
    rogue_key: Path
    rogue_ca: Path

    def ssl_config_text(self, client_verify: bool = True) -> str:
        """A text-format SSLConfig for --ssl_config_file: PEM contents inline (not paths), clients checked
        against our CA when client_verify."""
        config = tfs_apis_pb2.SSLConfig(
            server_key=self.server_key.read_text(),
            server_cert=self.server_cert.read_text(),
            custom_ca=self.ca.read_text(),
            client_verify=client_verify,
        )
        text: str = text_format.MessageToString(config)
        return text


def _paths(directory: Path) -> DevCerts:
    return DevCerts(
        directory,
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        bot_cert=directory / "bot.pem",
        bot_key=directory / "bot.key",
        rogue_cert=directory / "rogue.pem",
        rogue_key=directory / "rogue.key",
        rogue_ca=directory / "rogue-ca.pem",
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "modelbot devstack"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(subject: str, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))  # room for clock skew and long test runs
        .not_valid_after(now + _VALIDITY)
    )


def _new_ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(common_name, _name(common_name), key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign, cRLSign
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _issue(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, common_name: str, *, server: bool
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(common_name, ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if server:
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in SERVER_NAMES]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVER_IPS]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically with the final mode from the start, so a key is never briefly world-readable."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.chmod(mode)  # os.open honours the umask; the mode must be exact
    tmp.replace(path)


def _still_valid(certs: DevCerts) -> bool:
    """Every file present, unexpired, issued by the right CA, and each key matches its certificate."""
    try:
        ca = x509.load_pem_x509_certificate(certs.ca.read_bytes())
        rogue_ca = x509.load_pem_x509_certificate(certs.rogue_ca.read_bytes())
        pairs = [
            (certs.server_cert, certs.server_key, ca),
            (certs.bot_cert, certs.bot_key, ca),
            (certs.rogue_cert, certs.rogue_key, rogue_ca),
        ]
        deadline = datetime.datetime.now(datetime.UTC) + _MIN_REMAINING
        for cert_path, key_path, issuer in pairs:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            cert.verify_directly_issued_by(issuer)
            if cert.not_valid_after_utc < deadline or cert.public_key() != key.public_key():
                return False
        return ca.not_valid_after_utc >= deadline
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False


def make_certs(directory: Path) -> DevCerts:
    """Create (or reuse, when still valid) the demo CA, server, bot and rogue certificates under directory."""
    directory.mkdir(parents=True, exist_ok=True)
    certs = _paths(directory)
    if _still_valid(certs):
        return certs
    ca_key, ca_cert = _new_ca("modelbot devstack CA")
    server_key, server_cert = _issue(ca_key, ca_cert, SERVER_NAMES[0], server=True)
    bot_key, bot_cert = _issue(ca_key, ca_cert, BOT_COMMON_NAME, server=False)
    rogue_ca_key, rogue_ca_cert = _new_ca("rogue CA")
    # Same common name as the bot: only the issuing CA tells them apart, which is the point of the test.
    rogue_key, rogue_cert = _issue(rogue_ca_key, rogue_ca_cert, BOT_COMMON_NAME, server=False)
    for path, data, mode in (
        (certs.ca, _cert_pem(ca_cert), 0o644),
        (certs.server_cert, _cert_pem(server_cert), 0o644),
        (certs.server_key, _key_pem(server_key), 0o600),
        (certs.bot_cert, _cert_pem(bot_cert), 0o644),
        (certs.bot_key, _key_pem(bot_key), 0o600),
        (certs.rogue_cert, _cert_pem(rogue_cert), 0o644),
        (certs.rogue_key, _key_pem(rogue_key), 0o600),
        (certs.rogue_ca, _cert_pem(rogue_ca_cert), 0o644),
    ):
        _write(path, data, mode)
    return certs


Validity = tuple[datetime.datetime, datetime.datetime]  # (not valid before, not valid after)


def _with_validity(
    cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, validity: Validity | None
) -> x509.Certificate:
    """The same certificate (subject, key, extensions) re-signed by `ca_key` for another validity window."""
    if validity is None:
        return cert
    builder = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(cert.issuer)
        .public_key(cert.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
    )
    for extension in cert.extensions:
        builder = builder.add_extension(extension.value, critical=extension.critical)
    return builder.sign(ca_key, hashes.SHA256())


def make_custom_certs(
    directory: Path, *, server_validity: Validity | None = None, bot_validity: Validity | None = None
) -> DevCerts:
    """A fresh set like make_certs' (new CAs, never reused), whose server and bot certificates are valid only in
    the given windows: expired or not-yet-valid certificates, for tests of `check-config --online`."""
    directory.mkdir(parents=True, exist_ok=True)
    certs = _paths(directory)
    ca_key, ca_cert = _new_ca("modelbot custom CA")
    server_key, server_cert = _issue(ca_key, ca_cert, SERVER_NAMES[0], server=True)
    bot_key, bot_cert = _issue(ca_key, ca_cert, BOT_COMMON_NAME, server=False)
    rogue_ca_key, rogue_ca_cert = _new_ca("rogue CA")
    rogue_key, rogue_cert = _issue(rogue_ca_key, rogue_ca_cert, BOT_COMMON_NAME, server=False)
    files = {
        certs.ca: _cert_pem(ca_cert),
        certs.server_cert: _cert_pem(_with_validity(server_cert, ca_key, server_validity)),
        certs.server_key: _key_pem(server_key),
        certs.bot_cert: _cert_pem(_with_validity(bot_cert, ca_key, bot_validity)),
        certs.bot_key: _key_pem(bot_key),
        certs.rogue_cert: _cert_pem(rogue_cert),
        certs.rogue_key: _key_pem(rogue_key),
        certs.rogue_ca: _cert_pem(rogue_ca_cert),
    }
    for path, data in files.items():
        _write(path, data, 0o600 if path.suffix == ".key" else 0o644)
    return certs
