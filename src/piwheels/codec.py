"""Shapes of message data, and checking decoded wire data against them.

A shape says what a message's data must look like: scalars (``str``, ``int`` ...), optional
values, lists, sets and fixed records that decode into a ``NamedTuple``. Every message is checked
against its shape when it is sent and when it is received, so a slave (which is untrusted) can
never hand a task something it did not declare.

Each shape checks in two ways. :meth:`Shape.take` walks the declaration and says where a bad
value is: it is the reference, and what explains a refusal. :meth:`Shape.check` and
:meth:`Shape.validate` run a checker compiled from the declaration the first time the shape is
used (see :mod:`piwheels.shape_compiler`), a few times faster, which only answers yes or no; on
a no, ``take`` runs to say why. Both accept exactly the same values (tests/fuzz/test_fuzz_codec.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple, TypeGuard

from piwheels.shape_compiler import (
    Checker,
    CompilableShape,
    Source,
    compile_checker,
    plain_named_tuple,
)


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
# What fits a signed 64-bit column, PostgreSQL's bigint.
INT64_MIN, INT64_END = -(1 << 63), 1 << 63


class Shape:
    """Base of all shapes.

    Subclasses implement :meth:`take`, which says nothing of where a bad value was: a
    container adds its part of the location only when an error passes through it. They
    implement :meth:`emit` too, the code of their compiled checker.
    """

    def check(self, value: Any, where: str) -> Any:
        """*value* as the receiving code wants it (a record as its NamedTuple, a set as a
        frozenset...), or ShapeError saying what was wrong where (after *where*).

        The first call compiles the checker that answers every later one in its place."""
        return self.checker(build=True)(value, where)

    def validate(self, value: Any, where: str) -> None:
        """:meth:`check` for a sender, which keeps its own value: nothing is built."""
        self.checker(build=False)(value, where)

    def checker(self, build: bool) -> Checker:
        """The compiled ``check`` (*build*) or ``validate``, compiled now if it was not yet."""
        name = "check" if build else "validate"
        installed: Checker | None = vars(self).get(name)
        return installed or self._install(name, self._compile(self, build))

    def _install(self, name: str, checker: Checker) -> Checker:
        # the instance's own attribute, found before the method: a call is then one call
        vars(self)[name] = checker
        return checker

    def _compile(self, shape: CompilableShape, build: bool, explained: str = "original") -> Checker:
        return compile_checker(shape, build, self._explain, self.describe(), explained)

    def _explain(self, value: Any, where: str) -> Any:
        try:
            return self.take(value)
        except ShapeError as exc:
            raise exc.within(where) from None

    def take(self, value: Any) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def emit(self, src: Source, var: str, depth: int, build: bool) -> None:
        """Write the code that checks the value in the local *var* and leaves in it the value
        as :meth:`take` gives it (raising anything on a mismatch). A shape without code of its
        own calls its :meth:`take`."""
        src.line(depth, f"{var} = {src.ref(self.take)}({var})")


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

    def emit(self, src: Source, var: str, depth: int, build: bool) -> None:
        # A value of exactly the declared kind that passes every check is taken as it is; any
        # other (an int for a float, a subclass, too long, a mistake) goes to take(), which
        # converts or refuses it.
        unusual = " or ".join([f"type({var}) is not {src.ref(self.kind)}", *self.flaws(var)])
        src.line(depth, f"if {unusual}: {var} = {src.ref(self.take)}({var})")

    def flaws(self, var: str) -> list[str]:
        """Conditions on *var*, of exactly the declared kind, under which take() would not
        return it as it is (it refuses or cuts it)."""
        flaws = []
        if self.kind is datetime:
            flaws.append(f"{var}.tzinfo is None")
        if self.max_len is not None:
            flaws.append(f"len({var}) > {self.max_len}")
        if self.printable:
            flaws.append(f"not {var}.isprintable()")
        return flaws


class Integer(Scalar):
    """An int that fits a signed 64-bit column: what PostgreSQL and every peer can hold."""

    def __init__(self) -> None:
        super().__init__(int)

    def take(self, value: Any) -> Any:
        value = super().take(value)
        if not INT64_MIN <= value < INT64_END:
            raise ShapeError(f"out of range: {describe_value(value)}")
        return value

    def flaws(self, var: str) -> list[str]:
        # cheaper than comparing with 2**63, an int of three digits; -2**63 goes to take()
        return [*super().flaws(var), f"{var}.bit_length() > 63"]


class Optional(Shape):
    """``None`` or a value of the inner shape."""

    def __init__(self, inner: Shape) -> None:
        self.inner = inner

    def take(self, value: Any) -> Any:
        return None if value is None else self.inner.take(value)

    def describe(self) -> str:
        return f"{self.inner.describe()} | None"

    def emit(self, src: Source, var: str, depth: int, build: bool) -> None:
        src.line(depth, f"if {var} is not None:")
        src.nested(self.inner, var, depth + 1, build)


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

    def emit(self, src: Source, var: str, depth: int, build: bool) -> None:
        kinds = src.ref(frozenset({list, tuple, set, frozenset}))
        src.line(depth, f"if type({var}) in {kinds}:")
        src.line(depth + 1, f"if len({var}) > {self.max_items}: raise Mismatch")
        item, items = src.local("item"), src.local("items")
        if build:
            src.line(depth + 1, f"{items} = []")
        src.line(depth + 1, f"for {item} in {var}:")
        src.nested(self.item, item, depth + 2, build)
        if build:
            src.line(depth + 2, f"{items}.append({item})")
            src.line(depth + 1, f"{var} = {self.emit_result(src, items)}")
        src.line(depth, "else:")  # a subclass, or no list at all
        src.line(depth + 1, f"{var} = {src.ref(self.take)}({var})")

    def emit_result(self, src: Source, items: str) -> str:
        """The expression of the value made of the list *items* (a list, here)."""
        return items


class SetOf(ListOf):
    """A set; CBOR has no set type we want to depend on, so it travels as a list."""

    def take(self, value: Any) -> Any:
        return frozenset(self._items(value))

    def emit_result(self, src: Source, items: str) -> str:
        return f"{src.ref(frozenset)}({items})"


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

    def check_after_action(self, message: list[Any], where: str) -> Any:
        """:meth:`check` of the fields after the action in the list *message* (``[action,
        *fields]``, as a record travels), without copying them out first."""
        checker = self._compile(_AfterAction(self), True, "original[1:]")
        return self._install("check_after_action", checker)(message, where)

    def emit(self, src: Source, var: str, depth: int, build: bool) -> None:
        self.emit_fields(src, var, depth, build, 0)

    def emit_fields(self, src: Source, var: str, depth: int, build: bool, skip: int) -> None:
        """The code of :meth:`emit` for a record whose fields follow *skip* other items."""
        least, most = self.required + skip, len(self.fields) + skip
        if not skip:  # else the caller has seen the message is a list
            sequence = f"isinstance({var}, {src.ref((list, tuple))})"
            if not build and plain_named_tuple(self.into):  # a sender's own record
                sequence = f"type({var}) is {src.ref(self.into)} or {sequence}"
            src.line(depth, f"if not ({sequence}): raise Mismatch")
        # Unpacking a list or tuple below refuses any length but the number of fields.
        if least < most:
            src.line(depth, f"if not {least} <= len({var}) <= {most}: raise Mismatch")
            padding = f"[None] * ({most} - len({var}))"  # the optional fields left off
            src.line(depth, f"if len({var}) < {most}: {var} = [*{var}, *{padding}]")
        names = [src.local("field") for _ in self.fields]
        src.line(depth, f"[{', '.join(['_'] * skip + names)}] = {var}")
        fields = list(zip(self.fields, names, strict=True))
        texts = [(shape, name) for shape, name in fields if _short_text(shape)]
        if len(texts) > 1:  # checked at once: joined
            bound = min(int(shape.max_len or 0) for shape, _ in texts)
            src.joined_texts([(shape.take, name) for shape, name in texts], bound, depth)
            fields = [field for field in fields if field not in texts]
        for shape, name in fields:
            src.nested(shape, name, depth, build)
        if not build:
            return
        values = f"({''.join(f'{name}, ' for name in names)})"
        if self.into is None:
            src.line(depth, f"{var} = {values}")
        elif plain_named_tuple(self.into):
            src.line(depth, f"{var} = {src.ref(tuple.__new__)}({src.ref(self.into)}, {values})")
        else:
            src.line(depth, f"{var} = {src.ref(self.into)}(*{values})")


def _short_text(shape: Shape) -> TypeGuard[Scalar]:
    """Whether *shape* is a printable string short enough to be checked joined to others."""
    return (
        isinstance(shape, Scalar)
        and shape.kind is str
        and shape.printable
        and not shape.clip
        and shape.max_len is not None
        and shape.max_len <= 1 << 16
    )


class _AfterAction:
    """A record as the compiler sees it when its fields follow a message's action."""

    def __init__(self, record: Record) -> None:
        self.record = record

    def emit(self, src: Source, var: str, depth: int, build: bool) -> None:
        self.record.emit_fields(src, var, depth, build, 1)

    def checker(self, build: bool) -> Checker:
        raise AssertionError("a record after its action is never nested in another shape")


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

    def emit(self, src: Source, var: str, depth: int, build: bool) -> None:
        key, value, result = src.local("key"), src.local("value"), src.local("map")
        src.line(depth, f"if type({var}) is dict:")
        if build:
            src.line(depth + 1, f"{result} = {{}}")
        src.line(depth + 1, f"for {key}, {value} in {var}.items():")
        src.nested(self.key, key, depth + 2, build)
        src.nested(self.value, value, depth + 2, build)
        if build:
            src.line(depth + 2, f"{result}[{key}] = {value}")
            src.line(depth + 1, f"{var} = {result}")
        src.line(depth, "else:")  # a subclass, or no map at all
        src.line(depth + 1, f"{var} = {src.ref(self.take)}({var})")


class AnyValue(Shape):
    """Data the receiving code validates itself (internal messages carrying plain rows)."""

    def take(self, value: Any) -> Any:
        return value

    def describe(self) -> str:
        return "any"

    def emit(self, src: Source, var: str, depth: int, build: bool) -> None:
        pass  # any value is itself


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
