"""How a system call handler is declared: argument kinds, the ``@syscall`` decorator, errors.

A handler is ``def sys_NAME(p: Process, arg: TYPE, ...) -> int | None`` (``Process`` is the
narrow interface of :mod:`.kernel`). Its parameters after the process are the syscall
arguments in order; their annotations say how to convert the raw 64-bit register
(introspected ONCE, by :func:`syscall`, when the handler's module is imported):

========  ===================================================
``U64``   unsigned 64-bit (sizes, flags, raw values)
``Ptr``   a guest address
``I64``   signed 64-bit (offsets)
``I32``   signed 32-bit (ints: signal numbers, clock ids...)
``U32``   unsigned 32-bit (modes, flags declared ``unsigned int``)
``Fd``    a file descriptor / dirfd (signed 32-bit, so AT_FDCWD is -100)
========  ===================================================

The return value is the syscall result: ``>= 0`` or ``-errno`` (or None when nothing must
be written back, e.g. exit). Raising :class:`SyscallError`, an ``OSError`` from the host,
a ``MemoryAccessError`` (-> EFAULT) or ``MemoryMapError`` (-> ENOMEM) also works.

This module imports nothing else of the plugin: the kernel (which raises
:class:`SyscallError`) and the handler modules (which register here) both sit above it.
"""

from __future__ import annotations

import errno
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeAlias, TypeVar

# Argument kinds. For type checkers they are plain ints; the registration reads the
# annotation's *name* (handlers' modules use ``from __future__ import annotations``).
U64: TypeAlias = int
Ptr: TypeAlias = int
I64: TypeAlias = int
I32: TypeAlias = int
U32: TypeAlias = int
Fd: TypeAlias = int


class SyscallError(Exception):
    """Raised by handlers (and the process interface): the syscall returns ``-errno``."""

    def __init__(self, err: int) -> None:
        super().__init__(errno.errorcode.get(err, str(err)))
        self.errno = err


def i64(v: int) -> int:
    """``v`` (a raw 64-bit register) as a signed 64-bit value."""
    return v - (1 << 64) if v & (1 << 63) else v


def _i32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & (1 << 31) else v


def _u32(v: int) -> int:
    return v & 0xFFFFFFFF


def _u64(v: int) -> int:
    return v


_CONVERTERS: dict[str, Callable[[int], int]] = {
    "U64": _u64, "Ptr": _u64, "int": _u64, "I64": i64, "I32": _i32, "Fd": _i32, "U32": _u32,
}

HandlerFn = Callable[..., "int | None"]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Handler:
    """A registered handler: its function and one converter per syscall argument."""

    name: str
    fn: HandlerFn
    converters: tuple[Callable[[int], int], ...]


_handlers: dict[str, Handler] = {}
#: Syscall name -> handler, filled as the handler modules are imported (read-only view).
HANDLERS: MappingProxyType[str, Handler] = MappingProxyType(_handlers)


def syscall(*names: str) -> Callable[[F], F]:
    """Register the decorated function as the handler of the syscalls ``names``."""

    def deco(fn: F) -> F:
        params = list(inspect.signature(fn).parameters.values())[1:]
        if len(params) > 6:
            raise TypeError(f"{fn.__name__}: a syscall has at most 6 arguments")
        convs = []
        for p in params:
            ann = p.annotation
            if not isinstance(ann, str) or ann not in _CONVERTERS:
                raise TypeError(f"{fn.__name__}: argument {p.name} needs a U64/Ptr/I64/I32/"
                                f"U32/Fd annotation, not {ann!r}")
            convs.append(_CONVERTERS[ann])
        for name in names:
            if name in _handlers:
                raise ValueError(f"syscall {name} has two handlers")
            _handlers[name] = Handler(name, fn, tuple(convs))
        return fn

    return deco


__all__ = ["HANDLERS", "Fd", "Handler", "I32", "I64", "Ptr", "SyscallError", "U32", "U64",
           "i64", "syscall"]
