"""Address and condition expressions: ``main+4``, ``$rsp+8``, ``u64($rsp)``, ``$rdi >= 500``.

A small, safe subset of C/Python expressions evaluated over the session (no ``eval``):
numbers, symbols (their address), DWARF member paths (``ledger.balance``: its address),
registers (``$rax`` or a bare register name that is not a symbol), ``+ - * / % & | ^ << >>
~``, comparisons, ``and or not`` (also ``&& || !``), and memory reads ``u8 u16 u32 u64 i8
i16 i32 i64 (ADDRESS)`` (little-endian guest words).

Bounds (a ``monitor print`` comes from any gdb client, so evaluation must stay cheap): an
expression is at most :data:`MAX_LENGTH` characters and :data:`MAX_DEPTH` levels deep, every
intermediate value at most :data:`MAX_BITS` bits wide, and shift counts are never negative.
Anything else is a :class:`CommandError`, never a RecursionError or a huge allocation.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .base import CommandError

if TYPE_CHECKING:
    from ..session import Session

_BIN: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv, ast.Div: operator.floordiv, ast.Mod: operator.mod,
    ast.BitAnd: operator.and_, ast.BitOr: operator.or_, ast.BitXor: operator.xor,
    ast.LShift: operator.lshift, ast.RShift: operator.rshift,
}
_CMP: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}
_READS = {"u8": (1, False), "u16": (2, False), "u32": (4, False), "u64": (8, False),
          "i8": (1, True), "i16": (2, True), "i32": (4, True), "i64": (8, True)}
#: Longest expression text accepted (characters).
MAX_LENGTH = 4096
#: Deepest expression tree accepted (operators and calls nested in each other).
MAX_DEPTH = 100
#: Widest value any step may produce: ``1 << 34359738368`` would take 4 GiB.
MAX_BITS = 4096

_IDENT = re.compile(r"\$?[A-Za-z_.][A-Za-z0-9_.@]*")


def _prepare(text: str) -> tuple[str, dict[str, str]]:
    """C operators to Python, and identifiers (symbols may contain dots) to safe names."""
    t = text.replace("&&", " and ").replace("||", " or ")
    t = re.sub(r"!(?!=)", " not ", t)
    names: dict[str, str] = {}

    def sub(m: re.Match[str]) -> str:
        word = m.group(0)
        if word in ("and", "or", "not") or word in _READS:
            return word
        key = f"_n{len(names)}"
        names[key] = word
        return key

    # Numbers are left alone (hex digits after 0x are not identifiers: handled by the regex
    # only matching from a letter, so skip matches preceded by a digit).
    out = []
    pos = 0
    for m in _IDENT.finditer(t):
        if m.start() > 0 and (t[m.start() - 1].isalnum()):
            continue
        out.append(t[pos:m.start()])
        out.append(sub(m))
        pos = m.end()
    out.append(t[pos:])
    return "".join(out), names


def _short(text: str, limit: int = 60) -> str:
    """``text`` quoted for an error message, cut to ``limit`` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def evaluate(session: Session, text: str,
             variable: Callable[[str], tuple[int, int] | None] | None = None) -> int:
    """The integer value of ``text`` (see the module docstring); one-line errors."""
    if len(text) > MAX_LENGTH:
        raise CommandError(f"expression too long ({len(text)} characters; at most "
                           f"{MAX_LENGTH})")
    src, names = _prepare(text.strip())
    if not src.strip():
        raise CommandError("empty expression")
    try:
        tree = ast.parse(src, mode="eval")
    except (SyntaxError, ValueError):
        raise CommandError(f"cannot parse expression {_short(text)}") from None
    except (RecursionError, MemoryError):
        raise CommandError("expression nested too deeply") from None
    regs = session.regs
    arch = session.machine.arch

    def name_value(word: str) -> int:
        if word.startswith("$"):
            reg = word[1:]
            if arch.register(reg) is None:
                raise CommandError(f"no register {reg!r}")
            return int(regs[reg])
        symbols = session.symbols
        if word in symbols:
            return symbols[word]
        if variable is not None and "." in word:
            found = variable(word)
            if found is not None:
                return found[0]
        if arch.register(word) is not None:
            return int(regs[word])
        raise CommandError(f"no symbol or register {word!r}")

    def ev(node: ast.AST, depth: int = 0) -> int:
        if depth > MAX_DEPTH:
            raise CommandError(f"expression nested too deeply (more than {MAX_DEPTH} levels)")
        value = _node(node, depth + 1)
        if value.bit_length() > MAX_BITS:
            raise CommandError(f"value too large (wider than {MAX_BITS} bits)")
        return value

    def _node(node: ast.AST, depth: int) -> int:
        if isinstance(node, ast.Expression):
            return ev(node.body, depth)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return int(node.value)
        if isinstance(node, ast.Name):
            if node.id in names:
                return name_value(names[node.id])
            raise CommandError(f"unknown name {node.id!r}")
        if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
            left, right = ev(node.left, depth), ev(node.right, depth)
            if isinstance(node.op, ast.LShift | ast.RShift):
                if right < 0:
                    raise CommandError(f"negative shift count {right}")
                if isinstance(node.op, ast.LShift) and left and \
                        left.bit_length() + right > MAX_BITS:
                    raise CommandError(f"value too large (wider than {MAX_BITS} bits)")
                if isinstance(node.op, ast.RShift) and right > MAX_BITS:
                    return -1 if left < 0 else 0
            try:
                return int(_BIN[type(node.op)](left, right))
            except ZeroDivisionError:
                raise CommandError("division by zero") from None
        if isinstance(node, ast.UnaryOp):
            v = ev(node.operand, depth)
            if isinstance(node.op, ast.USub):
                return -v
            if isinstance(node.op, ast.UAdd):
                return v
            if isinstance(node.op, ast.Invert):
                return ~v
            if isinstance(node.op, ast.Not):
                return int(not v)
        if isinstance(node, ast.BoolOp):
            vals = [ev(v, depth) for v in node.values]
            return int(all(vals) if isinstance(node.op, ast.And) else any(vals))
        if isinstance(node, ast.Compare):
            left = ev(node.left, depth)
            for op, comp in zip(node.ops, node.comparators, strict=True):
                right = ev(comp, depth)
                if type(op) not in _CMP or not _CMP[type(op)](left, right):
                    return 0
                left = right
            return 1
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in _READS and len(node.args) == 1 and not node.keywords):
            size, signed = _READS[node.func.id]
            addr = ev(node.args[0], depth)
            try:
                data = session.mem.read_debug(addr, size)
            except Exception:
                raise CommandError(f"cannot read {size} bytes at {addr:#x}") from None
            return int.from_bytes(data, "little", signed=signed)
        raise CommandError(f"unsupported expression {_short(text)}")

    return ev(tree)
