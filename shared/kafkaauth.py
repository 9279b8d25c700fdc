"""How every Vigie client authenticates to Kafka, from the ``VIGIE_KAFKA_*`` settings.

One source for the workers (Faust's ``broker_credentials``), the admin and
check helpers of :mod:`shared.kafka`, ``vigie replay`` and the benches:

* :func:`client_options`: the aiokafka keyword arguments
  (``security_protocol``, ``sasl_mechanism``, ``sasl_plain_username``,
  ``sasl_plain_password``, ``ssl_context``) for a settings object;
* :func:`faust_credentials`: the same, as Faust credentials.

The password is read from ``VIGIE_KAFKA_SASL_PASSWORD_FILE`` (a mounted
Secret), never from the environment. A setting Vigie cannot use raises
:class:`~shared.settings.SettingsError` with one line naming it; a password
the broker refuses surfaces at start as
:class:`~shared.kafka.BrokerUnreachable` naming ``VIGIE_KAFKA_SASL_USERNAME``.
"""

from __future__ import annotations

import ssl
from typing import Any

import faust
from aiokafka.helpers import create_ssl_context

from shared.settings import Settings, SettingsError

#: aiokafka keyword arguments of a client's security (empty: plaintext).
ClientOptions = dict[str, Any]


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    cafile = settings.kafka_ssl_cafile
    try:
        context: ssl.SSLContext = create_ssl_context(cafile=str(cafile) if cafile else None)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(f"bad setting VIGIE_KAFKA_SSL_CAFILE: {exc}") from None
    return context


def _password(settings: Settings) -> str:
    path = settings.kafka_sasl_password_file
    if path is None:
        raise SettingsError("bad setting VIGIE_KAFKA_SASL_PASSWORD_FILE: required with SASL")
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeError) as exc:
        raise SettingsError(f"bad setting VIGIE_KAFKA_SASL_PASSWORD_FILE: {exc}") from None


def client_options(settings: Settings) -> ClientOptions:
    """The aiokafka security arguments for ``settings`` (``{}`` for plaintext)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    options: ClientOptions = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = _ssl_context(settings)
    if protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = _password(settings)
    return options


def faust_credentials(settings: Settings) -> Any:
    """Faust's ``broker_credentials`` for ``settings`` (``None`` for plaintext)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = _ssl_context(settings) if protocol in ("SSL", "SASL_SSL") else None
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=_password(settings),
        ssl_context=context,
        mechanism=settings.kafka_sasl_mechanism,
    )
