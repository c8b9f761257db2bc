"""Transport security of the emulator: SSLConfig from the devstack certificates, mTLS enforced at the handshake."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from bot.devstack.certs import DevCerts
from bot.devstack.serving.tls import read_ssl_config
from tests.devstack_support import MODEL, FleetFactory, StubsFactory, config_text, model_entry, rpc_error

ONE = config_text(model_entry(versions=[1]))


def test_bot_certificate_is_accepted(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """The bot's client certificate (signed by our CA) gets through and the server is verified by IP SAN."""
    stubs = tfs(fleet(ONE).targets[0])
    assert stubs.status() == {1: "AVAILABLE"}


def test_server_name_tf_serving_is_in_the_certificate(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """Connecting with the TLS name override the bot uses (tf-serving) verifies too."""
    stubs = tfs(fleet(ONE).targets[0], server_name="tf-serving")
    assert stubs.status() == {1: "AVAILABLE"}


@pytest.mark.parametrize("client", ["rogue", "none"])
def test_untrusted_or_missing_client_certificate_is_refused(
    fleet: FleetFactory, tfs: StubsFactory, client: str
) -> None:
    """A certificate from another CA, or none at all, fails the handshake: UNAVAILABLE before any handler runs."""
    replica = fleet(ONE)
    error = rpc_error(lambda: tfs(replica.targets[0], client=client).status())
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert "Could not find any versions" not in (error.details() or "")


def test_server_name_outside_the_certificate_is_refused_by_the_client(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """The client checks the server: a name not among the SANs fails the handshake."""
    error = rpc_error(lambda: tfs(fleet(ONE).targets[0], server_name="evil.example").status())
    assert error.code() is grpc.StatusCode.UNAVAILABLE


def test_without_client_verify_no_client_certificate_is_needed(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """client_verify: false maps to 'do not request a client certificate', so a cert-less client gets in."""
    replica = fleet(ONE, client_verify=False)
    assert tfs(replica.targets[0], client="none").status() == {1: "AVAILABLE"}


def test_without_ssl_config_the_server_is_plaintext(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """No --ssl_config_file means insecure credentials: plaintext works and a TLS client cannot connect."""
    replica = fleet(ONE, certs=None)
    assert tfs(replica.targets[0], client="insecure").status(MODEL) == {1: "AVAILABLE"}
    assert rpc_error(lambda: tfs(replica.targets[0]).status()).code() is grpc.StatusCode.UNAVAILABLE


def test_ssl_config_holds_pem_contents(devstack_certs: DevCerts, tmp_path: Path) -> None:
    """The text-format SSLConfig carries the PEM texts themselves (not paths), as the real server expects."""
    path = tmp_path / "ssl.config"
    path.write_text(devstack_certs.ssl_config_text())
    config = read_ssl_config(str(path))
    assert config.server_cert == devstack_certs.server_cert.read_text()
    assert config.server_key == devstack_certs.server_key.read_text()
    assert config.custom_ca == devstack_certs.ca.read_text()
    assert config.client_verify is True
    path.write_text(devstack_certs.ssl_config_text(client_verify=False))
    assert read_ssl_config(str(path)).client_verify is False
