"""Source-level variables from DWARF: locals, parameters and globals, with their C types.

pyelftools parses ``.debug_info``, location lists and location expressions; this module
*evaluates* the expressions against one frame (registers, CFA, memory) and renders values by
type. It serves the DAP server (``syxdbg dap``) and can serve the shell.

Location expressions understood (what GCC emits for C at -O0 and the common ones at
-O1/-O2):

* ``DW_OP_addr`` (globals and statics; relocated by the image's load bias),
* ``DW_OP_fbreg`` with the function's ``DW_AT_frame_base`` (``DW_OP_call_frame_cfa``, the
  CFA from the CFI unwinder, or a register / ``DW_OP_breg``),
* ``DW_OP_reg0..31``/``DW_OP_regx`` (a value in a register) and ``DW_OP_breg0..31``/
  ``DW_OP_bregx`` (an address relative to a register),
* ``DW_OP_stack_value`` and ``DW_OP_implicit_value`` (computed values), the constant, stack
  and arithmetic operators (``DW_OP_lit*``, ``DW_OP_const*``, ``DW_OP_plus_uconst``,
  ``DW_OP_plus``/``minus``/``mul``/``and``/``or``/``xor``/``neg``/``not``/shifts and the
  comparisons ``DW_OP_eq``/``ne``/``lt``/``le``/``gt``/``ge``, and the branches
  ``DW_OP_bra``/``DW_OP_skip``,
  ``DW_OP_dup``/``drop``/``swap``/``over``, ``DW_OP_deref``/``deref_size``),
* ``DW_OP_piece`` of registers, memory and values (small structs split over registers),
* location lists (``.debug_loc`` and DWARF 5 ``.debug_loclists``): the entry covering the
  frame's pc; no entry means "optimized out",
* ``DW_OP_entry_value``/``DW_OP_GNU_entry_value`` of a register (the value it had on
  entry): recovered, as gdb does, from the caller's call site (``DW_TAG_call_site`` at the
  return address, its ``DW_TAG_call_site_parameter`` for that register, whose
  ``DW_AT_call_value`` is evaluated in the caller's frame, recursively); without one it is
  ``<optimized out>``, as are ``DW_OP_implicit_pointer`` and any operator not listed here.

Registers the unwinder does not know in a caller's frame (caller-saved ones) make a
variable ``<unavailable>``. The general registers and the vector registers (x86_64
``xmm0..15``, DWARF 17..32; aarch64 ``v0..v31``, 64..95: floats) are known in the innermost
frame; in callers only the callee-saved general registers.
"""

from __future__ import annotations

import bisect
import contextlib
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import SyxdbgError
from .base import CommandError

if TYPE_CHECKING:
    from .debuginfo import DebugInfo

#: Longest string shown for a ``char *`` or ``char[]``.
MAX_STRING = 200
#: Most elements an array shows without paging.
MAX_ELEMENTS = 1000


# -- locations -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Location:
    """Where a value is: ``kind`` "memory" (``address``), "register" (``register``),
    "value" (``data``: the bytes of a computed value), or "optimized"/"unavailable"
    (``reason``)."""

    kind: str
    address: int = 0
    register: str = ""
    data: bytes = b""
    reason: str = ""

    @property
    def readable(self) -> bool:
        return self.kind in ("memory", "register", "value")


OPTIMIZED_OUT = Location("optimized", reason="optimized out")


@dataclass
class FrameState:
    """What location expressions need about one frame: its pc (a caller's return address),
    the registers known there (by syxdbg name), its CFA, and memory."""

    pc: int
    regs: dict[str, int]
    cfa: int | None
    read: Callable[[int, int], bytes]
    #: Level 0 is the innermost frame (its pc is exact; callers' pcs are return addresses).
    level: int = 0
    #: The calling frame (its call site tells parameters' entry values), if known.
    caller: FrameState | None = None
    #: Inline level: 0 is the innermost function inlined at pc, 1 the one it was inlined
    #: into... up to the frame's own (physical) function.
    inline: int = 0

    @property
    def lookup_pc(self) -> int:
        """The pc used to pick scopes and location-list entries (a caller's call)."""
        return self.pc if self.level == 0 else self.pc - 1


#: Registers a called function preserves (the psABIs' callee-saved ones, with the stack
#: and program counters): the only ones whose unwound values hold in a caller's frame.
CALLEE_SAVED: dict[str, frozenset[str]] = {
    "x86_64": frozenset({"rbx", "rbp", "r12", "r13", "r14", "r15", "rsp", "rip", "sp", "pc"}),
    "aarch64": frozenset({*(f"x{i}" for i in range(19, 30)), "sp", "pc"}),
}


#: DWARF numbers of the vector registers (x86_64 SSE, aarch64 SIMD/FP): floats and vectors
#: live there. Known in the innermost frame only.
VECTOR_REGS: dict[str, dict[int, str]] = {
    "x86_64": {17 + i: f"xmm{i}" for i in range(16)},
    "aarch64": {64 + i: f"v{i}" for i in range(32)},
}


def frame_registers(arch: str, regs: dict[str, int], level: int) -> dict[str, int]:
    """The registers known in the frame at ``level``: all of them in the innermost frame,
    only the callee-saved ones in callers (the others hold the callee's values)."""
    if level == 0 or arch not in CALLEE_SAVED:
        return dict(regs)
    keep = CALLEE_SAVED[arch]
    return {k: v for k, v in regs.items() if k in keep}


class _Unavailable(Exception):
    def __init__(self, location: Location) -> None:
        super().__init__(location.reason)
        self.location = location


# -- variables -------------------------------------------------------------------------------
@dataclass
class Variable:
    """A named value: a variable, a member, an element, a pointer's target."""

    name: str
    type: Any  # the DIE of its type (None: unknown)
    location: Location
    #: "parameter", "local", "global", "member", "element", "deref"
    role: str = "local"
    #: The C expression that reaches it from the frame (``ledger.history[3]``).
    path: str = ""
    children_cache: list[Variable] | None = field(default=None, repr=False)


class Variables:
    """DWARF variables of one session's program (``DebugInfo`` gives paths, bias, arch)."""

    def __init__(self, debuginfo: DebugInfo) -> None:
        self.di = debuginfo
        self._loaded = False
        self._dwarf: Any = None
        self._file: Any = None
        self._loc_parser: Any = None
        #: (low, high, subprogram DIE, cu), sorted by low (runtime addresses).
        self._funcs: list[tuple[int, int, Any, Any]] = []
        self._func_lows: list[int] = []
        #: (cu, ranges) per compilation unit.
        self._units: list[tuple[Any, list[tuple[int, int]]]] = []
        self._globals: dict[int, list[Any]] = {}  # cu offset -> top-level variable DIEs
        self._parsers: dict[int, Any] = {}
        self._sites: dict[int, dict[int, Any]] = {}

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- loading --------------------------------------------------------------------------------
    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self.di.path is None:
            return
        try:
            self._read(self.di.path)
        except Exception:  # no or unreadable DWARF: no variables
            self._funcs, self._units = [], []
        self._funcs.sort(key=lambda f: f[0])
        self._func_lows = [f[0] for f in self._funcs]

    def _read(self, path: str) -> None:
        from elftools.dwarf.locationlists import LocationParser
        from elftools.elf.elffile import ELFFile

        f = open(path, "rb")  # noqa: SIM115 - DIEs are read lazily from this file
        self._file = f
        elf = ELFFile(f)
        if not elf.has_dwarf_info():
            return
        dwarf = elf.get_dwarf_info()
        self._dwarf = dwarf
        self._loc_parser = LocationParser(dwarf.location_lists())
        for cu in dwarf.iter_CUs():
            top = cu.get_top_DIE()
            self._units.append((cu, self._ranges(top, cu)))
            gl: list[Any] = []
            for die in top.iter_children():
                if die.tag == "DW_TAG_subprogram":
                    for lo, hi in self._ranges(die, cu):
                        self._funcs.append((lo, hi, die, cu))
                elif die.tag == "DW_TAG_variable" and "DW_AT_location" in die.attributes:
                    gl.append(die)
            self._globals[cu.cu_offset] = gl

    def _cu_base(self, cu: Any) -> int:
        top = cu.get_top_DIE()
        low = top.attributes.get("DW_AT_low_pc")
        return int(low.value) if low is not None else 0

    def _ranges(self, die: Any, cu: Any) -> list[tuple[int, int]]:
        """A DIE's address ranges (runtime addresses)."""
        bias = self.di.bias
        attrs = die.attributes
        low = attrs.get("DW_AT_low_pc")
        if low is not None:
            high = attrs.get("DW_AT_high_pc")
            if high is None:
                return [(low.value + bias, low.value + bias + 1)]
            hi = high.value if high.form == "DW_FORM_addr" else low.value + high.value
            return [(low.value + bias, hi + bias)]
        rng = attrs.get("DW_AT_ranges")
        if rng is None or self._dwarf is None or rng.form != "DW_FORM_sec_offset":
            return []
        lists = self._dwarf.range_lists()
        if lists is None:
            return []
        out = []
        base = self._cu_base(cu)
        for entry in lists.get_range_list_at_offset(rng.value, cu=cu):
            if hasattr(entry, "base_address"):
                base = entry.base_address
                continue
            if getattr(entry, "is_absolute", False):
                lo, hi = entry.begin_offset, entry.end_offset
            else:
                lo, hi = base + entry.begin_offset, base + entry.end_offset
            out.append((lo + bias, hi + bias))
        return out

    # -- lookup ---------------------------------------------------------------------------------
    def function_at(self, pc: int) -> tuple[Any, Any] | None:
        """(subprogram DIE, CU) of the function containing ``pc``."""
        self._load()
        i = bisect.bisect_right(self._func_lows, pc) - 1
        # Ranges may nest or overlap (a function's cold part): look back a little.
        for j in range(i, max(i - 8, -1), -1):
            lo, hi, die, cu = self._funcs[j]
            if lo <= pc < hi:
                return die, cu
        return None

    def unit_at(self, pc: int) -> Any:
        self._load()
        for cu, ranges in self._units:
            if any(lo <= pc < hi for lo, hi in ranges):
                return cu
        hit = self.function_at(pc)
        return hit[1] if hit is not None else None

    def function_name(self, pc: int) -> str | None:
        hit = self.function_at(pc)
        return None if hit is None else _name(hit[0])

    def _scopes(self, die: Any, cu: Any, pc: int) -> list[Any]:
        """``die`` and the nested lexical blocks / inlined calls that contain ``pc``,
        outermost first."""
        chain = [die]
        while True:
            for child in chain[-1].iter_children():
                if child.tag in ("DW_TAG_lexical_block", "DW_TAG_inlined_subroutine") and \
                        any(lo <= pc < hi for lo, hi in self._ranges(child, cu)):
                    chain.append(child)
                    break
            else:
                return chain

    def _segment(self, frame: FrameState) -> tuple[list[Any], Any, Any] | None:
        """(scopes, function DIE, CU) of the frame's (possibly inlined) function: the part
        of the scope chain at its pc that belongs to inline level ``frame.inline``."""
        pc = frame.lookup_pc
        hit = self.function_at(pc)
        if hit is None:
            return None
        func, cu = hit
        chain = self._scopes(func, cu, pc)
        marks = [0] + [i for i, d in enumerate(chain) if d.tag == "DW_TAG_inlined_subroutine"]
        k = min(frame.inline, len(marks) - 1)
        start = marks[len(marks) - 1 - k]
        end = marks[len(marks) - k] if k > 0 else len(chain)
        return chain[start:end], func, cu

    def inline_frames(self, frame: FrameState) -> list[tuple[str, int | None, str | None]]:
        """The functions inlined at the frame's pc, innermost first, then the frame's own:
        (name, call line, call file) where the call line is that of the call in the next
        outer one (None for the innermost, whose line is the pc's)."""
        pc = frame.lookup_pc
        hit = self.function_at(pc)
        if hit is None:
            return []
        func, cu = hit
        chain = [d for d in self._scopes(func, cu, pc)
                 if d.tag in ("DW_TAG_subprogram", "DW_TAG_inlined_subroutine")]
        out: list[tuple[str, int | None, str | None]] = []
        for i in range(len(chain) - 1, -1, -1):
            name = _name(_origin(chain[i])) or "??"
            if i == len(chain) - 1:
                out.append((name, None, None))
            else:
                inner = chain[i + 1]
                line = inner.attributes.get("DW_AT_call_line")
                file = inner.attributes.get("DW_AT_call_file")
                out.append((name, int(line.value) if line is not None else None,
                            self._file_name(cu, int(file.value)) if file is not None
                            else None))
        return out

    def _file_name(self, cu: Any, index: int) -> str | None:
        import os

        try:
            lp = self._dwarf.line_program_for_CU(cu)
            version = lp.header.version
            files, dirs = lp["file_entry"], lp["include_directory"]
            i = index if version >= 5 else index - 1
            entry = files[i]
            name = entry.name.decode(errors="replace")
            d = entry.dir_index if version >= 5 else entry.dir_index - 1
            if not os.path.isabs(name) and 0 <= d < len(dirs):
                name = os.path.join(dirs[d].decode(errors="replace"), name)
            top = cu.get_top_DIE()
            comp = top.attributes.get("DW_AT_comp_dir")
            if not os.path.isabs(name) and comp is not None:
                name = os.path.join(comp.value.decode(errors="replace"), name)
            return os.path.normpath(name)
        except Exception:
            return None

    def frame_variables(self, frame: FrameState) -> tuple[list[Variable], list[Variable]]:
        """(parameters, locals) visible at the frame's pc in its (inline level's) function;
        inner scopes shadow outer."""
        seg = self._segment(frame)
        if seg is None:
            return [], []
        scopes, func, cu = seg
        frame_base = self._frame_base(func, cu, frame)
        params: list[Variable] = []
        local: dict[str, Variable] = {}
        for depth, scope in enumerate(scopes):
            for die in scope.iter_children():
                if die.tag not in ("DW_TAG_formal_parameter", "DW_TAG_variable"):
                    continue
                origin = _origin(die)
                name = _name(origin)
                if name is None:
                    continue
                var = Variable(name, _type_of(origin), self._location(die, cu, frame,
                                                                      frame_base),
                               "parameter" if die.tag == "DW_TAG_formal_parameter"
                               else "local", name)
                if die.tag == "DW_TAG_formal_parameter" and depth == 0:
                    params.append(var)
                else:
                    local[name] = var  # an inner block's variable shadows an outer one
        return params, list(local.values())

    def globals(self, frame: FrameState | None = None, *, limit: int = 500) -> list[Variable]:
        """Global and static variables: those of the frame's compilation unit (all units'
        when the pc has no DWARF), by name."""
        self._load()
        cu = self.unit_at(frame.lookup_pc) if frame is not None else None
        if cu is not None:
            dies = [(d, cu) for d in self._globals.get(cu.cu_offset, [])]
        else:
            dies = [(d, u) for u, _ in self._units for d in self._globals.get(u.cu_offset, [])]
        out: dict[str, Variable] = {}
        for die, unit in dies:
            origin = _origin(die)
            name = _name(origin)
            if name is None or name in out:
                continue
            loc = self._location(die, unit, frame, None)
            if loc.kind == "optimized":
                continue
            out[name] = Variable(name, _type_of(origin), loc, "global", name)
            if len(out) >= limit:
                break
        return sorted(out.values(), key=lambda v: v.name)

    def lookup(self, name: str, frame: FrameState | None) -> Variable | None:
        """A local, parameter or global named ``name`` (innermost first)."""
        if frame is not None:
            params, local = self.frame_variables(frame)
            for v in (*local, *params):
                if v.name == name:
                    return v
        for v in self.globals(frame, limit=100000):
            if v.name == name:
                return v
        if frame is not None:  # a global of another unit
            for v in self.globals(None, limit=100000):
                if v.name == name:
                    return v
        return None

    # -- location expressions ---------------------------------------------------------------------
    def _parser(self, cu: Any) -> Any:
        from elftools.dwarf.dwarf_expr import DWARFExprParser

        p = self._parsers.get(cu.cu_offset)
        if p is None:
            p = self._parsers[cu.cu_offset] = DWARFExprParser(cu.structs)
        return p

    def _frame_base(self, func: Any, cu: Any, frame: FrameState) -> Location | None:
        attr = func.attributes.get("DW_AT_frame_base")
        if attr is None:
            return None
        return self._attr_location(attr, func, cu, frame, None)

    def _location(self, die: Any, cu: Any, frame: FrameState | None,
                  frame_base: Location | None) -> Location:
        attr = die.attributes.get("DW_AT_location")
        if attr is None:
            const = die.attributes.get("DW_AT_const_value")
            if const is not None and isinstance(const.value, int):
                return Location("value", data=(const.value & (1 << 64) - 1).to_bytes(8,
                                                                                    "little"))
            if const is not None and isinstance(const.value, (bytes, list)):
                return Location("value", data=bytes(const.value))
            return OPTIMIZED_OUT
        return self._attr_location(attr, die, cu, frame, frame_base)

    def _attr_location(self, attr: Any, die: Any, cu: Any, frame: FrameState | None,
                       frame_base: Location | None) -> Location:
        from elftools.dwarf.locationlists import LocationEntry, LocationExpr

        try:
            loc = self._loc_parser.parse_from_attribute(attr, cu["version"], die)
        except Exception:
            return OPTIMIZED_OUT
        if isinstance(loc, LocationExpr):
            expr = loc.loc_expr
        else:
            if frame is None:
                return OPTIMIZED_OUT
            pc = frame.lookup_pc - self.di.bias
            base = self._cu_base(cu)
            expr = None
            for entry in loc:
                if hasattr(entry, "base_address"):
                    base = entry.base_address
                elif isinstance(entry, LocationEntry):
                    lo, hi = ((entry.begin_offset, entry.end_offset) if entry.is_absolute
                              else (base + entry.begin_offset, base + entry.end_offset))
                    if lo <= pc < hi:
                        expr = entry.loc_expr
                        break
            if expr is None:
                return OPTIMIZED_OUT
        try:
            ops = self._parser(cu).parse_expr(expr)
        except Exception:
            return Location("optimized", reason="unsupported location expression")
        return self.evaluate_ops(ops, frame, frame_base)

    def evaluate_ops(self, ops: list[Any], frame: FrameState | None,
                     frame_base: Location | None) -> Location:
        """Run a parsed location expression (see the module docstring)."""
        try:
            return self._run_ops(ops, frame, frame_base)
        except _Unavailable as exc:
            return exc.location

    def _reg(self, frame: FrameState | None, number: int) -> tuple[str, int]:
        from .debuginfo import DWARF_REGS

        name = DWARF_REGS.get(self.di.arch, {}).get(number) or \
            VECTOR_REGS.get(self.di.arch, {}).get(number)
        if name is None:
            raise _Unavailable(Location("unavailable", reason=f"DWARF register {number}"))
        if frame is None or name not in frame.regs:
            raise _Unavailable(Location("unavailable", reason=f"{name} not saved here"))
        return name, frame.regs[name] & (1 << 128) - 1

    def _run_ops(self, ops: list[Any], frame: FrameState | None,
                 frame_base: Location | None) -> Location:
        mask = (1 << 64) - 1
        stack: list[int] = []
        pieces: list[tuple[Location, int]] = []
        result: Location | None = None
        bias = self.di.bias

        def pop() -> int:
            if not stack:
                raise _Unavailable(Location("optimized", reason="malformed expression"))
            return stack.pop()

        index = {op.offset: i for i, op in enumerate(ops)}
        i = -1
        steps = 0
        while i + 1 < len(ops):
            i += 1
            steps += 1
            if steps > 10000:  # a DW_OP_bra loop
                raise _Unavailable(Location("optimized", reason="malformed expression"))
            op = ops[i]
            name: str = op.op_name
            args = op.args
            if name in ("DW_OP_bra", "DW_OP_skip"):
                if name == "DW_OP_skip" or pop() != 0:
                    after = ops[i + 1].offset if i + 1 < len(ops) else op.offset + 3
                    target = after + _signed(args[0], 2)
                    if target in index:
                        i = index[target] - 1
                    elif target > ops[-1].offset:
                        i = len(ops) - 1
                    else:
                        raise _Unavailable(Location("optimized", reason="malformed expression"))
                continue
            if name == "DW_OP_addr":
                stack.append(args[0] + bias)
            elif name.startswith("DW_OP_lit"):
                stack.append(int(name[9:]))
            elif name.startswith("DW_OP_const") and name[11:] in ("1u", "2u", "4u", "8u",
                                                                   "1s", "2s", "4s", "8s",
                                                                   "u", "s"):
                stack.append(args[0] & mask)
            elif name.startswith("DW_OP_reg") and name != "DW_OP_regval_type":
                number = args[0] if name == "DW_OP_regx" else int(name[9:])
                reg, _ = self._reg(frame, number)
                result = Location("register", register=reg)
            elif name.startswith("DW_OP_breg"):
                number = args[0] if name == "DW_OP_bregx" else int(name[10:])
                offset = args[1] if name == "DW_OP_bregx" else args[0]
                _, value = self._reg(frame, number)
                stack.append((value + offset) & mask)
            elif name == "DW_OP_fbreg":
                if frame_base is None:
                    raise _Unavailable(Location("unavailable", reason="no frame base"))
                if frame_base.kind == "memory":
                    base = frame_base.address
                elif frame_base.kind == "register":
                    base = self._reg_by_name(frame, frame_base.register)
                else:
                    raise _Unavailable(frame_base)
                stack.append((base + args[0]) & mask)
            elif name == "DW_OP_call_frame_cfa":
                if frame is None or frame.cfa is None:
                    raise _Unavailable(Location("unavailable", reason="no CFA here"))
                stack.append(frame.cfa)
            elif name == "DW_OP_stack_value":
                result = Location("value", data=(pop() & mask).to_bytes(8, "little"))
            elif name == "DW_OP_implicit_value":
                result = Location("value", data=bytes(args[1] if len(args) > 1 else args[0]))
            elif name in ("DW_OP_entry_value", "DW_OP_GNU_entry_value"):
                stack.append(self._entry_value(args[0], frame) & mask)
            elif name == "DW_OP_plus_uconst":
                stack.append((pop() + args[0]) & mask)
            elif name in _BINARY:
                b, a = pop(), pop()
                stack.append(_BINARY[name](a, b) & mask)
            elif name == "DW_OP_neg":
                stack.append(-pop() & mask)
            elif name == "DW_OP_not":
                stack.append(~pop() & mask)
            elif name == "DW_OP_dup":
                v = pop()
                stack += [v, v]
            elif name == "DW_OP_drop":
                pop()
            elif name == "DW_OP_swap":
                b, a = pop(), pop()
                stack += [b, a]
            elif name == "DW_OP_over":
                if len(stack) < 2:
                    raise _Unavailable(Location("optimized", reason="malformed expression"))
                stack.append(stack[-2])
            elif name in ("DW_OP_deref", "DW_OP_deref_size"):
                size = args[0] if name == "DW_OP_deref_size" else 8
                addr = pop()
                if frame is None:
                    raise _Unavailable(Location("unavailable", reason="no frame"))
                try:
                    stack.append(int.from_bytes(frame.read(addr, size), "little"))
                except SyxdbgError:
                    raise _Unavailable(Location("unavailable",
                                                reason=f"cannot read {addr:#x}")) from None
            elif name == "DW_OP_piece":
                if result is None:
                    result = (Location("memory", address=stack.pop()) if stack
                              else Location("optimized", reason="optimized out"))
                pieces.append((result, args[0]))
                result = None
                stack.clear()
            elif name == "DW_OP_nop":
                continue
            else:
                raise _Unavailable(Location("optimized", reason=f"optimized out ({name})"))
        if pieces:
            return self._join_pieces(pieces, frame)
        if result is not None:
            return result
        if not stack:
            return OPTIMIZED_OUT
        return Location("memory", address=stack[-1])

    def _entry_value(self, ops: list[Any], frame: FrameState | None, depth: int = 0) -> int:
        """``DW_OP_entry_value(DW_OP_regN)``: the value register N had when the frame's
        function was entered, from the caller's call site (``DW_TAG_call_site_parameter``
        with its ``DW_AT_call_value``, evaluated in the caller's frame), as gdb does."""
        optimized = _Unavailable(Location("optimized", reason="optimized out (entry value)"))
        if frame is None or frame.caller is None or len(ops) != 1 or depth > 8:
            raise optimized
        op = ops[0]
        if not (op.op_name == "DW_OP_regx" or
                (op.op_name.startswith("DW_OP_reg") and op.op_name[9:].isdigit())):
            raise optimized
        caller = frame.caller
        hit = self.function_at(caller.lookup_pc)
        if hit is None:
            raise optimized
        func, cu = hit
        site = self._call_sites(func, cu).get(caller.pc)
        if site is None:
            raise optimized
        # The call must be to this frame's function (not one that tail-called it).
        callee = self.function_at(frame.lookup_pc)
        for key in ("DW_AT_call_origin", "DW_AT_abstract_origin"):
            if key in site.attributes:
                try:
                    target = site.get_DIE_from_attribute(key)
                except Exception:
                    raise optimized from None
                if callee is None or _origin(target).offset != _origin(callee[0]).offset:
                    raise optimized
                break
        parser = self._parser(cu)
        for param in site.iter_children():
            if param.tag not in ("DW_TAG_call_site_parameter",
                                 "DW_TAG_GNU_call_site_parameter"):
                continue
            where = param.attributes.get("DW_AT_location")
            value = param.attributes.get("DW_AT_call_value") or \
                param.attributes.get("DW_AT_GNU_call_site_value")
            if where is None or value is None:
                continue
            try:
                at = parser.parse_expr(where.value)
            except Exception:
                continue
            if len(at) != 1 or at[0].op_name != op.op_name or at[0].args != op.args:
                continue
            try:
                expr = parser.parse_expr(value.value)
            except Exception:
                raise optimized from None
            loc = self.evaluate_ops(expr, caller, self._frame_base(func, cu, caller))
            if loc.kind == "memory":  # a DWARF expression's value: the stack top
                return loc.address
            if loc.kind == "register" and loc.register in caller.regs:
                return caller.regs[loc.register]
            if loc.kind == "value":
                return int.from_bytes(loc.data[:8], "little")
            raise optimized
        raise optimized

    def _call_sites(self, func: Any, cu: Any) -> dict[int, Any]:
        """The call sites of a function by return address (runtime)."""
        key = func.offset
        sites = self._sites.get(key)
        if sites is not None:
            return sites
        sites = {}
        todo = [func]
        while todo:
            die = todo.pop()
            for child in die.iter_children():
                if child.tag in ("DW_TAG_call_site", "DW_TAG_GNU_call_site"):
                    ret = child.attributes.get("DW_AT_call_return_pc") or \
                        child.attributes.get("DW_AT_low_pc")
                    if ret is not None:
                        sites[ret.value + self.di.bias] = child
                elif child.tag in ("DW_TAG_lexical_block", "DW_TAG_inlined_subroutine"):
                    todo.append(child)
        self._sites[key] = sites
        return sites

    def _reg_by_name(self, frame: FrameState | None, name: str) -> int:
        if frame is None or name not in frame.regs:
            raise _Unavailable(Location("unavailable", reason=f"{name} not saved here"))
        return frame.regs[name]

    def _join_pieces(self, pieces: list[tuple[Location, int]], frame: FrameState | None
                     ) -> Location:
        data = b""
        for loc, size in pieces:
            if loc.kind == "optimized" or loc.kind == "unavailable":
                return Location("optimized", reason="partly optimized out")
            data += read_location(loc, size, frame)
        return Location("value", data=data)


_BINARY: dict[str, Callable[[int, int], int]] = {
    "DW_OP_plus": lambda a, b: a + b, "DW_OP_minus": lambda a, b: a - b,
    "DW_OP_mul": lambda a, b: a * b, "DW_OP_and": lambda a, b: a & b,
    "DW_OP_or": lambda a, b: a | b, "DW_OP_xor": lambda a, b: a ^ b,
    "DW_OP_shl": lambda a, b: a << (b & 63), "DW_OP_shr": lambda a, b: a >> (b & 63),
    "DW_OP_shra": lambda a, b: _signed(a, 8) >> (b & 63),
    "DW_OP_div": lambda a, b: int(_signed(a, 8) / _signed(b, 8)) if b else 0,
    "DW_OP_mod": lambda a, b: a % b if b else 0,
    "DW_OP_eq": lambda a, b: int(_signed(a, 8) == _signed(b, 8)),
    "DW_OP_ne": lambda a, b: int(_signed(a, 8) != _signed(b, 8)),
    "DW_OP_lt": lambda a, b: int(_signed(a, 8) < _signed(b, 8)),
    "DW_OP_le": lambda a, b: int(_signed(a, 8) <= _signed(b, 8)),
    "DW_OP_gt": lambda a, b: int(_signed(a, 8) > _signed(b, 8)),
    "DW_OP_ge": lambda a, b: int(_signed(a, 8) >= _signed(b, 8)),
}


def read_location(loc: Location, size: int, frame: FrameState | None) -> bytes:
    """``size`` bytes of the value at ``loc`` (a register: its low bytes). Raises
    :class:`~syxdbg.errors.SyxdbgError` when it cannot be read."""
    if loc.kind == "memory":
        if frame is None:
            raise CommandError("no frame to read memory in")
        return frame.read(loc.address, size)
    if loc.kind == "register":
        if frame is None or loc.register not in frame.regs:
            raise CommandError(f"{loc.register} is not available here")
        width = 16 if loc.register.startswith(("xmm", "v")) else 8
        value = frame.regs[loc.register] & (1 << 8 * width) - 1
        return value.to_bytes(width, "little")[:size].ljust(size, b"\0")
    if loc.kind == "value":
        return loc.data[:size].ljust(size, b"\0")
    raise CommandError(f"<{loc.reason or loc.kind}>")


# -- types ------------------------------------------------------------------------------------
_QUALIFIERS = ("DW_TAG_typedef", "DW_TAG_const_type", "DW_TAG_volatile_type",
               "DW_TAG_atomic_type", "DW_TAG_restrict_type")


def _origin(die: Any) -> Any:
    """The DIE that names and types ``die`` (through abstract origins and specifications)."""
    for _ in range(4):
        for key in ("DW_AT_abstract_origin", "DW_AT_specification"):
            if key in die.attributes and "DW_AT_name" not in die.attributes:
                die = die.get_DIE_from_attribute(key)
                break
        else:
            return die
    return die


def _name(die: Any) -> str | None:
    attr = die.attributes.get("DW_AT_name") if die is not None else None
    return attr.value.decode(errors="replace") if attr is not None else None


def _type_of(die: Any) -> Any:
    if die is None or "DW_AT_type" not in die.attributes:
        return None
    return die.get_DIE_from_attribute("DW_AT_type")


def strip(ty: Any) -> Any:
    """The type under typedefs and qualifiers (None: void)."""
    for _ in range(32):
        if ty is None or ty.tag not in _QUALIFIERS:
            return ty
        ty = _type_of(ty)
    return ty


def type_size(ty: Any) -> int:
    ty = strip(ty)
    if ty is None:
        return 0
    if "DW_AT_byte_size" in ty.attributes:
        return int(ty.attributes["DW_AT_byte_size"].value)
    if ty.tag == "DW_TAG_array_type":
        n = 1
        for d in array_dims(ty):
            n *= d
        return n * type_size(_type_of(ty))
    if ty.tag == "DW_TAG_pointer_type":
        return 8
    return 0


def array_dims(ty: Any) -> list[int]:
    if isinstance(ty, _SubArray):
        return list(ty.dims)
    dims = []
    for sub in ty.iter_children():
        if sub.tag != "DW_TAG_subrange_type":
            continue
        if "DW_AT_count" in sub.attributes and isinstance(sub.attributes["DW_AT_count"].value,
                                                          int):
            dims.append(int(sub.attributes["DW_AT_count"].value))
        elif "DW_AT_upper_bound" in sub.attributes and \
                isinstance(sub.attributes["DW_AT_upper_bound"].value, int):
            dims.append(int(sub.attributes["DW_AT_upper_bound"].value) + 1)
        else:
            dims.append(0)
    return dims or [0]


def type_name(ty: Any) -> str:
    """C spelling of a type: ``int64_t``, ``struct ledger``, ``const char *``, ``long[16]``."""
    if ty is None:
        return "void"
    tag = ty.tag
    name = _name(ty)
    if tag in ("DW_TAG_base_type", "DW_TAG_typedef"):
        return name or "?"
    if tag == "DW_TAG_structure_type":
        return f"struct {name or '<anonymous>'}"
    if tag == "DW_TAG_union_type":
        return f"union {name or '<anonymous>'}"
    if tag == "DW_TAG_enumeration_type":
        return f"enum {name or '<anonymous>'}"
    if tag in ("DW_TAG_const_type", "DW_TAG_volatile_type"):
        word = "const" if tag == "DW_TAG_const_type" else "volatile"
        target = _type_of(ty)
        inner = type_name(target)
        bare = strip(target)
        if inner.startswith(f"{word} ") or (bare is not None and
                                             bare.tag == "DW_TAG_array_type"):
            return inner  # C qualifies an array's elements, which DWARF repeats
        return f"{word} {inner}"
    if tag in ("DW_TAG_restrict_type", "DW_TAG_atomic_type"):
        return type_name(_type_of(ty))
    if tag == "DW_TAG_pointer_type":
        return f"{type_name(_type_of(ty))} *"
    if tag == "DW_TAG_array_type":
        dims = "".join(f"[{d}]" for d in array_dims(ty))
        return f"{type_name(_type_of(ty))}{dims}"
    if tag == "DW_TAG_subroutine_type":
        return f"{type_name(_type_of(ty))} (*)()"
    return name or tag.removeprefix("DW_TAG_")


def _signed(value: int, size: int) -> int:
    bits = size * 8
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _is_char(ty: Any) -> bool:
    ty = strip(ty)
    if ty is None or ty.tag != "DW_TAG_base_type":
        return False
    enc = ty.attributes.get("DW_AT_encoding")
    return enc is not None and enc.value in (0x06, 0x08) and type_size(ty) == 1


def _c_string(data: bytes) -> str:
    text = data.split(b"\0", 1)[0][:MAX_STRING]
    out = text.decode("latin-1").encode("unicode_escape").decode("ascii").replace('"', '\\"')
    return f'"{out}"'


# -- rendering --------------------------------------------------------------------------------
class Renderer:
    """Values of :class:`Variable` as text, and their children (members, elements, the
    pointed-to value), read in one frame."""

    def __init__(self, frame: FrameState | None) -> None:
        self.frame = frame

    def read(self, var: Variable, size: int) -> bytes:
        return read_location(var.location, size, self.frame)

    def address_of(self, var: Variable) -> int | None:
        return var.location.address if var.location.kind == "memory" else None

    def value(self, var: Variable) -> str:
        """The value's one-line summary (gdb-like)."""
        loc = var.location
        if not loc.readable:
            return f"<{loc.reason or loc.kind}>"
        ty = strip(var.type)
        try:
            return self._value(ty, var)
        except SyxdbgError as exc:
            return f"<{exc}>"

    def _value(self, ty: Any, var: Variable) -> str:
        if ty is None:
            return "<void>" if var.type is None else "?"
        tag = ty.tag
        size = type_size(ty)
        if tag == "DW_TAG_base_type":
            return self._base(ty, self.read(var, size))
        if tag == "DW_TAG_enumeration_type":
            raw = int.from_bytes(self.read(var, size or 4), "little")
            value = _signed(raw, size or 4)
            for e in ty.iter_children():
                cv = e.attributes.get("DW_AT_const_value")
                if e.tag == "DW_TAG_enumerator" and cv is not None and cv.value in (raw, value):
                    return _name(e) or str(value)
            return str(value)
        if tag == "DW_TAG_pointer_type":
            ptr = int.from_bytes(self.read(var, 8), "little")
            target = _type_of(ty)
            text = f"{ptr:#x}"
            if ptr and _is_char(target) and self.frame is not None:
                with contextlib.suppress(SyxdbgError):
                    text += " " + _c_string(self._read_partial(ptr, MAX_STRING + 1))
            return text
        if tag == "DW_TAG_array_type":
            if _is_char(_type_of(ty)):
                return _c_string(self.read(var, min(size, MAX_STRING + 1)))
            dims = array_dims(ty)
            return f"{type_name(_type_of(ty))}[{dims[0]}]" + "".join(
                f"[{d}]" for d in dims[1:])
        if tag in ("DW_TAG_structure_type", "DW_TAG_union_type"):
            return "{...}"
        if tag == "DW_TAG_subroutine_type":
            return "<function>"
        return "?"

    def _read_partial(self, address: int, size: int) -> bytes:
        assert self.frame is not None
        out = b""
        while len(out) < size:
            try:
                chunk = self.frame.read(address + len(out), 16)
            except SyxdbgError:
                break
            out += chunk
            if b"\0" in chunk:
                break
        if not out:
            raise CommandError(f"cannot read {address:#x}")
        return out

    @staticmethod
    def _base(ty: Any, data: bytes) -> str:
        enc = ty.attributes["DW_AT_encoding"].value if "DW_AT_encoding" in ty.attributes \
            else 0x07
        size = len(data)
        raw = int.from_bytes(data, "little")
        if enc == 0x04 and size == 4:  # float: as many digits as a float has (gdb's)
            return f"{struct.unpack('<f', data)[0]:.9g}"
        if enc == 0x04 and size == 8:
            return repr(struct.unpack("<d", data)[0])
        if enc == 0x04:
            return f"<{size}-byte float {raw:#x}>"
        if enc == 0x02:  # boolean
            return "true" if raw else "false"
        if enc in (0x06, 0x08) and size == 1:  # char
            v = _signed(raw, 1) if enc == 0x06 else raw
            ch = chr(raw)
            shown = repr(ch) if 32 <= raw < 127 else f"'\\x{raw:02x}'"
            return f"{v} {shown}"
        if enc in (0x05, 0x0D, 0x06):  # signed
            return str(_signed(raw, size))
        return str(raw)

    def has_children(self, var: Variable) -> bool:
        ty = strip(var.type)
        if ty is None or not var.location.readable:
            return False
        if ty.tag in ("DW_TAG_structure_type", "DW_TAG_union_type"):
            return True
        if ty.tag == "DW_TAG_array_type":
            return array_dims(ty)[0] > 0
        if ty.tag == "DW_TAG_pointer_type":
            target = strip(_type_of(ty))
            return target is not None and target.tag != "DW_TAG_subroutine_type"
        return False

    def element_count(self, var: Variable) -> int:
        ty = strip(var.type)
        if ty is not None and ty.tag == "DW_TAG_array_type":
            return min(array_dims(ty)[0], MAX_ELEMENTS)
        return 0

    def children(self, var: Variable, start: int = 0, count: int | None = None
                 ) -> list[Variable]:
        ty = strip(var.type)
        if ty is None or not var.location.readable:
            return []
        if ty.tag in ("DW_TAG_structure_type", "DW_TAG_union_type"):
            return self._members(var, ty)
        if ty.tag == "DW_TAG_array_type":
            return self._elements(var, ty, start, count)
        if ty.tag == "DW_TAG_pointer_type":
            d = self.deref(var)
            return [d] if d is not None else []
        return []

    def _members(self, var: Variable, ty: Any) -> list[Variable]:
        out = []
        for m in ty.iter_children():
            if m.tag != "DW_TAG_member":
                continue
            off_attr = m.attributes.get("DW_AT_data_member_location")
            off = off_attr.value if off_attr is not None and isinstance(off_attr.value, int) \
                else 0
            name = _name(m) or "<anonymous>"
            mty = _type_of(m)
            loc = self._bits(var, m, off, mty) if "DW_AT_bit_size" in m.attributes \
                else self._sub(var, off, type_size(mty))
            out.append(Variable(name, mty, loc, "member",
                                f"{var.path}.{name}" if var.path else name))
        return out

    def _bits(self, var: Variable, m: Any, off: int, mty: Any) -> Location:
        """A bit-field member's value (DWARF 4+ ``DW_AT_data_bit_offset``, or DWARF 2/3
        ``DW_AT_bit_offset`` counted from the storage unit's most significant bit)."""
        size = type_size(mty) or 4
        nbits = int(m.attributes["DW_AT_bit_size"].value)
        if "DW_AT_data_bit_offset" in m.attributes:
            first_bit = int(m.attributes["DW_AT_data_bit_offset"].value)
        else:
            unit = int(m.attributes["DW_AT_byte_size"].value) if "DW_AT_byte_size" in \
                m.attributes else size
            old = m.attributes.get("DW_AT_bit_offset")
            first_bit = off * 8 + unit * 8 - (int(old.value) if old is not None else 0) - nbits
        start, shift = divmod(first_bit, 8)
        try:
            raw = int.from_bytes(read_location(self._sub(var, start, (shift + nbits + 7) // 8),
                                               (shift + nbits + 7) // 8, self.frame), "little")
        except SyxdbgError as exc:
            return Location("unavailable", reason=str(exc))
        value = (raw >> shift) & ((1 << nbits) - 1)
        bare = strip(mty)
        enc = bare.attributes["DW_AT_encoding"].value if bare is not None and \
            "DW_AT_encoding" in bare.attributes else 0x08
        if enc in (0x05, 0x0D, 0x06) and value >> (nbits - 1):
            value -= 1 << nbits
        return Location("value", data=(value & (1 << 8 * size) - 1).to_bytes(size, "little"))

    def _elements(self, var: Variable, ty: Any, start: int, count: int | None
                  ) -> list[Variable]:
        dims = array_dims(ty)
        n = min(dims[0], MAX_ELEMENTS)
        ety = _type_of(ty)
        if len(dims) > 1:  # an element of a multi-dimensional array is an array itself
            ety = _SubArray(ty, dims[1:])
        esize = type_size(ety) if not isinstance(ety, _SubArray) else ety.size
        end = n if count is None else min(n, start + count)
        return [Variable(f"[{i}]", ety, self._sub(var, i * esize, esize), "element",
                         f"{var.path}[{i}]") for i in range(start, end)]

    def _sub(self, var: Variable, offset: int, size: int) -> Location:
        loc = var.location
        if loc.kind == "memory":
            return Location("memory", address=loc.address + offset)
        try:
            data = read_location(loc, offset + size, self.frame)
        except SyxdbgError as exc:
            return Location("unavailable", reason=str(exc))
        return Location("value", data=data[offset:offset + size])

    def deref(self, var: Variable) -> Variable | None:
        ty = strip(var.type)
        if ty is None or ty.tag != "DW_TAG_pointer_type":
            return None
        target = _type_of(ty)
        if strip(target) is None:
            return None
        try:
            ptr = int.from_bytes(self.read(var, 8), "little")
        except SyxdbgError:
            return None
        return Variable(f"*{var.name}", target, Location("memory", address=ptr), "deref",
                        f"*{var.path}" if var.path else "")

    def integer(self, var: Variable) -> int | None:
        """The value as an integer (base types, enums, pointers), else None."""
        ty = strip(var.type)
        if ty is None or ty.tag not in ("DW_TAG_base_type", "DW_TAG_enumeration_type",
                                        "DW_TAG_pointer_type"):
            return None
        enc = ty.attributes["DW_AT_encoding"].value if "DW_AT_encoding" in ty.attributes \
            else 0x07
        if enc == 0x04:
            return None
        size = type_size(ty) or 8
        raw = int.from_bytes(self.read(var, size), "little")
        return _signed(raw, size) if enc in (0x05, 0x0D, 0x06) and \
            ty.tag != "DW_TAG_pointer_type" else raw


class _SubArray:
    """A row of a multi-dimensional array (``int m[3][4]``: ``m[1]`` is an int[4])."""

    tag = "DW_TAG_array_type"

    def __init__(self, array: Any, dims: list[int]) -> None:
        self.array = array
        self.dims = dims
        self.attributes: dict[str, Any] = {"DW_AT_type": None}
        self.size = type_size(_type_of(array))
        for d in dims:
            self.size *= d

    def iter_children(self) -> Any:
        return iter(())

    def get_DIE_from_attribute(self, name: str) -> Any:  # noqa: N802 - pyelftools' name
        return self.array.get_DIE_from_attribute(name)


# -- C access paths -----------------------------------------------------------------------------
_PATH = re.compile(r"\s*(?P<prefix>[*&]*)\s*(?P<head>[A-Za-z_][A-Za-z0-9_]*)(?P<rest>.*)$")
_STEP = re.compile(r"\s*(?:(?P<dot>\.|->)\s*(?P<member>[A-Za-z_][A-Za-z0-9_]*)"
                   r"|\[\s*(?P<index>[^\[\]]+?)\s*\])")


def is_path(text: str) -> bool:
    """Does ``text`` look like a C access path (``ledger.history[3]``, ``*p``, ``s->x``)?"""
    m = _PATH.match(text)
    if m is None:
        return False
    rest = m.group("rest")
    while rest.strip():
        s = _STEP.match(rest)
        if s is None:
            return False
        rest = rest[s.end():]
    return True


def resolve_path(variables: Variables, renderer: Renderer, text: str,
                 frame: FrameState | None,
                 evaluate: Callable[[str], int] | None = None) -> Variable:
    """The variable a C access path names: a variable, then ``.member``, ``->member``,
    ``[index]``, with leading ``*`` (dereference) and ``&`` (address of). An index that is
    not a number is computed by ``evaluate`` (``batch[i]``)."""
    m = _PATH.match(text)
    if m is None or not is_path(text):
        raise CommandError(f"not a variable path: {text!r}")
    head = m.group("head")
    var = variables.lookup(head, frame)
    if var is None:
        raise CommandError(f"no variable {head!r} here")
    rest = m.group("rest")
    while rest.strip():
        s = _STEP.match(rest)
        assert s is not None
        rest = rest[s.end():]
        if s.group("index") is not None:
            index = s.group("index")
            try:
                i = int(index, 0)
            except ValueError:
                if evaluate is None:
                    raise CommandError(f"cannot compute the index {index!r}") from None
                i = evaluate(index)
            var = _index(renderer, var, i)
        else:
            if s.group("dot") == "->":
                d = renderer.deref(var)
                if d is None:
                    raise CommandError(f"{var.path or var.name} is not a pointer")
                var = d
            member = s.group("member")
            found = next((c for c in renderer.children(var) if c.role == "member"
                          and c.name == member), None)
            if found is None:
                raise CommandError(f"{var.path or var.name} has no member {member!r}")
            var = found
    for ch in reversed(m.group("prefix")):
        if ch == "*":
            d = renderer.deref(var)
            if d is None:
                raise CommandError(f"{var.path or var.name} is not a pointer")
            var = d
        else:
            address = renderer.address_of(var)
            if address is None:
                raise CommandError(f"{var.path or var.name} is not in memory")
            var = Variable(f"&{var.name}", _PointerTo(var.type),
                           Location("value", data=address.to_bytes(8, "little")), "local",
                           f"&{var.path}")
    return var


def _index(renderer: Renderer, var: Variable, i: int) -> Variable:
    ty = strip(var.type)
    if ty is not None and ty.tag == "DW_TAG_array_type":
        dims = array_dims(ty)
        if not 0 <= i < dims[0]:
            raise CommandError(f"index {i} out of bounds of {var.path or var.name} "
                               f"({dims[0]} elements)")
        return renderer.children(var, i, 1)[0]
    if ty is not None and ty.tag == "DW_TAG_pointer_type":
        d = renderer.deref(var)
        if d is None:
            raise CommandError(f"{var.path or var.name} points to void")
        size = type_size(d.type)
        return Variable(f"{var.name}[{i}]", d.type,
                        Location("memory", address=d.location.address + i * size),
                        "element", f"{var.path}[{i}]")
    raise CommandError(f"{var.path or var.name} is neither an array nor a pointer")


class _PointerTo:
    """A pointer type made up for ``&x`` (not in the DWARF)."""

    tag = "DW_TAG_pointer_type"

    def __init__(self, target: Any) -> None:
        self.target = target
        self.attributes: dict[str, Any] = {"DW_AT_type": None}

    def get_DIE_from_attribute(self, name: str) -> Any:  # noqa: N802 - pyelftools' name
        return self.target


def describe_type(ty: Any) -> str:
    """:func:`type_name`, tolerant of the made-up types of this module."""
    if isinstance(ty, _PointerTo):
        return f"{describe_type(ty.target)} *"
    if isinstance(ty, _SubArray):
        return f"{type_name(_type_of(ty.array))}" + "".join(f"[{d}]" for d in ty.dims)
    return type_name(ty)
