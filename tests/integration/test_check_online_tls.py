"""`check-config --online` against real devstack replicas over mTLS: every kind of TLS mistake is one line that says
what is wrong and names the setting that fixes it (issue 8 item 3), never only gRPC's own words."""

from __future__ import annotations

import dataclasses
import datetime
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from bot.checks import Findings, check_fleet
from bot.devstack.certs import DevCerts, _cert_pem, _issue, _key_pem, make_custom_certs
from bot.serving import tls_check
from bot.settings import ServingSettings, TlsSettings
from tests.devstack_support import MODEL, FleetFactory, config_text, model_entry

REPO = Path(__file__).resolve().parents[2]
ONE = config_text(model_entry(versions=[1]))
NOW = datetime.datetime.now(datetime.UTC)
PAST = (NOW - datetime.timedelta(days=30), NOW - datetime.timedelta(days=1))
FUTURE = (NOW + datetime.timedelta(days=1), NOW + datetime.timedelta(days=30))
HELD = "(it holds: tf-serving, localhost, 127.0.0.1)"


def serving(
    targets: list[str], certs: DevCerts, *, server_name: str | None = "tf-serving", **files: Path | None
) -> ServingSettings:
    """The bot's serving settings: the bot's certificates from `certs` unless `files` replaces one of them."""
    tls = TlsSettings(ca_cert=certs.ca, client_cert=certs.bot_cert, client_key=certs.bot_key, server_name=server_name)
    return ServingSettings(targets=tuple(targets), tls=dataclasses.replace(tls, **files), rpc_timeout_s=5.0)


def check(settings: ServingSettings) -> Findings:
    return check_fleet(settings, [MODEL])


def only_problem(found: Findings) -> str:
    assert len(found.problems) == 1, found.problems
    return found.problems[0]


def test_a_correct_set_up_is_ok(fleet: FleetFactory, devstack_certs: DevCerts) -> None:
    """Two replicas with the demo certificates pass TLS and GetModelStatus: one OK line naming both, no problem."""
    replicas = fleet(ONE, 2)
    found = check(serving(replicas.targets, devstack_certs))
    assert found.problems == []
    assert found.ok == [
        f"fleet OK: {', '.join(replicas.targets)} (TLS, server name 'tf-serving', client certificate, GetModelStatus)"
    ]


def test_wrong_server_name_names_the_setting_and_the_certificate_names(
    fleet: FleetFactory, devstack_certs: DevCerts
) -> None:
    """A server_name outside the certificate's SANs is named with every name the certificate does hold."""
    target = fleet(ONE).targets[0]
    problem = only_problem(check(serving([target], devstack_certs, server_name="tf-serving.prod")))
    assert (
        problem
        == f"serving.tls.server_name: 'tf-serving.prod' is not a name in the server certificate of {target} {HELD}"
    )


def test_without_server_name_the_target_host_is_checked(fleet: FleetFactory, devstack_certs: DevCerts) -> None:
    """With no server_name the target's host is what must be in the certificate: 127.0.0.1 is, so it passes."""
    target = fleet(ONE).targets[0]
    assert check(serving([target], devstack_certs, server_name=None)).problems == []


def test_server_certificate_from_another_ca_names_ca_cert(fleet: FleetFactory, devstack_certs: DevCerts) -> None:
    """ca_cert pointing at a CA that did not sign the server certificate is named, with both CAs."""
    target = fleet(ONE).targets[0]
    problem = only_problem(check(serving([target], devstack_certs, ca_cert=devstack_certs.rogue_ca)))
    assert problem.startswith(f"serving.tls.ca_cert: the server certificate of {target} (issued by ")
    assert f"is not signed by the CA in {devstack_certs.rogue_ca} (CN=rogue CA" in problem


def test_same_named_ca_with_another_key_is_not_trusted(
    fleet: FleetFactory, devstack_certs: DevCerts, tmp_path: Path
) -> None:
    """A regenerated CA has the same name as the one that signed the server: the signature, not the name, decides."""
    target = fleet(ONE).targets[0]
    regenerated = tmp_path / "regenerated-ca.pem"
    regenerated.write_bytes(_same_name_ca(devstack_certs.ca))
    problem = only_problem(check(serving([target], devstack_certs, ca_cert=regenerated)))
    assert problem.startswith("serving.tls.ca_cert:") and "is not signed by the CA in" in problem


def test_server_certificate_through_an_intermediate_ca_is_trusted(fleet: FleetFactory, tmp_path: Path) -> None:
    """A server certificate issued by an intermediate CA (sent by the server) is trusted when ca_cert is the root:
    the check must not call a working chain "not signed"."""
    certs = _chained_pki(tmp_path)
    target = fleet(ONE, certs=certs).targets[0]
    assert check(serving([target], certs)).problems == []


def test_rogue_client_certificate_refused_by_the_server(fleet: FleetFactory, devstack_certs: DevCerts) -> None:
    """A client certificate the server's custom_ca did not sign is refused: the line names client_cert."""
    target = fleet(ONE).targets[0]
    settings = serving(
        [target], devstack_certs, client_cert=devstack_certs.rogue_cert, client_key=devstack_certs.rogue_key
    )
    assert only_problem(check(settings)) == (
        f"replica {target}: the server refused the bot's client certificate (serving.tls.client_cert:"
        f" {devstack_certs.rogue_cert}): is it signed by the CA in the server's ssl_config custom_ca?"
    )


def test_no_client_certificate_when_the_server_requires_one(fleet: FleetFactory, devstack_certs: DevCerts) -> None:
    """Without client_cert/client_key, a server that verifies clients is said to require them."""
    target = fleet(ONE).targets[0]
    problem = only_problem(check(serving([target], devstack_certs, client_cert=None, client_key=None)))
    assert "requires a client certificate and the bot has none: set serving.tls.client_cert" in problem


@pytest.mark.parametrize(("validity", "words"), [(PAST, "expired on"), (FUTURE, "is not valid before")])
def test_client_certificate_out_of_its_dates(
    fleet: FleetFactory, tmp_path: Path, validity: tuple[datetime.datetime, datetime.datetime], words: str
) -> None:
    """An expired or not-yet-valid client certificate is one line naming client_cert and the date (not also a
    refusal)."""
    certs = make_custom_certs(tmp_path / "pki", bot_validity=validity)
    target = fleet(ONE, certs=certs).targets[0]
    problem = only_problem(check(serving([target], certs)))
    date = validity[1] if words == "expired on" else validity[0]
    assert problem.startswith(f"serving.tls.client_cert: {certs.bot_cert} {words} {date:%Y-%m-%d %H:%M} UTC")


@pytest.mark.parametrize(("validity", "words"), [(PAST, "expired on"), (FUTURE, "is not valid before")])
def test_server_certificate_out_of_its_dates(
    fleet: FleetFactory, tmp_path: Path, validity: tuple[datetime.datetime, datetime.datetime], words: str
) -> None:
    """A replica serving an expired or not-yet-valid certificate is named, with the date and the replica's
    ssl_config server_cert as the thing to fix."""
    certs = make_custom_certs(tmp_path / "pki", server_validity=validity)
    target = fleet(ONE, certs=certs).targets[0]
    problem = only_problem(check(serving([target], certs)))
    date = validity[1] if words == "expired on" else validity[0]
    assert problem.startswith(f"the server certificate of {target} {words} {date:%Y-%m-%d %H:%M} UTC")
    assert "server_cert in that replica's --ssl_config_file" in problem


def test_key_not_matching_the_certificate_names_client_key(fleet: FleetFactory, devstack_certs: DevCerts) -> None:
    """The rogue key with the bot's certificate: one line naming client_key and client_cert."""
    target = fleet(ONE).targets[0]
    problem = only_problem(check(serving([target], devstack_certs, client_key=devstack_certs.rogue_key)))
    assert problem == (
        f"serving.tls.client_key: {devstack_certs.rogue_key} does not match the certificate in serving.tls.client_cert"
        f" ({devstack_certs.bot_cert}): give the key the certificate was issued for"
    )


def test_a_file_that_is_not_pem_names_its_setting(
    fleet: FleetFactory, devstack_certs: DevCerts, tmp_path: Path
) -> None:
    """A client_cert that holds no PEM certificate cannot be read: the line names client_cert and the path."""
    target = fleet(ONE).targets[0]
    garbage = tmp_path / "bot.pem"
    garbage.write_text("not a certificate\n")
    problem = only_problem(check(serving([target], devstack_certs, client_cert=garbage)))
    assert problem == f"serving.tls.client_cert: cannot read {garbage}: not a PEM certificate"


def test_a_file_that_cannot_be_read_names_its_setting(devstack_certs: DevCerts, tmp_path: Path) -> None:
    """A ca_cert the process cannot read (here a directory: root reads any file) says so with the OS's reason."""
    tls = TlsSettings(ca_cert=tmp_path, client_cert=devstack_certs.bot_cert, client_key=devstack_certs.bot_key)
    local = tls_check.check_local(tls, datetime.datetime.now(datetime.UTC))
    assert local.problems == (f"serving.tls.ca_cert: cannot read {tmp_path}: Is a directory",)


def test_a_plaintext_replica_is_not_tls(fleet: FleetFactory, devstack_certs: DevCerts) -> None:
    """A replica started without --ssl_config_file is named as not answering with TLS."""
    target = fleet(ONE, certs=None).targets[0]
    assert only_problem(check(serving([target], devstack_certs))) == (
        f"replica {target} does not answer with TLS: start it with --ssl_config_file"
    )


def test_nothing_listening_names_the_target(devstack_certs: DevCerts) -> None:
    """A target with nothing listening is a connection problem of serving.targets, not a TLS one."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        target = f"127.0.0.1:{sock.getsockname()[1]}"  # bound, not listening: refused
        problem = only_problem(check(serving([target], devstack_certs)))
    assert problem == f"replica {target}: cannot connect (Connection refused): is it running? (serving.targets)"


def test_cli_wrong_server_name_exits_1_naming_the_setting(
    fleet: FleetFactory, devstack_certs: DevCerts, demo_models: Path, tmp_path: Path
) -> None:
    """`modelbot check-config --online` as a user runs it: exit 1, and the line names serving.tls.server_name, the
    name it expected and the certificate's names, not gRPC's "Hostname Verification Check failed" alone."""
    target = fleet(ONE).targets[0]
    config = {
        "serving": {
            "targets": [target],
            "tls": {
                "ca_cert": str(devstack_certs.ca),
                "client_cert": str(devstack_certs.bot_cert),
                "client_key": str(devstack_certs.bot_key),
                "server_name": "tfserving",
            },
        },
        "models": {MODEL: {"base_path": str(demo_models)}},
    }
    (tmp_path / "modelbot.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env |= {"MODELBOT_CONFIG": str(tmp_path / "modelbot.yaml"), "MODELBOT_PERMISSIONS": str(REPO / "permissions.yaml")}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "check-config", "--online"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    expected = f"  - serving.tls.server_name: 'tfserving' is not a name in the server certificate of {target} {HELD}"
    assert expected in result.stderr.splitlines(), result.stderr
    assert "1 problem(s) found." in result.stderr and "Hostname Verification" not in result.stderr
    assert f"models OK: {MODEL}: versions 1, 2, 3, 4 in {demo_models}" in result.stdout


def _same_name_ca(real_ca: Path) -> bytes:
    """A self-signed CA certificate with the subject of `real_ca` and a new key: what a regenerated demo CA looks
    like to a replica still serving a server certificate of the old one."""
    subject = x509.load_pem_x509_certificate(real_ca.read_bytes()).subject
    return _cert_pem(_ca(subject, path_length=0)[1])


def _chained_pki(directory: Path) -> DevCerts:
    """root CA -> intermediate CA -> server certificate (the PEM holds the server's and the intermediate's), and the
    bot's client certificate issued by the root, which is also the replicas' custom_ca."""
    root_key, root = _ca(_cn("modelbot root CA"), path_length=1)
    middle_key, middle = _ca(_cn("modelbot intermediate CA"), path_length=0, issuer=(root_key, root))
    server_key, server = _issue(middle_key, middle, "tf-serving", server=True)
    bot_key, bot = _issue(root_key, root, "modelbot", server=False)
    files = {
        "ca.pem": _cert_pem(root),
        "server.pem": _cert_pem(server) + _cert_pem(middle),
        "server.key": _key_pem(server_key),
        "bot.pem": _cert_pem(bot),
        "bot.key": _key_pem(bot_key),
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
    paths = {name: directory / name for name in files}
    return DevCerts(
        directory,
        paths["ca.pem"],
        paths["server.pem"],
        paths["server.key"],
        paths["bot.pem"],
        paths["bot.key"],
        paths["bot.pem"],
        paths["bot.key"],
        paths["ca.pem"],
    )


def _cn(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])


def _ca(
    subject: x509.Name, path_length: int, issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A CA certificate, self-signed or issued by `issuer` (key, certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    signer_key, issuer_name = (issuer[0], issuer[1].subject) if issuer else (key, subject)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(PAST[0])
        .not_valid_after(FUTURE[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(signer_key, hashes.SHA256())
    )
    return key, cert
