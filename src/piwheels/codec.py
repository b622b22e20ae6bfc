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


def _found(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Scalar(Shape):
    """A value of one Python type, optionally with a length bound (for strings and bytes)."""

    def __init__(self, kind: type, *, max_len: int | None = None) -> None:
        self.kind = kind
        self.max_len = max_len

    def take(self, value: Any) -> Any:
        kind = self.kind
        if type(value) is not kind:  # rare: nearly every value is of exactly the declared type
            if kind is float and type(value) is int:
                return float(value)
            # bool is a subclass of int: a True where a count belongs is a malformed message
            if type(value) is bool or not isinstance(value, kind):
                raise ShapeError(f"expected {self.describe()}, found {_found(value)}")
        if kind is datetime and value.tzinfo is None:
            raise ShapeError("a datetime must carry its timezone")
        if self.max_len is not None and len(value) > self.max_len:
            raise ShapeError(f"longer than {self.max_len} ({len(value)})")
        return value

    def describe(self) -> str:
        return self.kind.__name__


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
            raise ShapeError(f"expected a list, found {_found(value)}")
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
    """A fixed-length array whose fields decode into a ``NamedTuple`` (or a plain tuple)."""

    def __init__(self, fields: Iterable[Shape], into: Callable[..., Any] | None = None) -> None:
        self.fields = tuple(fields)
        self.into = into
        self.names: tuple[str, ...] = getattr(into, "_fields", ()) or tuple(
            str(i) for i in range(len(self.fields))
        )
        if len(self.names) != len(self.fields):
            raise TypeError(f"{into!r} has {len(self.names)} fields, shape has {len(self.fields)}")
        self._takes = tuple(shape.take for shape in self.fields)

    def take(self, value: Any) -> Any:
        if not isinstance(value, list | tuple) or len(value) != len(self.fields):
            raise ShapeError(
                f"expected {len(self.fields)} fields ({', '.join(self.names)}), "
                f"found {_found(value)}"
            )
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
            raise ShapeError(f"expected a map, found {_found(value)}")
        result = {}
        for k, v in value.items():
            try:
                key = self.key.take(k)
            except ShapeError as exc:
                raise exc.within(" key") from None
            try:
                result[key] = self.value.take(v)
            except ShapeError as exc:
                raise exc.within(f"[{k!r}]") from None
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
Str = Scalar(str, max_len=1024)
Text = Scalar(str, max_len=16 * 1024 * 1024)  # build logs
Int = Scalar(int)
Bool = Scalar(bool)
Float = Scalar(float)
Bytes = Scalar(bytes)
DateTime = Scalar(datetime)
Duration = Scalar(timedelta)
OptStr = Optional(Str)


class Field(NamedTuple):
    """A helper for readers of :mod:`piwheels.protocols`: a named field and its shape."""

    name: str
    shape: Shape
