"""Whom Helpline believes when it calls out over TLS: the public certificate
authorities, and those of the operator's ``HELPLINE_TLS_CA_FILE``.

Mail servers and webhook receivers inside an organization often carry
certificates of the organization's own authority. Naming its PEM file lets
Helpline check them, for SMTP (STARTTLS and ``smtps://``) and for ``https``
webhooks alike, without turning checks off.
"""

from __future__ import annotations

import ssl

CA_FILE_VARIABLE = "HELPLINE_TLS_CA_FILE"


def check_ca_file(path: str) -> str:
    """``path``, once it is known to hold certificates in PEM form; raises
    ValueError, naming the variable, for a file that cannot be read or used."""
    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError:  # before OSError, of which it is a kind
        raise ValueError(
            f"{CA_FILE_VARIABLE} ({path}) holds no certificate in PEM form "
            "(-----BEGIN CERTIFICATE-----)"
        ) from None
    except OSError as error:  # FileNotFoundError, PermissionError, a directory
        reason = error.strerror or type(error).__name__
        raise ValueError(
            f"{CA_FILE_VARIABLE} ({path}) cannot be read: {reason}; name a PEM "
            "file of the certificate authorities to trust"
        ) from None
    return path


def trusting(context: ssl.SSLContext, ca_file: str | None) -> ssl.SSLContext:
    """``context``, made to trust the authorities in ``ca_file`` as well."""
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    return context
