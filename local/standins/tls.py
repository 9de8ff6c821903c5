"""One throwaway certificate authority per process, shared by every HTTPS stand-in.

The Azure SDK refuses bearer tokens over plain HTTP, so the stand-ins must speak TLS. Clients
trust this CA either per client, with azure-core's transport keyword
``connection_verify=ca_bundle_path()`` (works for ``LogsIngestionClient`` and for azure-identity
credentials), or process-wide with ``REQUESTS_CA_BUNDLE=<ca_bundle_path()>`` (requests reads it
when ``connection_verify`` is left at its default ``True``).
"""

from __future__ import annotations

import atexit
import os
import ssl
import tempfile
import threading

import trustme

_LOCK = threading.Lock()
_CA: trustme.CA | None = None
_SERVER_CERT: trustme.LeafCert | None = None
_CA_PATH: str | None = None

# Names the server certificate is valid for: the stand-ins listen on loopback only.
SERVER_NAMES: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")


def _ensure() -> tuple[trustme.LeafCert, str]:
    global _CA, _SERVER_CERT, _CA_PATH
    with _LOCK:
        if _CA is None or _SERVER_CERT is None or _CA_PATH is None:
            ca = trustme.CA(organization_name="wallarm-sentinel-relay local stand-ins")
            leaf = ca.issue_cert(*SERVER_NAMES)
            fd, path = tempfile.mkstemp(prefix="standin-ca-", suffix=".pem")
            with os.fdopen(fd, "wb") as fh:
                fh.write(ca.cert_pem.bytes())
            atexit.register(_remove, path)
            _CA, _SERVER_CERT, _CA_PATH = ca, leaf, path
        return _SERVER_CERT, _CA_PATH


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return


def ca_bundle_path() -> str:
    """Path of a PEM file holding only the stand-in CA (pass as ``connection_verify``)."""
    return _ensure()[1]


def ca_pem() -> bytes:
    """The CA certificate as PEM bytes."""
    with open(ca_bundle_path(), "rb") as fh:
        return fh.read()


def server_ssl_context() -> ssl.SSLContext:
    """A server-side context presenting a certificate for 127.0.0.1/localhost signed by the CA."""
    leaf, _ = _ensure()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    leaf.configure_cert(ctx)
    return ctx


def client_ssl_context() -> ssl.SSLContext:
    """A client context trusting only the stand-in CA (for urllib/http.client callers)."""
    return ssl.create_default_context(cafile=ca_bundle_path())
