"""Server credentials from a text-format SSLConfig file, as server.cc BuildServerCredentials."""

from __future__ import annotations

from pathlib import Path

import grpc
from google.protobuf import text_format  # type: ignore[import-untyped]  # protobuf ships no stubs

from bot.serving.protos import tfs_apis_pb2


def _grpc_default_roots() -> bytes:
    """gRPC's bundled root CAs: what the C++ server falls back to with client_verify and no custom_ca."""
    return (Path(grpc.__file__).parent / "_cython" / "_credentials" / "roots.pem").read_bytes()


def read_ssl_config(path: str) -> tfs_apis_pb2.SSLConfig:
    """Parse the file (PEM contents inline, not paths); raises text_format.ParseError or OSError."""
    config = tfs_apis_pb2.SSLConfig()
    text_format.Parse(Path(path).read_text(), config)
    return config


def server_credentials(ssl_config_file: str) -> grpc.ServerCredentials | None:
    """TLS credentials, or None for InsecureServerCredentials when no file is given.

    client_verify maps to "request and require a client certificate and verify it" against custom_ca;
    without it no client certificate is requested at all.
    """
    if not ssl_config_file:
        return None
    config = read_ssl_config(ssl_config_file)
    roots = config.custom_ca.encode() if config.custom_ca else None
    if roots is None and config.client_verify:
        roots = _grpc_default_roots()
    return grpc.ssl_server_credentials(
        [(config.server_key.encode(), config.server_cert.encode())],
        root_certificates=roots,
        require_client_auth=config.client_verify,
    )
