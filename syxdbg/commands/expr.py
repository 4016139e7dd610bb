"""Address and condition expressions: ``main+4``, ``$rsp+8``, ``u64($rsp)``, ``$rdi >= 500``.

A small, safe subset of C/Python expressions evaluated over the session (no ``eval``):
numbers, symbols (their address), DWARF member paths (``ledger.balance``: its address),
registers (``$rax`` or a bare register name that is not a symbol), ``+ - * / % & | ^ << >>
~``, comparisons, ``and or not`` (also ``&& || !``), and memory reads ``u8 u16 u32 u64 i8
i16 i32 i64 (ADDRESS)`` (little-endian guest words).
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .registry import CommandError

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


def evaluate(session: Session, text: str,
             variable: Callable[[str], tuple[int, int] | None] | None = None) -> int:
    """The integer value of ``text`` (see the module docstring); one-line errors."""
    src, names = _prepare(text.strip())
    if not src.strip():
        raise CommandError("empty expression")
    try:
        tree = ast.parse(src, mode="eval")
    except SyntaxError:
        raise CommandError(f"cannot parse expression {text!r}") from None
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

    def ev(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return int(node.value)
        if isinstance(node, ast.Name):
            if node.id in names:
                return name_value(names[node.id])
            raise CommandError(f"unknown name {node.id!r}")
        if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
            try:
                return int(_BIN[type(node.op)](ev(node.left), ev(node.right)))
            except ZeroDivisionError:
                raise CommandError("division by zero") from None
        if isinstance(node, ast.UnaryOp):
            v = ev(node.operand)
            if isinstance(node.op, ast.USub):
                return -v
            if isinstance(node.op, ast.UAdd):
                return v
            if isinstance(node.op, ast.Invert):
                return ~v
            if isinstance(node.op, ast.Not):
                return int(not v)
        if isinstance(node, ast.BoolOp):
            vals = [ev(v) for v in node.values]
            return int(all(vals) if isinstance(node.op, ast.And) else any(vals))
        if isinstance(node, ast.Compare):
            left = ev(node.left)
            for op, comp in zip(node.ops, node.comparators, strict=True):
                right = ev(comp)
                if type(op) not in _CMP or not _CMP[type(op)](left, right):
                    return 0
                left = right
            return 1
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in _READS and len(node.args) == 1 and not node.keywords):
            size, signed = _READS[node.func.id]
            addr = ev(node.args[0])
            try:
                data = session.mem.read(addr, size)
            except Exception:
                raise CommandError(f"cannot read {size} bytes at {addr:#x}") from None
            return int.from_bytes(data, "little", signed=signed)
        raise CommandError(f"unsupported expression {text!r}")

    return ev(tree)
