"""Credentials per destination (issue 22, item 2): for each kind, the REAL azure-identity
credential from `credential_for`, with its secret or certificate from the Key Vault stand-in, and
the REAL LogsIngestionClient upload to its own DCR; the same credential on another destination's
DCR gets 403. The ingestion stand-ins check which identity (appid, tid) called which DCR."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from azure.core.credentials import TokenCredential
from azure.identity import ManagedIdentityCredential
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from store_fixtures import FakeClock

from local.standins.identity import (
    SYSTEM_CLIENT_ID,
    EntraIdStandIn,
    FederatedSubject,
    ManagedIdentityStandIn,
    TokenIssuer,
    issuer_url,
    principal_id,
)
from local.standins.key_vault import KeyVaultStandIn
from local.standins.logs_ingestion import LogsIngestionStandIn
from shared.delivery.ingestion import Deliverer, build_ingestion_client
from shared.schema import COLUMNS, Row
from shared.tenancy.credentials import KeyVaultBackedCredential, credential_for
from shared.tenancy.destination import (
    APP_CERTIFICATE,
    APP_SECRET,
    FEDERATED_IDENTITY,
    MANAGED_IDENTITY,
    DestinationCredential,
)
from shared.tenancy.secrets import KeyVaultSecrets

USER_MI = "22222222-2222-4222-8222-222222222222"
APP_S, T_S = "a5a5a5a5-0000-4000-8000-000000000001", "c0ffee00-0000-4000-8000-00000000000a"
APP_C, T_C = "a5a5a5a5-0000-4000-8000-000000000002", "c0ffee00-0000-4000-8000-00000000000b"
APP_F, T_F = "a5a5a5a5-0000-4000-8000-000000000003", "c0ffee00-0000-4000-8000-00000000000c"
CLIENT_SECRET = "app-client-secret-never-logged"


def _certificate() -> tuple[bytes, bytes]:
    """(cert PEM, cert+key PEM as Key Vault keeps a certificate's secret) for an RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay-destination")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert_pem, key_pem + cert_pem


@dataclass(frozen=True)
class Destination:
    name: str
    credential: DestinationCredential
    identity: tuple[str, str]  # (appid, tid) the DCR grants
    ingestion: LogsIngestionStandIn


@dataclass(frozen=True)
class World:
    entra: EntraIdStandIn
    vault: KeyVaultStandIn
    destinations: dict[str, Destination]


@pytest.fixture(scope="module")
def world(token_issuer: TokenIssuer) -> Iterator[World]:
    home = token_issuer.tenant_id
    cert_pem, cert_secret = _certificate()
    with EntraIdStandIn(token_issuer) as entra, KeyVaultStandIn(token_issuer) as vault:
        entra.register_secret(APP_S, CLIENT_SECRET, tenant_id=T_S)
        entra.register_certificate(APP_C, cert_pem, tenant_id=T_C)
        relay_subject = FederatedSubject(issuer_url(home), principal_id(SYSTEM_CLIENT_ID))
        entra.register_federated(APP_F, relay_subject, tenant_id=T_F)
        vault.seed("customer-s-secret", CLIENT_SECRET)
        vault.seed("customer-c-cert", cert_secret.decode(), content_type="application/x-pem-file")
        vault.grant(SYSTEM_CLIENT_ID)  # the relay's identity reads the vault; nobody else does
        specs = {
            "home": (DestinationCredential(MANAGED_IDENTITY), (SYSTEM_CLIENT_ID, home)),
            "user-mi": (DestinationCredential(MANAGED_IDENTITY, client_id=USER_MI), (USER_MI, home)),
            "secret": (
                DestinationCredential(APP_SECRET, APP_S, T_S, vault.secret_uri("customer-s-secret")),
                (APP_S, T_S),
            ),
            "cert": (
                DestinationCredential(APP_CERTIFICATE, APP_C, T_C, vault.secret_uri("customer-c-cert")),
                (APP_C, T_C),
            ),
            "federated": (DestinationCredential(FEDERATED_IDENTITY, APP_F, T_F), (APP_F, T_F)),
        }
        stand_ins = [LogsIngestionStandIn(token_issuer, dcr_id=f"dcr-{i:032x}") for i in range(len(specs))]
        for stand_in in stand_ins:
            stand_in.start()
        try:
            destinations = {
                name: Destination(name, cred, who, stand_in)
                for (name, (cred, who)), stand_in in zip(specs.items(), stand_ins, strict=True)
            }
            yield World(entra, vault, destinations)
        finally:
            for stand_in in stand_ins:
                stand_in.stop()


@pytest.fixture
def dests(world: World) -> Iterator[dict[str, Destination]]:
    for d in world.destinations.values():
        d.ingestion.reset()  # resets the access map too: grant each DCR to its own identity again
        d.ingestion.allow(d.ingestion.dcr_id, *d.identity)
    yield world.destinations
    for d in world.destinations.values():
        d.ingestion.reset()


@pytest.fixture
def relay_credential(managed_identity_env: dict[str, str]) -> Iterator[ManagedIdentityCredential]:
    credential = ManagedIdentityCredential()
    yield credential
    credential.close()


@pytest.fixture
def secrets(relay_credential: TokenCredential, tls_ca: str, clock: FakeClock) -> Iterator[KeyVaultSecrets]:
    store = KeyVaultSecrets(relay_credential, ca_bundle=tls_ca, clock=clock)
    yield store
    store.close()


def _row(n: int) -> Row:
    row: Row = dict.fromkeys(COLUMNS, "")
    row.update(
        TimeGenerated="2026-03-01T12:00:00Z", Vendor="Wallarm", EventType="new_hits", Summary=f"hit {n}"
    )
    return row


def _upload(credential: TokenCredential, to: Destination, tls_ca: str, n: int = 0) -> tuple[int | None, str]:
    client = build_ingestion_client(
        to.ingestion.endpoint, credential, read_timeout=5, connect_timeout=5, ca_bundle=tls_ca
    )
    with client:
        attempt = Deliverer(client, to.ingestion.dcr_id, to.ingestion.stream).probe([_row(n)])
    return attempt.status, attempt.error


Build = Callable[[Destination], TokenCredential]


@pytest.fixture
def build(
    world: World,
    relay_credential: ManagedIdentityCredential,
    secrets: KeyVaultSecrets,
    identity: ManagedIdentityStandIn,
    tls_ca: str,
) -> Build:
    """`credential_for` a destination, as the relay would: its identity, its vault, the stand-ins' Entra."""

    def _build(d: Destination) -> TokenCredential:
        return credential_for(
            d.credential,
            relay_credential=relay_credential,
            secrets=secrets,
            ca_bundle=tls_ca,
            authority_host=world.entra.authority,
        )

    return _build


NAMES = ["home", "user-mi", "secret", "cert", "federated"]


@pytest.mark.parametrize("name", NAMES)
def test_each_kind_lands_on_its_own_dcr_and_is_refused_on_another(
    name: str,
    world: World,
    dests: dict[str, Destination],
    build: Build,
    tls_ca: str,
) -> None:
    own = dests[name]
    credential = build(own)
    assert _upload(credential, own, tls_ca) == (204, "")
    [landed] = own.ingestion.requests
    assert (landed.client_id, landed.tenant_id) == own.identity
    assert [r["Summary"] for r in own.ingestion.accepted] == ["hit 0"]

    for other in (d for d in dests.values() if d.identity != own.identity):
        status, error = _upload(credential, other, tls_ca, n=1)
        assert (status, error) == (403, "OperationFailed"), other.name
        [refused] = other.ingestion.requests
        assert (refused.client_id, refused.tenant_id) == own.identity
        assert other.ingestion.accepted == []
        other.ingestion.reset()
        other.ingestion.allow(other.ingestion.dcr_id, *other.identity)


def test_how_each_kind_signed_in(
    world: World,
    dests: dict[str, Destination],
    build: Build,
    identity: ManagedIdentityStandIn,
    tls_ca: str,
) -> None:
    before = len(world.entra.requests)
    for name in ("secret", "cert", "federated"):
        build(dests[name]).get_token("https://monitor.azure.com/.default")
    signed_in = [(r.tenant_id, r.client_id, r.method, r.status) for r in world.entra.requests[before:]]
    assert signed_in == [
        (T_S, APP_S, "secret", 200),
        (T_C, APP_C, "certificate", 200),
        (T_F, APP_F, "federated", 200),
    ]
    # The federated assertion is the relay identity's own token for the token-exchange audience.
    assert ("api://AzureADTokenExchange", None) in [(r.resource, r.client_id) for r in identity.requests]
    # Both secrets were read from Key Vault with the relay's identity.
    assert [(r.name, r.client_id, r.status) for r in world.vault.requests[-2:]] == [
        ("customer-s-secret", SYSTEM_CLIENT_ID, 200),
        ("customer-c-cert", SYSTEM_CLIENT_ID, 200),
    ]


def test_two_destinations_get_distinct_credentials_and_identities(
    dests: dict[str, Destination], build: Build, relay_credential: ManagedIdentityCredential, tls_ca: str
) -> None:
    built = {name: build(dests[name]) for name in NAMES}
    assert built["home"] is relay_credential
    assert len({id(c) for c in built.values()}) == len(NAMES)
    for name in NAMES:
        assert _upload(built[name], dests[name], tls_ca) == (204, "")
    seen = {(r.client_id, r.tenant_id) for d in dests.values() for r in d.ingestion.requests}
    assert seen == {d.identity for d in dests.values()}
    assert len(seen) == len(NAMES)


def test_a_rotated_client_secret_is_picked_up_without_a_restart(
    world: World,
    dests: dict[str, Destination],
    build: Build,
    clock: FakeClock,
    tls_ca: str,
) -> None:
    credential = build(dests["secret"])
    assert isinstance(credential, KeyVaultBackedCredential)
    credential.get_token("https://monitor.azure.com/.default")
    world.entra.register_secret(APP_S, "rotated-secret", tenant_id=T_S)  # the old one is revoked
    world.vault.seed("customer-s-secret", "rotated-secret")
    clock.advance(dt.timedelta(minutes=5))  # the secrets cache's TTL
    token = credential.get_token("https://storage.azure.com/.default")  # a scope not cached yet
    assert token.token
    assert [r.status for r in world.entra.requests if r.client_id == APP_S][-1] == 200
    world.entra.register_secret(APP_S, CLIENT_SECRET, tenant_id=T_S)
    world.vault.seed("customer-s-secret", CLIENT_SECRET)


def test_a_credential_without_its_fields_says_what_is_missing(
    relay_credential: ManagedIdentityCredential, secrets: KeyVaultSecrets
) -> None:
    with pytest.raises(ValueError, match="entra_tenant_id"):
        credential_for(
            DestinationCredential(APP_SECRET, client_id=APP_S),
            relay_credential=relay_credential,
            secrets=secrets,
        )
    with pytest.raises(ValueError, match="secret_ref"):
        credential_for(
            DestinationCredential(APP_CERTIFICATE, APP_C, T_C),
            relay_credential=relay_credential,
            secrets=secrets,
        )
    with pytest.raises(ValueError, match="unknown credential kind"):
        credential_for(
            DestinationCredential("password", APP_C, T_C, "x"),
            relay_credential=relay_credential,
            secrets=secrets,
        )


def test_entra_refuses_another_identity_as_the_federated_assertion(
    world: World, secrets: KeyVaultSecrets, managed_identity_env: dict[str, str], tls_ca: str
) -> None:
    """The app trusts the relay's identity only: a user-assigned identity's token is no assertion."""
    from azure.core.exceptions import ClientAuthenticationError

    other = ManagedIdentityCredential(client_id=USER_MI)
    cred = DestinationCredential(FEDERATED_IDENTITY, APP_F, T_F)
    credential = credential_for(
        cred, relay_credential=other, secrets=secrets, ca_bundle=tls_ca, authority_host=world.entra.authority
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS70021"):
        credential.get_token("https://monitor.azure.com/.default")
    other.close()
