"""What is wrong with the admin channel's TLS, said in terms of the setting that fixes it (`check-config --online`).

gRPC reports a failed handshake in a line of its own ("Hostname Verification Check failed", "Socket closed") that
names neither the certificate nor the setting. So the check looks for itself: it loads serving.tls's files with
`cryptography`, then does a plain TLS handshake with each replica (stdlib `ssl`, verifying nothing, presenting the
bot's client certificate) to get the server's certificate and to see whether the server hangs up on the bot's;
then it checks what gRPC checks: the name, the signature of ca_cert, the dates.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from bot.settings import TlsSettings

# The HTTP/2 client preface and an empty SETTINGS frame: a gRPC server that accepted the bot answers with its
# own SETTINGS. With TLS 1.3 the server checks the client certificate only after the client finished its side of
# the handshake, so a refused certificate shows up here, as the connection closing, not in the handshake.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")
# Alerts a TLS 1.2 server sends during the handshake when it does not accept the client's certificate (or none).
_CLIENT_CERT_ALERTS = ("BAD_CERTIFICATE", "UNKNOWN_CA", "CERTIFICATE_", "HANDSHAKE_FAILURE")  # CERTIFICATE_REQUIRED...
_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST")
_DATES_ONLY = (9, 10)  # X509_V_ERR_CERT_NOT_YET_VALID, X509_V_ERR_CERT_HAS_EXPIRED: the chain itself was built


@dataclass(frozen=True)
class LocalTls:
    """serving.tls as loaded here: the CA certificates, and whether the client pair can be presented."""

    tls: TlsSettings
    cas: tuple[x509.Certificate, ...]
    present_client: bool  # client_cert and client_key load and match: present them in the handshake
    client_faulty: bool  # a problem with them is already reported, so a refusal by the server says nothing new
    problems: tuple[str, ...]


@dataclass(frozen=True)
class Handshake:
    certificate: x509.Certificate | None = None
    refused: bool = False  # the server hung up on the bot's client certificate (or on its absence)
    failure: str | None = None  # a sentence: cannot connect, not TLS, handshake failed


def check_local(tls: TlsSettings, now: datetime) -> LocalTls:
    """Read ca_cert, client_cert and client_key; check the key matches the certificate and every date."""
    problems: list[str] = []
    cas = _load_certs(tls.ca_cert, "ca_cert", problems)
    problems += _date_problems("ca_cert", tls.ca_cert, cas, now)
    present, faulty = False, False
    if tls.client_cert is not None and tls.client_key is not None:
        before = len(problems)
        certs = _load_certs(tls.client_cert, "client_cert", problems)
        key = _load_key(tls.client_key, problems)
        if certs and key is not None:
            present = certs[0].public_key() == key.public_key()
            if not present:
                problems.append(
                    f"serving.tls.client_key: {tls.client_key} does not match the certificate in"
                    f" serving.tls.client_cert ({tls.client_cert}): give the key the certificate was issued for"
                )
        problems += _date_problems("client_cert", tls.client_cert, certs, now)
        faulty = len(problems) > before
    return LocalTls(tls, cas, present, faulty, tuple(problems))


def check_replica(replica: str, tls_name: str | None, local: LocalTls, timeout_s: float, now: datetime) -> list[str]:
    """Problems of one replica's TLS, one sentence each; `tls_name` is the DNS name a dns:/// target resolved."""
    name = local.tls.server_name or tls_name or _address(replica)[0]
    shake = handshake(replica, name, local, timeout_s)
    if shake.failure is not None:
        return [shake.failure]
    problems = []
    if shake.certificate is not None:
        problems += _name_problems(replica, name, shake.certificate, local.tls.server_name is not None)
        problems += _server_date_problems(replica, shake.certificate, now)
        if not _trusted(replica, name, shake.certificate, local, timeout_s):
            problems.append(_untrusted(replica, shake.certificate, local))
    if shake.refused and not local.client_faulty:
        problems.append(_refusal(replica, local))
    return problems


def handshake(replica: str, name: str, local: LocalTls, timeout_s: float) -> Handshake:
    """A TLS handshake that verifies nothing: the server's certificate, and whether it refused the bot's."""
    try:
        with _open(replica, name, _context(local, verify=False), timeout_s) as tls:
            der = tls.getpeercert(binary_form=True)
            certificate = x509.load_der_x509_certificate(der) if der else None
            return Handshake(certificate, refused=_hangs_up(tls))
    except ssl.SSLError as exc:
        return _handshake_error(replica, exc)
    except TimeoutError:
        return Handshake(failure=f"replica {replica}: no TLS answer within {timeout_s:g}s (serving.targets)")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return Handshake(failure=f"replica {replica}: cannot connect ({reason}): is it running? (serving.targets)")
    except ValueError as exc:  # an unusable server_hostname, or a certificate that does not parse
        return Handshake(failure=f"replica {replica}: TLS handshake as {name!r} failed: {exc} (serving.tls)")


def names_in(certificate: x509.Certificate) -> list[str]:
    """The DNS and IP names of the subjectAltName (the common name only when there is none, as gRPC does)."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        common = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return [str(a.value) for a in common]
    return [*san.get_values_for_type(x509.DNSName), *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))]


def name_matches(name: str, pattern: str) -> bool:
    """`name` is `pattern` (IP addresses compared as addresses), or matches a `*.` wildcard in one left label."""
    try:
        return ipaddress.ip_address(name) == ipaddress.ip_address(pattern)
    except ValueError:
        pass
    name, pattern = name.lower().rstrip("."), pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return name == pattern


# --- local files ---------------------------------------------------------------------------------------


def _read(path: Path, setting: str, problems: list[str]) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError as exc:
        problems.append(f"serving.tls.{setting}: cannot read {path}: {exc.strerror or exc}")
        return None


def _load_certs(path: Path, setting: str, problems: list[str]) -> tuple[x509.Certificate, ...]:
    data = _read(path, setting, problems)
    if data is None:
        return ()
    try:
        return tuple(x509.load_pem_x509_certificates(data))
    except ValueError:
        problems.append(f"serving.tls.{setting}: cannot read {path}: not a PEM certificate")
        return ()


def _load_key(path: Path, problems: list[str]) -> PrivateKeyTypes | None:
    data = _read(path, "client_key", problems)
    if data is None:
        return None
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:  # cryptography's way of saying "encrypted, and no password given"
        problems.append(f"serving.tls.client_key: {path} is encrypted: gRPC needs an unencrypted key")
    except (ValueError, UnsupportedAlgorithm):
        problems.append(f"serving.tls.client_key: cannot read {path}: not a PEM private key")
    return None


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _dates(cert: x509.Certificate, now: datetime) -> str | None:
    """ "expired on ..." or "is not valid before ...", or None while the certificate is valid."""
    if now < cert.not_valid_before_utc:
        return f"is not valid before {_when(cert.not_valid_before_utc)} (it is {_when(now)} here)"
    if now > cert.not_valid_after_utc:
        return f"expired on {_when(cert.not_valid_after_utc)}"
    return None


def _date_problems(setting: str, path: Path, certs: tuple[x509.Certificate, ...], now: datetime) -> list[str]:
    problems = []
    for cert in certs:
        which = f"{path} ({cert.subject.rfc4514_string()})" if len(certs) > 1 else str(path)
        if (dates := _dates(cert, now)) is not None:
            fix = "replace it with a certificate valid now (or check this machine's clock)"
            problems.append(f"serving.tls.{setting}: {which} {dates}: {fix}")
    return problems


# --- the server's certificate ----------------------------------------------------------------------------


def _name_problems(replica: str, name: str, certificate: x509.Certificate, configured: bool) -> list[str]:
    held = names_in(certificate)
    if any(name_matches(name, pattern) for pattern in held):
        return []
    holds = ", ".join(held) or "no names"
    if configured:
        return [
            f"serving.tls.server_name: {name!r} is not a name in the server certificate of {replica} (it holds:"
            f" {holds})"
        ]
    return [
        f"serving.tls.server_name: not set, so the bot checks the target's host {name!r}, which is not a name in"
        f" the server certificate of {replica} (it holds: {holds}): set server_name to one of them"
    ]


def _server_date_problems(replica: str, certificate: x509.Certificate, now: datetime) -> list[str]:
    if (dates := _dates(certificate, now)) is None:
        return []
    fix = "renew the server_cert in that replica's --ssl_config_file (or check the clocks)"
    return [f"the server certificate of {replica} {dates}: {fix}"]


def _trusted(replica: str, name: str, certificate: x509.Certificate, local: LocalTls, timeout_s: float) -> bool:
    """Signed by a CA of ca_cert; through intermediates the server sends, OpenSSL judges (its chain is not ours)."""
    if not local.cas:
        return True  # ca_cert unreadable: already reported, nothing to check against
    same_name = [ca for ca in local.cas if ca.subject == certificate.issuer]
    if same_name:  # the signature decides: a regenerated CA has the same name and another key
        return any(_signed_by(certificate, ca) for ca in same_name)
    return _openssl_trusts(replica, name, local, timeout_s) is not False


def _signed_by(certificate: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _openssl_trusts(replica: str, name: str, local: LocalTls, timeout_s: float) -> bool | None:
    """A verifying handshake (no name check): True or False, or None when it failed for another reason."""
    try:
        with _open(replica, name, _context(local, verify=True), timeout_s):
            return True
    except ssl.SSLCertVerificationError as exc:
        return exc.verify_code in _DATES_ONLY
    except (OSError, ValueError):
        return None


def _untrusted(replica: str, certificate: x509.Certificate, local: LocalTls) -> str:
    ours = "; ".join(ca.subject.rfc4514_string() for ca in local.cas)
    return (
        f"serving.tls.ca_cert: the server certificate of {replica} (issued by {certificate.issuer.rfc4514_string()})"
        f" is not signed by the CA in {local.tls.ca_cert} ({ours}): point ca_cert at the CA that issued the"
        " replicas' certificates"
    )


# --- the handshake -----------------------------------------------------------------------------------------


def _address(replica: str) -> tuple[str, int]:
    host, _, port = replica.rpartition(":")
    return host.strip("[]"), int(port)


def _open(replica: str, name: str, context: ssl.SSLContext, timeout_s: float) -> ssl.SSLSocket:
    raw = socket.create_connection(_address(replica), timeout=timeout_s)
    try:
        return context.wrap_socket(raw, server_hostname=name)  # the TLS socket owns (and closes) `raw` from here
    except BaseException:
        raw.close()
        raise


def _context(local: LocalTls, *, verify: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # names are compared with the certificate afterwards, to say which differ
    if verify:
        context.load_verify_locations(cafile=str(local.tls.ca_cert))
    else:
        context.verify_mode = ssl.CERT_NONE  # only to read the certificate; nothing is sent over this connection
    context.set_alpn_protocols(["h2"])
    if local.present_client and local.tls.client_cert is not None and local.tls.client_key is not None:
        context.load_cert_chain(local.tls.client_cert, local.tls.client_key)
    return context


def _hangs_up(tls: ssl.SSLSocket) -> bool:
    try:
        tls.sendall(_H2_PREFACE)
        return not tls.recv(64)
    except TimeoutError:
        return False  # no verdict; the RPC that follows will say what happens
    except (ssl.SSLError, ConnectionError):
        return True


def _handshake_error(replica: str, exc: ssl.SSLError) -> Handshake:
    reason = str(exc.reason or exc)
    if any(alert in reason for alert in _CLIENT_CERT_ALERTS):
        return Handshake(refused=True)  # a TLS 1.2 server refusing during the handshake: no certificate to check
    if any(hint in reason for hint in _NOT_TLS):
        return Handshake(failure=f"replica {replica} does not answer with TLS: start it with --ssl_config_file")
    return Handshake(failure=f"replica {replica}: the TLS handshake failed ({reason}): check serving.tls")


def _refusal(replica: str, local: LocalTls) -> str:
    if local.present_client:
        return (
            f"replica {replica}: the server refused the bot's client certificate (serving.tls.client_cert:"
            f" {local.tls.client_cert}): is it signed by the CA in the server's ssl_config custom_ca?"
        )
    return (
        f"replica {replica}: the server requires a client certificate and the bot has none: set"
        " serving.tls.client_cert and serving.tls.client_key"
    )
