"""What a loader produced."""

from __future__ import annotations

from dataclasses import dataclass, field

from .symtab import SymbolTables, parse_symbol_tables


@dataclass(frozen=True)
class Segment:
    start: int
    end: int
    perms: str  # "r-x", "rw-", ...
    file_offset: int = 0


@dataclass
class LoadedImage:
    """A program loaded into guest memory.

    ``symbols`` maps names to (relocated) addresses; ``symbol_sizes`` their sizes. They are
    parsed from ``symbol_tables`` (the bytes read when the program was loaded) the first
    time either is asked for: nothing that executes the program needs them, and an exec
    of a static glibc program spent ~6 ms parsing its 2,000 symbols.
    ``brk`` is the initial program break (page after the highest loaded segment).
    """

    path: str
    kind: str  # "elf" or "raw"
    arch: str
    entry: int
    load_bias: int = 0
    brk: int = 0
    phdr: int = 0
    phent: int = 0
    phnum: int = 0
    is_pie: bool = False
    segments: list[Segment] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    envp: list[str] = field(default_factory=list)
    execfn: str = ""
    stack_top: int = 0
    stack_size: int = 0
    initial_sp: int = 0
    auxv: dict[int, int] = field(default_factory=dict)
    random_bytes: bytes = b""
    #: Where the guest's absolute paths resolve ("" or "/": the host's root).
    sysroot: str = ""
    #: A dynamic program's interpreter: its name (PT_INTERP, also its name in the guest's
    #: memory map), the host file loaded, its base (AT_BASE) and segments.
    interp: str = ""
    interp_path: str = ""
    interp_base: int = 0
    interp_segments: list[Segment] = field(default_factory=list)
    #: The unparsed symbol tables (None: no symbols, or already parsed into ``symbols``).
    symbol_tables: SymbolTables | None = field(default=None, repr=False, compare=False)
    _symbols: dict[str, int] | None = field(default=None, init=False, repr=False,
                                            compare=False)
    _symbol_sizes: dict[str, int] = field(default_factory=dict, init=False, repr=False,
                                          compare=False)

    def _parse_symbols(self) -> dict[str, int]:
        if self._symbols is None:
            if self.symbol_tables is None:
                self._symbols = {}
            else:
                symbols, sizes = parse_symbol_tables(self.symbol_tables)
                self._symbols, self._symbol_sizes = dict(symbols), dict(sizes)
                self.symbol_tables = None
        return self._symbols

    @property
    def symbols(self) -> dict[str, int]:
        """Function and object symbols by name (relocated addresses), parsed on first use."""
        return self._parse_symbols()

    @property
    def symbol_sizes(self) -> dict[str, int]:
        """The symbols' sizes by name."""
        self._parse_symbols()
        return self._symbol_sizes

    @property
    def symbols_parsed(self) -> bool:
        """Whether the symbol tables were parsed (tests check that exec does not)."""
        return self._symbols is not None

    def symbolize(self, address: int) -> str | None:
        """``name+off`` for the function or object containing ``address``, if any."""
        best: tuple[int, str] | None = None
        for name, addr in self.symbols.items():
            size = self.symbol_sizes.get(name, 0)
            if addr <= address < addr + max(size, 1) and (best is None or addr > best[0]):
                best = (addr, name)
        if best is None:
            return None
        off = address - best[0]
        return best[1] if off == 0 else f"{best[1]}+{off:#x}"
