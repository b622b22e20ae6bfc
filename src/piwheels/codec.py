"""Shapes of message data, and checking decoded wire data against them.

A shape says what a message's data must look like: scalars (``str``, ``int`` ...), optional
values, lists, sets and fixed records that decode into a ``NamedTuple``. Every message is checked
against its shape when it is sent and when it is received, so a slave (which is untrusted) can
never hand a task something it did not declare.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple


class ShapeError(ValueError):
    """Data does not have the declared shape; the message says where and what was found."""

    def __init__(self, reason: str, path: str = "") -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.reason = reason
        self.path = path

    def within(self, outer: str) -> ShapeError:
        """The same error, seen from the container holding the value at *outer*."""
        return ShapeError(self.reason, outer + self.path)


# An int a float field accepts: beyond this float() overflows (a peer's 2**1100 as a load average).
MAX_FLOAT_INT = 1 << 1000


class Shape:
    """Base of all shapes: :meth:`check` returns the value as the receiving code wants it.

    Subclasses implement :meth:`take`, which says nothing of where a bad value was: a
    container adds its part of the location only when an error passes through it, so a good
    message (nearly all of them) costs no string building at all.
    """

    def check(self, value: Any, where: str) -> Any:
        try:
            return self.take(value)
        except ShapeError as exc:
            raise exc.within(where) from None

    def take(self, value: Any) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


def describe_value(value: Any) -> str:
    """A short description of *value* for an error message, whatever a peer sent.

    Never the whole repr: a peer's integer of 5,000 digits has no str() at all (Python refuses
    to convert it), a nested list has a repr as deep as its nesting, and a 16 MB string has one
    as long. Only what is already short is quoted.
    """
    if isinstance(value, bool | float) or value is None:
        return repr(value)
    if isinstance(value, int):
        return (
            repr(value)
            if -(10**30) < value < 10**30
            else f"an integer of {value.bit_length()} bits"
        )
    if isinstance(value, str | bytes | bytearray | memoryview):
        head = bytes(value[:57]) if isinstance(value, memoryview) else value[:57]
        return repr(head) + ("..." if len(value) > 57 else "")
    if isinstance(value, list | tuple | set | frozenset | dict):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


class Scalar(Shape):
    """A value of one Python type, optionally with a length bound (for strings and bytes)."""

    def __init__(
        self,
        kind: type,
        *,
        max_len: int | None = None,
        clip: bool = False,
        printable: bool = False,
    ) -> None:
        self.kind: type[Any] = kind
        self.max_len = max_len
        self.clip = clip  # cut an over-long value to max_len rather than refuse it
        # no control characters: a name or label a peer sends ends up in one line of the log
        self.printable = printable

    def take(self, value: Any) -> Any:
        kind = self.kind
        if type(value) is not kind:  # rare: nearly every value is of exactly the declared type
            if kind is float and type(value) is int:
                if not -MAX_FLOAT_INT < value < MAX_FLOAT_INT:
                    raise ShapeError(f"expected a float, found {describe_value(value)}")
                return float(value)
            # bool is a subclass of int: a True where a count belongs is a malformed message
            if type(value) is bool or not isinstance(value, kind):
                raise ShapeError(f"expected {self.describe()}, found {describe_value(value)}")
        if kind is datetime and value.tzinfo is None:
            raise ShapeError("a datetime must carry its timezone")
        if self.max_len is not None and len(value) > self.max_len:
            if self.clip:
                return value[: self.max_len - 3] + "..."
            raise ShapeError(f"longer than {self.max_len} ({len(value)})")
        if self.printable and not value.isprintable():
            raise ShapeError(f"unprintable characters in {describe_value(value)}")
        return value

    def describe(self) -> str:
        return self.kind.__name__


class Integer(Scalar):
    """An int that fits a signed 64-bit column: what PostgreSQL and every peer can hold."""

    def __init__(self) -> None:
        super().__init__(int)

    def take(self, value: Any) -> Any:
        value = super().take(value)
        if not -(1 << 63) <= value < 1 << 63:
            raise ShapeError(f"out of range: {describe_value(value)}")
        return value


class Optional(Shape):
    """``None`` or a value of the inner shape."""

    def __init__(self, inner: Shape) -> None:
        self.inner = inner

    def take(self, value: Any) -> Any:
        return None if value is None else self.inner.take(value)

    def describe(self) -> str:
        return f"{self.inner.describe()} | None"


class ListOf(Shape):
    """A list of any length (bounded) of one shape."""

    def __init__(self, item: Shape, *, max_items: int = 100_000) -> None:
        self.item = item
        self.max_items = max_items

    def _items(self, value: Any) -> list[Any]:
        if not isinstance(value, list | tuple | set | frozenset):
            raise ShapeError(f"expected a list, found {describe_value(value)}")
        if len(value) > self.max_items:
            raise ShapeError(f"more than {self.max_items} items")
        take = self.item.take
        try:
            return [take(v) for v in value]
        except ShapeError:
            pass
        for i, v in enumerate(value):  # only to say which item was bad
            try:
                take(v)
            except ShapeError as exc:
                raise exc.within(f"[{i}]") from None
        raise AssertionError("unreachable: an item failed once but not twice")

    def take(self, value: Any) -> Any:
        return self._items(value)

    def describe(self) -> str:
        return f"[{self.item.describe()}, ...]"


class SetOf(ListOf):
    """A set; CBOR has no set type we want to depend on, so it travels as a list."""

    def take(self, value: Any) -> Any:
        return frozenset(self._items(value))


class Record(Shape):
    """A fixed-length array whose fields decode into a ``NamedTuple`` (or a plain tuple).

    With *required*, the fields after the first *required* may be left off the end (they
    decode as None): a field added to a message of the spec keeps peers that do not know it,
    such as the original piwheels, speaking it.
    """

    def __init__(
        self,
        fields: Iterable[Shape],
        into: Callable[..., Any] | None = None,
        *,
        required: int | None = None,
    ) -> None:
        self.fields = tuple(fields)
        self.into = into
        self.required = len(self.fields) if required is None else required
        self.names: tuple[str, ...] = getattr(into, "_fields", ()) or tuple(
            str(i) for i in range(len(self.fields))
        )
        if len(self.names) != len(self.fields):
            raise TypeError(f"{into!r} has {len(self.names)} fields, shape has {len(self.fields)}")
        self._takes = tuple(shape.take for shape in self.fields)

    def take(self, value: Any) -> Any:
        if not isinstance(value, list | tuple) or not (
            self.required <= len(value) <= len(self.fields)
        ):
            count = str(len(self.fields))
            if self.required < len(self.fields):
                count = f"{self.required} to {count}"
            raise ShapeError(
                f"expected {count} fields ({', '.join(self.names)}), found {describe_value(value)}"
            )
        if len(value) < len(self.fields):  # the optional fields left off: each Optional
            value = [*value, *[None] * (len(self.fields) - len(value))]
        try:
            items = [take(v) for take, v in zip(self._takes, value, strict=True)]
        except ShapeError:
            for take, name, v in zip(self._takes, self.names, value, strict=True):
                try:
                    take(v)
                except ShapeError as exc:
                    raise exc.within(f".{name}") from None
            raise AssertionError("unreachable: a field failed once but not twice") from None
        return self.into(*items) if self.into is not None else tuple(items)

    def describe(self) -> str:
        return f"({', '.join(f.describe() for f in self.fields)})"


class MapOf(Shape):
    """A dict from one shape to another (used only between the master's own tasks)."""

    def __init__(self, key: Shape, value: Shape) -> None:
        self.key = key
        self.value = value

    def take(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ShapeError(f"expected a map, found {describe_value(value)}")
        result = {}
        for k, v in value.items():
            try:
                key = self.key.take(k)
            except ShapeError as exc:
                raise exc.within(" key") from None
            try:
                result[key] = self.value.take(v)
            except ShapeError as exc:
                raise exc.within(f"[{describe_value(k)}]") from None
        return result

    def describe(self) -> str:
        return f"{{{self.key.describe()}: {self.value.describe()}}}"


class AnyValue(Shape):
    """Data the receiving code validates itself (internal messages carrying plain rows)."""

    def take(self, value: Any) -> Any:
        return value

    def describe(self) -> str:
        return "any"


# Short names for declaring protocols readably.
Str = Scalar(str, max_len=1024, printable=True)
Text = Scalar(str, max_len=16 * 1024 * 1024)  # build logs
Int = Integer()
Bool = Scalar(bool)
Float = Scalar(float)
Bytes = Scalar(bytes)
DateTime = Scalar(datetime)
Duration = Scalar(timedelta)
OptStr = Optional(Str)
# Why something was refused: cut to what may be sent rather than refused, so that an error
# quoting a peer's over-long input can still be sent back (and never stops the task sending it).
Reason = Scalar(str, max_len=1024, clip=True)


class Field(NamedTuple):
    """A helper for readers of :mod:`piwheels.protocols`: a named field and its shape."""

    name: str
    shape: Shape
