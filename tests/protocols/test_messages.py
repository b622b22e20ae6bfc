"""The named types messages decode into: each is what some protocol's record makes."""

from __future__ import annotations

from typing import Any

import pytest

from piwheels import protocols
from piwheels.codec import ListOf, MapOf, Optional, Record, Shape
from piwheels.protocols import messages
from piwheels.protocols.messages import Ack, Chunk, Fetch, ImportRequest, RemoveRequest

TYPES = [
    value
    for name, value in vars(messages).items()
    if isinstance(value, type)
    and issubclass(value, tuple)
    and value.__module__ == messages.__name__
]


def records_within(shape: Shape | None) -> list[Record]:
    if isinstance(shape, Record):
        return [shape, *(found for field in shape.fields for found in records_within(field))]
    if isinstance(shape, ListOf):  # and SetOf
        return records_within(shape.item)
    if isinstance(shape, Optional):
        return records_within(shape.inner)
    if isinstance(shape, MapOf):
        return records_within(shape.value)
    return []


def decoded_types() -> set[Any]:
    found = set()
    for protocol in vars(protocols).values():
        if isinstance(protocol, protocols.Protocol):
            tables = (protocol.recv, protocol.send, protocol.replies)
            for shape in (shape for table in tables for shape in table.values()):
                found.update(record.into for record in records_within(shape))
    return found


@pytest.mark.parametrize("kind", TYPES, ids=lambda kind: kind.__name__)
def test_every_type_is_what_a_message_decodes_into(kind: type) -> None:
    assert kind in decoded_types()


def test_the_slaves_messages_keep_the_specs_order() -> None:
    assert Ack(3, "https://x/simple/") == (3, "https://x/simple/")
    assert Fetch._fields == ("offset", "length")
    assert Chunk._fields == ("offset", "data")
    assert ImportRequest._fields[:3] == ("slave_id", "package", "version")
    assert RemoveRequest("foo", "1.0", "").skip == ""
