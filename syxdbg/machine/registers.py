"""Registers by name and by gdb number, from the architecture's register table."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from unicorn import UcError

from ..errors import RegisterError
from .arch import ArchSpec, RegisterInfo

if TYPE_CHECKING:
    from unicorn import Uc


class Registers:
    """``regs.rip``, ``regs["x0"] = 1``, and raw byte access for the gdb stub.

    Values are unsigned integers of the register's width; 80-bit x87 registers are integers
    holding the raw extended-precision bits (mantissa in the low 64 bits).
    """

    __slots__ = ("_uc", "_arch", "_virtual", "_written", "_fast", "_batch", "_fast_write",
                 "_fast_many", "_narrow")
    _uc: Uc
    _arch: ArchSpec
    _virtual: dict[str, int]
    #: Called after every successful write (the machine forgets a fault stop then).
    _written: Callable[[], None] | None
    #: Reads an integer register of at most 64 bits by Unicorn id, bypassing the binding
    #: (the machine's C core; a stop reply reads three registers per stepi).
    _fast: Callable[[int], int] | None
    #: The wide registers' batch reader (:meth:`read_all`), made on first use.
    _batch: _WideBatch | None
    #: Writes an integer register of at most 64 bits by Unicorn id, bypassing the binding;
    #: returns the uc_err (a thread switch writes a dozen, each system call its result).
    _fast_write: Callable[[int, int], int] | None
    #: Reads several registers in one call (``ids``, widths in bits): :meth:`read_all`.
    _fast_many: Callable[[tuple[int, ...], tuple[int, ...]], list[int]] | None
    #: For :meth:`read_all` with ``_fast_many``: the table positions, Unicorn ids and widths
    #: (bits) of the registers it reads (made on first use).
    _narrow: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None

    def __init__(self, uc: Uc, arch: ArchSpec,
                 written: Callable[[], None] | None = None, *,
                 fast_read: Callable[[int], int] | None = None,
                 fast_write: Callable[[int, int], int] | None = None,
                 fast_many: Callable[[tuple[int, ...], tuple[int, ...]], list[int]] | None
                 = None) -> None:
        object.__setattr__(self, "_uc", uc)
        object.__setattr__(self, "_arch", arch)
        object.__setattr__(self, "_virtual", {})
        object.__setattr__(self, "_written", written)
        object.__setattr__(self, "_fast", fast_read)
        object.__setattr__(self, "_batch", None)
        object.__setattr__(self, "_fast_write", fast_write)
        object.__setattr__(self, "_fast_many", fast_many)
        object.__setattr__(self, "_narrow", None)

    def info(self, name: str) -> RegisterInfo:
        reg = self._arch.register(name)
        if reg is None:
            raise RegisterError(f"unknown register {name!r} for {self._arch.name}")
        return reg

    def info_by_number(self, regnum: int) -> RegisterInfo:
        for reg in self._arch.registers:
            if reg.regnum == regnum:
                return reg
        raise RegisterError(f"unknown register number {regnum} for {self._arch.name}")

    def names(self) -> list[str]:
        return [r.name for r in self._arch.registers]

    def read_info(self, reg: RegisterInfo) -> int:
        if reg.uc_id is None:
            return int(self._virtual.get(reg.name, 0))
        if self._fast is not None and reg.bitsize <= 64 and reg.encoding == "int":
            return self._fast(reg.uc_id) & ((1 << reg.bitsize) - 1)
        value = self._uc.reg_read(reg.uc_id)
        if reg.encoding == "x87":
            mantissa, exponent = value
            return (int(exponent) << 64) | int(mantissa)
        return int(value) & ((1 << reg.bitsize) - 1)

    def write_info(self, reg: RegisterInfo, value: int) -> None:
        """Write ``value`` (truncated to the register's width, as gdb does).

        Raises :class:`RegisterError` when the emulated CPU refuses the value (an x86
        segment selector with no descriptor, such as ``fs = 0xffff``); the register keeps
        its old value then.
        """
        value &= (1 << reg.bitsize) - 1
        if reg.uc_id is None:
            self._virtual[reg.name] = value
        elif (self._fast_write is not None and reg.bitsize <= 64 and reg.encoding == "int"
              and not (reg.name == "pc" and self._arch.name in ("arm", "cortex-m"))):
            status = self._fast_write(reg.uc_id, value)
            if status:
                raise RegisterError(f"cannot set {reg.name} to {value:#x}: the emulated CPU "
                                    f"refuses it ({UcError(status)})")
        else:
            try:
                if reg.encoding == "x87":
                    self._uc.reg_write(reg.uc_id, (value & ((1 << 64) - 1), value >> 64))
                else:
                    if reg.name == "pc" and self._arch.name == "cortex-m":
                        value |= 1  # always Thumb (an even pc would fault: INVSTATE)
                    elif reg.name == "pc" and self._arch.name == "arm" and not value & 1:
                        # Unicorn's pc write sets the Thumb state from bit 0: keep the
                        # current state (the CPSR's T bit) unless bit 0 asks for Thumb.
                        value |= (self._uc.reg_read(self._arch_cpsr()) >> 5) & 1
                    self._uc.reg_write(reg.uc_id, value)
            except UcError as exc:
                raise RegisterError(f"cannot set {reg.name} to {value:#x}: the emulated CPU "
                                    f"refuses it ({exc})") from None
        if self._written is not None:
            self._written()

    def _arch_cpsr(self) -> int:
        cpsr = self._arch.register("cpsr")
        assert cpsr is not None and cpsr.uc_id is not None
        return cpsr.uc_id

    def __getitem__(self, name: str) -> int:
        return self.read_info(self.info(name))

    def __setitem__(self, name: str, value: int) -> None:
        self.write_info(self.info(name), int(value))

    def __getattr__(self, name: str) -> int:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except RegisterError as exc:
            raise AttributeError(str(exc)) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._arch.register(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def read_bytes(self, regnum: int) -> bytes:
        reg = self.info_by_number(regnum)
        return self.read_info(reg).to_bytes(reg.size, "little")

    def write_bytes(self, regnum: int, data: bytes) -> None:
        reg = self.info_by_number(regnum)
        if len(data) != reg.size:
            raise RegisterError(f"register {reg.name} takes {reg.size} bytes, got {len(data)}")
        self.write_info(reg, int.from_bytes(data, "little"))

    def read_all(self) -> tuple[tuple[str, int], ...]:
        """Every register of the table as ``(name, value)``, in table order, the values
        :meth:`read_info` gives: the integer registers through the fast path, the wide
        ones (x87, vector) in one batch call (a thread switch saves them all: reading the
        wide ones one by one through the binding cost about 3 us each)."""
        table = self._arch.registers
        if self._fast_many is not None:
            narrow = self._narrow
            if narrow is None:  # every register libunicorn reads as bytes, in one C call
                picked = [(i, r.uc_id, r.bitsize) for i, r in enumerate(table)
                          if r.uc_id is not None and r.bitsize <= 512]
                narrow = (tuple(p[0] for p in picked), tuple(p[1] for p in picked),
                          tuple(p[2] for p in picked))
                object.__setattr__(self, "_narrow", narrow)
            positions, ids, bits = narrow
            if len(positions) == len(table):
                return tuple(zip(self.names(), self._fast_many(ids, bits), strict=True))
            values: list[Any] = [None] * len(table)
            for i, value in zip(positions, self._fast_many(ids, bits), strict=True):
                values[i] = value
            return tuple((reg.name, self.read_info(reg) if values[i] is None else values[i])
                         for i, reg in enumerate(table))
        batch = self._batch
        if batch is None:
            batch = _WideBatch(table)
            object.__setattr__(self, "_batch", batch)
        wide = batch.read(self._uc) if batch.count else {}
        fast = self._fast
        out = []
        for reg in self._arch.registers:
            if reg.name in wide:
                value = wide[reg.name]
            elif fast is not None and reg.uc_id is not None and reg.bitsize <= 64 \
                    and reg.encoding == "int":
                value = fast(reg.uc_id) & ((1 << reg.bitsize) - 1)
            else:
                value = self.read_info(reg)
            out.append((reg.name, value))
        return tuple(out)

    def snapshot(self) -> dict[str, int]:
        """Every register's value, by name (slow path: for tests, diffs and displays)."""
        return {r.name: self.read_info(r) for r in self._arch.registers}

    @property
    def pc(self) -> int:
        return self[self._arch.pc]

    @pc.setter
    def pc(self, value: int) -> None:
        self[self._arch.pc] = value

    @property
    def sp(self) -> int:
        return self[self._arch.sp]

    @sp.setter
    def sp(self, value: int) -> None:
        self[self._arch.sp] = value


class _WideBatch:
    """The wide registers of a table (more than 64 bits: x87, vector), read together by
    one ``uc_reg_read_batch`` into 16-byte slots (an x87 register is its 64-bit mantissa
    then its 16-bit exponent: the same integer :meth:`Registers.read_info` makes)."""

    SLOT = 16

    def __init__(self, table: Any) -> None:
        import ctypes

        regs = [r for r in table if r.uc_id is not None and r.bitsize > 64
                and r.bitsize <= 8 * self.SLOT]
        self.count = len(regs)
        self.names = [r.name for r in regs]
        self.sizes = [(r.bitsize + 7) // 8 for r in regs]
        self.ids = (ctypes.c_int * max(self.count, 1))(*[r.uc_id for r in regs])
        self.buf = ctypes.create_string_buffer(self.SLOT * max(self.count, 1))
        base = ctypes.addressof(self.buf)
        self.ptrs = (ctypes.c_void_p * max(self.count, 1))(
            *[base + i * self.SLOT for i in range(self.count)])

    def read(self, uc: Any) -> dict[str, int]:
        status = uc._do_reg_read_batch(self.ids, self.ptrs, self.count)
        if status:
            raise UcError(status)
        raw = self.buf.raw
        slot = self.SLOT
        return {name: int.from_bytes(raw[i * slot:i * slot + size], "little")
                for i, (name, size) in enumerate(zip(self.names, self.sizes, strict=True))}
