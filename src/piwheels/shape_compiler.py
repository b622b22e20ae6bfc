"""Compiling a shape of :mod:`piwheels.codec` into one Python function that checks its values.

Walking a declaration value by value costs a method call per field, list item and record: for a
BUILT of ten wheels, several hundred calls, which made checking it cost five times what cbor2
takes to decode it. Compiled, a whole message is checked by one function whose code is the
declaration spelled out, nested shapes inlined::

    [_, field_1, field_2] = value
    if type(field_2) is not ref_3 or field_2.bit_length() > 63: field_2 = ref_4(field_2)

where ``ref_3`` is ``int`` and ``ref_4`` the field's own ``take``, which converts or refuses
whatever is not exactly of the declared kind (rare: cbor2 makes exact types). Each record is
built by ``tuple.__new__`` straight from its fields.

The source is made from the declarations alone, the objects it names (types, constructors,
shapes' methods) passed to it by reference: nothing a peer sends ever becomes code. A compiled
checker only says yes (the value, converted) or no (any exception, mostly :class:`Mismatch`);
the shape's own ``take`` then says what was wrong and where.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any

# check(value, where) or validate(value, where) of a shape (see piwheels.codec.Shape)
Checker = Callable[[Any, str], Any]

# Past this many levels of indentation, a nested shape gets a function of its own: Python
# refuses more than 20 nested loops in one function, and a list nests two levels.
MAX_INLINE_DEPTH = 24


class Mismatch(Exception):
    """A compiled checker's refusal, which says nothing of why (the shape's take() does)."""


class CompilableShape(typing.Protocol):
    """What the compiler needs of a shape (piwheels.codec.Shape, which imports this module)."""

    def emit(self, src: Source, var: str, depth: int, build: bool) -> None: ...

    def checker(self, build: bool) -> Checker: ...


class Source:
    """The lines of one checker being written, and the objects its code refers to by name."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.refs: dict[str, object] = {"Mismatch": Mismatch}
        self._ref_names: dict[int, str] = {}  # the objects in refs (kept alive by it) by id
        self._locals = 0

    def line(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def local(self, prefix: str) -> str:
        """A name for a local variable that no other part of the checker uses."""
        self._locals += 1
        return f"{prefix}_{self._locals}"

    def ref(self, value: object) -> str:
        """The name under which the checker's code sees *value*."""
        name = self._ref_names.get(id(value))
        if name is None:
            name = self._ref_names[id(value)] = f"ref_{len(self._ref_names)}"
            self.refs[name] = value
        return name

    def nested(self, shape: CompilableShape, var: str, depth: int, build: bool) -> None:
        """The code of *shape*, checking *var*, as a block of its own at *depth*."""
        start = len(self.lines)
        if depth > MAX_INLINE_DEPTH:  # its refusal (a ShapeError) is then explained again
            call = f"{self.ref(shape.checker(build))}({var}, '')"
            self.line(depth, f"{var} = {call}" if build else call)
        else:
            shape.emit(self, var, depth, build)
        if len(self.lines) == start:  # a shape that takes any value: a block needs a line
            self.line(depth, "pass")

    def joined_texts(
        self, texts: list[tuple[Callable[[Any], Any], str]], bound: int, depth: int
    ) -> None:
        """The code checking at once several short printable strings, each ``(its shape's
        take, the local holding it)``: joined, they are no longer than *bound* and printable
        if each one is, while any value but a string makes join() raise. Joined longer than
        *bound* (or unprintable), each is checked alone."""
        joined = self.local("joined")
        self.line(depth, f"{joined} = ''.join(({''.join(f'{name}, ' for _, name in texts)}))")
        self.line(depth, f"if len({joined}) > {bound} or not {joined}.isprintable():")
        for take, name in texts:
            self.line(depth + 1, f"{name} = {self.ref(take)}({name})")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def plain_named_tuple(into: Callable[..., Any] | None) -> bool:
    """Whether *into* is a NamedTuple class of its own, which ``tuple.__new__`` makes as its
    constructor would (typing.NamedTuple forbids overriding ``__new__``; a subclass could)."""
    return (
        isinstance(into, type)
        and into.__bases__ == (tuple,)
        and "_fields" in vars(into)
        and "__new__" in vars(into)
    )


def checker_source(shape: CompilableShape, build: bool, explained: str = "original") -> Source:
    """The source of *shape*'s checker, ``checker(value, where)``: it returns the value as the
    receiving code wants it (*build*), or None having only checked it. On a refusal it returns
    what ``explain(explained, where)`` does, which raises the ShapeError that says why."""
    src = Source()
    src.line(0, "def checker(value, where):")
    src.line(1, "original = value")
    src.line(1, "try:")
    src.nested(shape, "value", 2, build)
    src.line(1, "except Exception:")
    src.line(2, f"return explain({explained}, where)")
    src.line(1, "return value" if build else "return None")
    return src


def compile_checker(
    shape: CompilableShape,
    build: bool,
    explain: Checker,
    description: str,
    explained: str = "original",
) -> Checker:
    """*shape*'s checker as a function (see :func:`checker_source`)."""
    src = checker_source(shape, build, explained)
    src.refs["explain"] = explain
    code = compile(src.text(), f"<checker of {description[:80]}>", "exec")
    namespace: dict[str, Any] = dict(src.refs)
    exec(code, namespace)  # noqa: S102 (code written from a declaration, never from data)
    checker: Checker = namespace["checker"]
    return checker
