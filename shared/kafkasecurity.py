"""A secured local Kafka: SASL_SSL (SCRAM-SHA-512) listener, a test CA, per-principal ACLs.

:class:`KafkaSecurity` is the :class:`~shared.kafkacluster.ClusterSecurity` of a
:class:`~shared.kafkacluster.KafkaCluster` (``LocalStack(broker="kafka",
kafka_security=KafkaSecurity())``). It

* creates a CA and a broker certificate (``localhost``, ``127.0.0.1``) with
  ``cryptography`` under ``<workdir>/tls`` (``ca.pem`` is what clients trust:
  ``VIGIE_KAFKA_SSL_CAFILE``);
* gives every principal a random password, written to
  ``<workdir>/secrets/<name>.password`` (mode 0600: ``VIGIE_KAFKA_SASL_PASSWORD_FILE``)
  and registered as a SCRAM-SHA-512 credential when the nodes are formatted;
* turns on the standard authorizer (``StandardAuthorizer``): nobody but the
  super users may do anything without an ACL.

The principals and their ACLs (:func:`acl_plan`) are the production ones, the
same as ``deploy/k8s/base/kafka/users.yaml``: each agency writes (and
describes) its own ``agency.<agency>.events`` only; each service reads and
writes only its own topics and uses only its own consumer group.

The plaintext listener stays on loopback for the brokers' own replication and
the cluster's administration (its principal, ``ANONYMOUS``, is a super user):
it stands for the internal replication listener a real deployment keeps on its
private network. Clients use :attr:`KafkaCluster.secure_bootstrap`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.topics import AGENCIES, Topics

if TYPE_CHECKING:
    from shared.kafkacluster import KafkaNode

MECHANISM = "SCRAM-SHA-512"
SERVICES = ("ingest", "correlate", "notify")
ADMIN = "vigie-admin"

#: One ACL: (principal name, resource type, resource name, operation).
Acl = tuple[str, str, str, str]


def agency_principal(agency: str) -> str:
    return f"agency-{agency}"


def service_principal(service: str) -> str:
    return f"vigie-{service}"


def acl_plan(topics: Topics, group_prefix: str = "") -> list[Acl]:
    """Every ACL of the deployment whose topic names are ``topics``' (allow rules;
    anything not listed is denied). ``group_prefix`` prefixes the consumer groups
    (``VIGIE_TOPIC_PREFIX`` in tests: ``<prefix>vigie-<service>``)."""
    acls: list[Acl] = []
    for agency in AGENCIES:
        for op in ("WRITE", "DESCRIBE"):
            acls.append((agency_principal(agency), "TOPIC", topics.inbound(agency), op))
    reads = {
        "ingest": topics.all_inbound,
        "correlate": [topics.events],
        "notify": [topics.alerts],
    }
    writes = {
        "ingest": [topics.events, topics.events_dlq],
        "correlate": [topics.alerts, topics.events_late],
        "notify": [topics.notifications, topics.notifications_dlq],
    }
    for service in SERVICES:
        who = service_principal(service)
        for topic in reads[service]:
            acls += [(who, "TOPIC", topic, "READ"), (who, "TOPIC", topic, "DESCRIBE")]
        for topic in writes[service]:
            acls += [(who, "TOPIC", topic, "WRITE"), (who, "TOPIC", topic, "DESCRIBE")]
        acls.append((who, "GROUP", f"{group_prefix}vigie-{service}", "READ"))
    # ingest fits dead letters under the DLQ topic's max.message.bytes
    acls.append((service_principal("ingest"), "TOPIC", topics.events_dlq, "DESCRIBE_CONFIGS"))
    return acls


@dataclass
class KafkaSecurity:
    """SCRAM users, TLS material and the authorizer of a local secured cluster."""

    principals: list[str] = field(
        default_factory=lambda: [
            ADMIN,
            *(agency_principal(a) for a in AGENCIES),
            *(service_principal(s) for s in SERVICES),
        ]
    )
    passwords: dict[str, str] = field(default_factory=dict)
    workdir: Path | None = None

    @property
    def cafile(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "tls" / "ca.pem"

    def password_file(self, principal: str) -> Path:
        assert self.workdir is not None
        return self.workdir / "secrets" / f"{principal}.password"

    def prepare(self, workdir: Path) -> None:
        """Write the CA, the broker's key and certificate, and one password file per
        principal (kept when they exist: a restarted cluster keeps its users)."""
        self.workdir = workdir
        tls, secret_dir = workdir / "tls", workdir / "secrets"
        tls.mkdir(parents=True, exist_ok=True)
        secret_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.cafile.exists():
            ca_pem, server_pem = _make_tls()
            (tls / "server.pem").write_bytes(server_pem)
            os.chmod(tls / "server.pem", 0o600)
            self.cafile.write_bytes(ca_pem)
        for name in self.principals:
            path = self.password_file(name)
            if not path.exists():
                path.write_text(secrets.token_urlsafe(24))
                os.chmod(path, 0o600)
            self.passwords[name] = path.read_text().strip()

    def broker_properties(self, node: KafkaNode) -> dict[str, Any]:
        assert self.workdir is not None
        prefix = "listener.name.sasl_ssl."
        return {
            "sasl.enabled.mechanisms": MECHANISM,
            f"{prefix}sasl.enabled.mechanisms": MECHANISM,
            f"{prefix}{MECHANISM.lower()}.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            f"{prefix}ssl.keystore.type": "PEM",
            f"{prefix}ssl.keystore.location": str(self.workdir / "tls" / "server.pem"),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:ANONYMOUS;User:{ADMIN}",
        }

    def format_args(self) -> list[str]:
        args: list[str] = []
        for name, password in self.passwords.items():
            args += ["--add-scram", f"{MECHANISM}=[name={name},password={password}]"]
        return args

    def client_env(self, principal: str) -> dict[str, str]:
        """The ``VIGIE_KAFKA_*`` security settings of a client acting as ``principal``."""
        return {
            "VIGIE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "VIGIE_KAFKA_SASL_MECHANISM": MECHANISM,
            "VIGIE_KAFKA_SASL_USERNAME": principal,
            "VIGIE_KAFKA_SASL_PASSWORD_FILE": str(self.password_file(principal)),
            "VIGIE_KAFKA_SSL_CAFILE": str(self.cafile),
        }

    def client_options(self, principal: str, password: str | None = None) -> dict[str, Any]:
        """aiokafka arguments for ``principal`` (``password``: to try a wrong one)."""
        from aiokafka.helpers import create_ssl_context

        return {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": MECHANISM,
            "sasl_plain_username": principal,
            "sasl_plain_password": self.passwords[principal] if password is None else password,
            "ssl_context": create_ssl_context(cafile=str(self.cafile)),
        }


def apply_acls(bootstrap: str, acls: list[Acl]) -> None:
    """Create ``acls`` (allow, any host) through the plaintext (super user) listener.

    Raises ``RuntimeError`` naming the first ACL the cluster refused.
    """
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        KafkaAdminClient,
        ResourcePattern,
        ResourceType,
    )

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id="vigie-acls")
    try:
        result = admin.create_acls(
            [
                ACL(
                    principal=f"User:{who}",
                    host="*",
                    operation=ACLOperation[op],
                    permission_type=ACLPermissionType.ALLOW,
                    resource_pattern=ResourcePattern(ResourceType[kind], name),
                )
                for who, kind, name, op in acls
            ]
        )
    finally:
        admin.close()
    if result.get("failed"):
        first = result["failed"][0]
        raise RuntimeError(f"the cluster refused an ACL: {first}")


def _make_tls() -> tuple[bytes, bytes]:
    """A CA certificate, and the broker's PKCS#8 key followed by its certificate chain."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Vigie local test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_pem = ca.public_bytes(pem)
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ca_pem, key_pem + cert.public_bytes(pem) + ca_pem
