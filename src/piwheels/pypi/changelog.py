"""Reading the XML-RPC changelog (``changelog_since_serial``), for mirrors that still offer it.

The master follows an index through the serials of its simple root (:mod:`.simple_index`); this
is the older way of asking what changed. xmlrpc.client has no timeout of its own, so the
transports here add one, and rows that are not the five fields the call promises are skipped
rather than believed.
"""

from __future__ import annotations

import logging
import ssl

# PyPI's XML-RPC answers are parsed by expat, which since 2.4.1 refuses exponential entity
# expansion, and xmlrpc.client never resolves external entities.
import xmlrpc.client
from datetime import UTC, datetime
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from typing import Any
from xml.parsers.expat import ExpatError

from piwheels.pypi.answers import ChangelogEntry, canonical_name
from piwheels.pypi.errors import (
    MalformedResponse,
    PyPIError,
    PyPIUnavailable,
    excerpt,
    failure_reason,
)

# The package's one logger, so that logging settings name the whole client at once.
logger = logging.getLogger("piwheels.pypi")


def read_changelog(
    url: str, serial: int, *, timeout: float, user_agent: str
) -> list[ChangelogEntry]:
    """The changelog after *serial* from the XML-RPC endpoint at *url*."""
    transport_type = _XmlRpcSafeTransport if url.startswith("https:") else _XmlRpcTransport
    transport = transport_type(timeout, user_agent)
    proxy = xmlrpc.client.ServerProxy(url, transport=transport)
    try:
        with proxy:
            rows = proxy.changelog_since_serial(serial)
    except xmlrpc.client.ProtocolError as exc:
        if exc.errcode == 429 or exc.errcode >= 500:
            raise PyPIUnavailable(url, f"HTTP {exc.errcode} {exc.errmsg}") from None
        raise PyPIError(f"{url}: HTTP {exc.errcode} {exc.errmsg}") from None
    except xmlrpc.client.Fault as exc:
        raise MalformedResponse(url, f"fault {exc.faultCode}: {exc.faultString}") from None
    except (TimeoutError, OSError, HTTPException) as exc:
        raise PyPIUnavailable(url, failure_reason(exc)) from None
    except (xmlrpc.client.ResponseError, ExpatError) as exc:
        raise MalformedResponse(url, f"bad XML-RPC response: {exc}") from None
    if not isinstance(rows, list):
        raise MalformedResponse(url, f"expected a list, got {excerpt(rows)}")
    entries = [entry for row in rows if (entry := _changelog_entry(row)) is not None]
    if len(entries) != len(rows):
        logger.warning("%s: skipped %d malformed changelog rows", url, len(rows) - len(entries))
    return entries


class _XmlRpcTransport(xmlrpc.client.Transport):
    """xmlrpc.client's transport with a timeout (it has none) and our User-Agent."""

    def __init__(self, timeout: float, user_agent: str) -> None:
        super().__init__()
        self.timeout = timeout
        self.user_agent = user_agent

    def make_connection(self, host: Any) -> HTTPConnection:
        connection = super().make_connection(host)
        # Made here but opened on first use, which is when this attribute is read.
        connection.timeout = self.timeout
        return connection


class _XmlRpcSafeTransport(xmlrpc.client.SafeTransport):
    """The same over https, verifying the certificate."""

    def __init__(self, timeout: float, user_agent: str) -> None:
        super().__init__(context=ssl.create_default_context())
        self.timeout = timeout
        self.user_agent = user_agent

    def make_connection(self, host: Any) -> HTTPSConnection:
        connection = super().make_connection(host)
        connection.timeout = self.timeout
        return connection


def _changelog_entry(row: object) -> ChangelogEntry | None:
    if not isinstance(row, list | tuple) or len(row) != 5:
        return None
    name, version, timestamp, action, serial = row
    if not isinstance(name, str) or (key := canonical_name(name)) is None:
        return None
    if type(timestamp) is not int or type(serial) is not int or not isinstance(action, str):
        return None
    return ChangelogEntry(
        name=name,
        canonical_name=key,
        version=version if isinstance(version, str) else None,
        time=datetime.fromtimestamp(timestamp, UTC),
        action=action,
        serial=serial,
    )
