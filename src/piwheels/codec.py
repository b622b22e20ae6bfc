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


class Shape:
    """Base of all shapes: :meth:`check` returns the value as the receiving code wants it."""

    def check(self, value: Any, where: str) -> Any:
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

    def check(self, value: Any, where: str) -> Any:
        kind = self.kind
        # bool is a subclass of int: a True where a count belongs is a malformed message
        if type(value) is bool and kind is not bool:
            raise ShapeError(f"{where}: expected {self.describe()}, found {_found(value)}")
        if kind is float and type(value) is int:
            return float(value)
        if not isinstance(value, kind):
            raise ShapeError(f"{where}: expected {self.describe()}, found {_found(value)}")
        if kind is datetime and value.tzinfo is None:
            raise ShapeError(f"{where}: a datetime must carry its timezone")
        if self.max_len is not None and len(value) > self.max_len:
            raise ShapeError(f"{where}: longer than {self.max_len} ({len(value)})")
        return value

    def describe(self) -> str:
        return self.kind.__name__


class Optional(Shape):
    """``None`` or a value of the inner shape."""

    def __init__(self, inner: Shape) -> None:
        self.inner = inner

    def check(self, value: Any, where: str) -> Any:
        return None if value is None else self.inner.check(value, where)

    def describe(self) -> str:
        return f"{self.inner.describe()} | None"


class ListOf(Shape):
    """A list of any length (bounded) of one shape."""

    def __init__(self, item: Shape, *, max_items: int = 100_000) -> None:
        self.item = item
        self.max_items = max_items

    def _items(self, value: Any, where: str) -> Iterable[Any]:
        if not isinstance(value, list | tuple | set | frozenset):
            raise ShapeError(f"{where}: expected a list, found {_found(value)}")
        if len(value) > self.max_items:
            raise ShapeError(f"{where}: more than {self.max_items} items")
        return (self.item.check(v, f"{where}[{i}]") for i, v in enumerate(value))

    def check(self, value: Any, where: str) -> Any:
        return list(self._items(value, where))

    def describe(self) -> str:
        return f"[{self.item.describe()}, ...]"


class SetOf(ListOf):
    """A set; CBOR has no set type we want to depend on, so it travels as a list."""

    def check(self, value: Any, where: str) -> Any:
        return frozenset(self._items(value, where))


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

    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, list | tuple) or len(value) != len(self.fields):
            raise ShapeError(
                f"{where}: expected {len(self.fields)} fields ({', '.join(self.names)}), "
                f"found {_found(value)}"
            )
        items = [
            shape.check(v, f"{where}.{name}")
            for shape, name, v in zip(self.fields, self.names, value, strict=True)
        ]
        return self.into(*items) if self.into is not None else tuple(items)

    def describe(self) -> str:
        return f"({', '.join(f.describe() for f in self.fields)})"


class MapOf(Shape):
    """A dict from one shape to another (used only between the master's own tasks)."""

    def __init__(self, key: Shape, value: Shape) -> None:
        self.key = key
        self.value = value

    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, dict):
            raise ShapeError(f"{where}: expected a map, found {_found(value)}")
        return {
            self.key.check(k, f"{where} key"): self.value.check(v, f"{where}[{k!r}]")
            for k, v in value.items()
        }

    def describe(self) -> str:
        return f"{{{self.key.describe()}: {self.value.describe()}}}"


class AnyValue(Shape):
    """Data the receiving code validates itself (internal messages carrying plain rows)."""

    def check(self, value: Any, where: str) -> Any:
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
