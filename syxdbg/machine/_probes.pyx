# cython: language_level=3, embedsignature=True, boundscheck=False, wraparound=False, cdivision=True
"""Execution recorders in C: basic-block coverage and an instruction trace.

Both exist only while something records: they add their Unicorn hooks when attached and
delete them when detached, dropping the translation cache both ways, so a machine without
a recorder runs exactly as before (Unicorn 2.1.4 bakes the hooks present at translation
time into each translated block: see ``BlockCore._flush_translations``). Nothing here calls
Python per block, instruction or access.

Exactness. A hook that fires is not an instruction that retired: the machine's own stops
(a breakpoint code hook, a bounded run's stop, a fault) can come after a recorder's hook for
the same block or instruction, in hook-list order. So recorders never decide alone: the
machine tells them at every stop where execution really stopped (``at_stop``: the pc and
whether it lies inside the block the run core was in) and the exact position it settled on
(``settled``), and they trim what did not execute. When QEMU leaves a block part-way without
a stop (a store over the running block's code restarts at that store), the run core corrects
its count and bumps its :c:type:`EarlyExit` record; the recorders read the same record.

* :class:`BlockCore`: a ``UC_HOOK_BLOCK`` callback keeps the block being executed and
  commits it to an open-addressing set of (start, byte size) once the next block begins or
  the machine stops; a block left part-way is committed as the part that ran.
* :class:`TraceCore`: a ``UC_HOOK_CODE`` callback reads the traced registers
  (``uc_reg_read_batch``) before every instruction and appends a record (pc, mask of the
  registers that changed, their values); ``UC_HOOK_MEM_READ``/``WRITE`` callbacks append
  the accesses (bytes read, taken from memory before the read; bytes written, from the
  hook's value). Records are formatted as Tenet text lines (see ``_flush``) and written to
  a file descriptor whenever the buffer grows past a threshold, keeping the newest
  ``RING`` lines unformatted so a stop can still take them back.
"""

cimport cython
from libc.errno cimport errno
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy, memmove
from posix.unistd cimport write as posix_write

from syxdbg.includes.ucapi cimport UcApi
from syxdbg.includes.unicorn cimport *
from syxdbg.machine._shared cimport EarlyExit

include "../includes/ucapi.pxi"


cdef extern from *:
    """
    typedef __typeof__(&uc_mem_read) syx_probe_mem_read_t;
    typedef __typeof__(&uc_reg_read_batch) syx_probe_reg_read_t;
    """
    ctypedef uc_err (*syx_probe_mem_read_t)(uc_engine *uc, uint64_t address, void *data,
                                            uint64_t size) nogil
    ctypedef uc_err (*syx_probe_reg_read_t)(uc_engine *uc, int *regs, void **vals,
                                            int count) nogil

cdef extern from "unicorn/unicorn.h" nogil:
    cdef enum:
        UC_MEM_READ
        UC_MEM_WRITE


cdef size_t _uc_function(str name) except 0:
    """Address of a libunicorn function, from the binding's own ctypes library."""
    import ctypes

    from unicorn.unicorn_py3.unicorn import uclib
    return <size_t>ctypes.cast(getattr(uclib, name), ctypes.c_void_p).value


cdef uint64_t EMPTY = 0xFFFFFFFFFFFFFFFFULL


# --- basic blocks -------------------------------------------------------------------------

ctypedef struct BlockState:
    EarlyExit *early
    uint64_t early_seen
    uint64_t cur_start
    uint32_t cur_size
    int in_block
    int oom
    uint64_t entries
    # the set of (start, size), open addressing
    uint64_t *starts
    uint32_t *sizes
    size_t cap
    size_t used


cdef inline size_t _bslot(uint64_t start, uint32_t size, size_t cap) noexcept nogil:
    cdef uint64_t h = (start ^ (<uint64_t>size << 48)) * 0x9E3779B97F4A7C15ULL
    return <size_t>((h ^ (h >> 29)) & (cap - 1))


cdef int _bset_alloc(BlockState *s, size_t cap) noexcept nogil:
    cdef size_t i
    s.starts = <uint64_t *>calloc(cap, sizeof(uint64_t))
    s.sizes = <uint32_t *>calloc(cap, sizeof(uint32_t))
    if s.starts == NULL or s.sizes == NULL:
        free(s.starts)
        free(s.sizes)
        s.starts = NULL
        s.sizes = NULL
        return -1
    for i in range(cap):
        s.starts[i] = EMPTY
    s.cap = cap
    s.used = 0
    return 0


cdef void _bset_put(BlockState *s, uint64_t start, uint32_t size) noexcept nogil:
    """Add (start, size); on allocation failure set ``oom`` (reported by the facade)."""
    # INVARIANT: cap is a power of two and the table is at most half full, so the probe
    # loop ends on an EMPTY slot.
    cdef size_t i
    cdef size_t j
    cdef uint64_t *old_starts
    cdef uint32_t *old_sizes
    cdef size_t old_cap
    if size == 0 or s.oom:
        return
    if (s.used + 1) * 2 > s.cap:
        old_starts = s.starts
        old_sizes = s.sizes
        old_cap = s.cap
        if _bset_alloc(s, old_cap * 2) != 0:
            s.starts = old_starts
            s.sizes = old_sizes
            s.cap = old_cap
            s.oom = 1
            return
        for j in range(old_cap):
            if old_starts[j] != EMPTY:
                _bset_put(s, old_starts[j], old_sizes[j])
        free(old_starts)
        free(old_sizes)
    i = _bslot(start, size, s.cap)
    while s.starts[i] != EMPTY:
        if s.starts[i] == start and s.sizes[i] == size:
            return
        i = (i + 1) & (s.cap - 1)
    s.starts[i] = start
    s.sizes[i] = size
    s.used += 1


cdef void _close_block(BlockState *s, uint64_t stop_pc, int stopped_inside) noexcept nogil:
    """Commit the current block: all of it, or the part before ``stop_pc`` when the run
    core says execution left it early or stopped inside it."""
    cdef uint64_t end
    if not s.in_block:
        return
    s.in_block = 0
    if s.early.count != s.early_seen:
        # INVARIANT: the run core's block hook runs before ours, so a changed count means
        # the block we were in was left at ``early.address`` (a start inside it).
        s.early_seen = s.early.count
        end = s.early.address
        if s.cur_start < end < s.cur_start + s.cur_size:
            _bset_put(s, s.cur_start, <uint32_t>(end - s.cur_start))
        elif end != s.cur_start:
            _bset_put(s, s.cur_start, s.cur_size)
        return
    if stopped_inside:
        if stop_pc > s.cur_start:
            _bset_put(s, s.cur_start, <uint32_t>(stop_pc - s.cur_start))
        return
    _bset_put(s, s.cur_start, s.cur_size)


cdef void _block_cb(uc_engine *uc, uint64_t address, uint32_t size,
                    void *user_data) noexcept nogil:
    # INVARIANT: user_data is the BlockState inside a BlockCore; the machine keeps the
    # object referenced while the hook exists (and until Unicorn frees a deleted one).
    cdef BlockState *s = <BlockState *>user_data
    _close_block(s, 0, 0)
    s.early_seen = s.early.count
    s.cur_start = address
    s.cur_size = size
    s.in_block = 1
    s.entries += 1


@cython.no_gc_clear  # the hook's user data lives in this object until Unicorn drops the hook
cdef class BlockCore:
    """Basic-block coverage in C. See the module docstring.

    ``core`` is the machine's ``RunCore``; it must outlive this object (kept referenced).
    """

    cdef BlockState s
    cdef UcApi api
    cdef uc_engine *uc
    cdef uc_hook hook
    cdef bint _attached
    cdef object _uc
    cdef object _core

    def __cinit__(self, object uc not None, object core not None):
        self._uc = uc
        self._core = core
        self.uc = <uc_engine *>_uc_handle(uc)
        _ucapi_fill(&self.api)
        self.s.early = <EarlyExit *><size_t>core.early_exit_address()
        if _bset_alloc(&self.s, 1024) != 0:
            raise MemoryError()

    def __dealloc__(self):
        free(self.s.starts)
        free(self.s.sizes)

    def _flush_translations(self):
        # NOTE(unicorn 2.1.4): a block translated while exactly one hook of a type exists
        # calls that hook's callback directly instead of walking the hook list, so blocks
        # translated with only the run core's block hook would never call ours (and, after
        # a detach, blocks translated with ours would keep calling the list walker). Drop
        # the translation cache both ways.
        self.api.ctl(self.uc, SYX_CTL_W(UC_CTL_TB_FLUSH, 0))

    def attach(self):
        """Add the block hook and drop the translation cache (see _flush_translations)."""
        if self._attached:
            return
        self.s.early_seen = self.s.early.count
        self.s.in_block = 0
        cdef uc_err err = self.api.hook_add(self.uc, &self.hook, UC_HOOK_BLOCK,
                                            <void *>_block_cb, &self.s, 1, 0)
        if err != UC_ERR_OK:
            raise RuntimeError(f"uc_hook_add(UC_HOOK_BLOCK) failed: {err}")
        self._attached = True
        self._flush_translations()

    def detach(self):
        """Delete the hook (Unicorn frees it when the next emulation returns; this object
        must stay alive until then: the machine keeps detached recorders)."""
        if not self._attached:
            return
        self.api.hook_del(self.uc, self.hook)
        self._attached = False
        self.s.in_block = 0
        self._flush_translations()

    def at_stop(self, uint64_t pc, bint inside):
        """The machine stopped at ``pc``; ``inside``: within the run core's current block
        (so that block ran only up to ``pc``)."""
        _close_block(&self.s, pc, inside)

    def forget(self):
        """Drop the current block uncommitted (it belongs to no retired instruction)."""
        self.s.in_block = 0
        self.s.early_seen = self.s.early.count

    @property
    def attached(self):
        return bool(self._attached)

    @property
    def entries(self):
        """Block entries seen (hook calls)."""
        return self.s.entries

    @property
    def out_of_memory(self):
        return bool(self.s.oom)

    def __len__(self):
        return self.s.used

    def blocks(self):
        """Sorted list of the (start, byte size) committed so far."""
        out = []
        cdef size_t i
        for i in range(self.s.cap):
            if self.s.starts[i] != EMPTY:
                out.append((self.s.starts[i], self.s.sizes[i]))
        out.sort()
        return out


# --- interval code index ------------------------------------------------------------------
#
# The timeline's per-interval summary of the code executed (see docs/timetravel.md, indexed
# reverse search). The run core's block hook (``_native``) calls ``_index_cb`` for every
# block it counts (``RunCore.set_block_listener``: a second ``UC_HOOK_BLOCK`` would make
# Unicorn walk its hook list for every block, ~25% slower on a store loop). It keeps, in an
# open-addressing table keyed by block start, the epoch in which each block was last seen;
# the first entry of a block in an epoch appends its start to the epoch's list (a repeated
# block costs a hash, a load and a compare). ``take()`` turns the list into sorted, disjoint
# [lo, hi) byte ranges covering every block entered in the epoch and opens a new epoch.
# Every instruction that executes belongs to a block the run core counted (a block it
# refuses at a limit or an interrupt never runs), so the ranges hold every instruction
# executed: a superset (a block left early still counts whole), never less.
#
# Range sets (``take``, ``ranges_*``) are bytes of native-endian uint64 pairs (lo, hi),
# sorted by lo, disjoint and not adjacent.

DEF INDEX_CACHE = 256  # direct-mapped front cache of the table (a hot loop's blocks)

ctypedef struct IndexCacheEnt:
    uint64_t address
    uint64_t epoch
    uint32_t size

ctypedef struct IndexState:
    IndexCacheEnt cache[INDEX_CACHE]
    uint64_t *starts
    uint32_t *sizes       # the largest size seen for the start in its epoch
    uint64_t *stamps      # the epoch in which the start was last listed
    size_t cap
    size_t used
    uint64_t epoch
    uint64_t *listed      # starts listed in this epoch
    size_t nlisted
    size_t caplisted
    int oom
    uint64_t entries


cdef int _index_alloc(IndexState *s, size_t cap) noexcept nogil:
    cdef size_t i
    s.starts = <uint64_t *>calloc(cap, sizeof(uint64_t))
    s.sizes = <uint32_t *>calloc(cap, sizeof(uint32_t))
    s.stamps = <uint64_t *>calloc(cap, sizeof(uint64_t))
    if s.starts == NULL or s.sizes == NULL or s.stamps == NULL:
        free(s.starts)
        free(s.sizes)
        free(s.stamps)
        s.starts = NULL
        s.sizes = NULL
        s.stamps = NULL
        return -1
    for i in range(cap):
        s.starts[i] = EMPTY
    s.cap = cap
    s.used = 0
    return 0


cdef inline size_t _islot(uint64_t start, size_t cap) noexcept nogil:
    cdef uint64_t h = start * 0x9E3779B97F4A7C15ULL
    return <size_t>((h ^ (h >> 29)) & (cap - 1))


cdef int _index_grow(IndexState *s) noexcept nogil:
    cdef IndexState old = s[0]
    cdef size_t i, j
    if _index_alloc(s, old.cap * 2) != 0:
        s[0] = old
        return -1
    for i in range(old.cap):
        if old.starts[i] != EMPTY:
            j = _islot(old.starts[i], s.cap)
            while s.starts[j] != EMPTY:
                j = (j + 1) & (s.cap - 1)
            s.starts[j] = old.starts[i]
            s.sizes[j] = old.sizes[i]
            s.stamps[j] = old.stamps[i]
            s.used += 1
    free(old.starts)
    free(old.sizes)
    free(old.stamps)
    return 0


cdef inline size_t _index_find(IndexState *s, uint64_t start) noexcept nogil:
    cdef size_t i = _islot(start, s.cap)
    while s.starts[i] != start and s.starts[i] != EMPTY:
        i = (i + 1) & (s.cap - 1)
    return i


cdef void _index_new(IndexState *s, uint64_t address, uint32_t size) noexcept nogil:
    """The block's first entry in this epoch (slow path: insert and list it)."""
    cdef size_t i
    cdef uint64_t *nl
    cdef size_t ncap
    if s.nlisted == s.caplisted:
        ncap = s.caplisted * 2 + 256
        nl = <uint64_t *>realloc(s.listed, ncap * sizeof(uint64_t))
        if nl == NULL:
            s.oom = 1
            return
        s.listed = nl
        s.caplisted = ncap
    if (s.used + 1) * 2 > s.cap and _index_grow(s) != 0:
        s.oom = 1
        return
    i = _index_find(s, address)
    if s.starts[i] == EMPTY:
        s.starts[i] = address
        s.used += 1
    s.sizes[i] = size
    s.stamps[i] = s.epoch
    s.listed[s.nlisted] = address
    s.nlisted += 1


cdef void _index_cb(void *user_data, uint64_t address, uint32_t size) noexcept nogil:
    # INVARIANT: user_data is the IndexState inside an IndexCore, alive while attached.
    cdef IndexState *s = <IndexState *>user_data
    cdef IndexCacheEnt *c = &s.cache[(address ^ (address >> 8)) & (INDEX_CACHE - 1)]
    if c.address == address and c.epoch == s.epoch and c.size >= size:
        return  # the fast path: listed in this epoch, with this size or more
    cdef size_t i = _islot(address, s.cap)
    while True:
        if s.starts[i] == address:
            if s.stamps[i] == s.epoch:
                if size > s.sizes[i]:
                    s.sizes[i] = size
                break
            _index_new(s, address, size)
            break
        if s.starts[i] == EMPTY:
            _index_new(s, address, size)
            break
        i = (i + 1) & (s.cap - 1)
    if not s.oom:  # (the table holds this size or more for this epoch)
        c.address = address
        c.epoch = s.epoch
        c.size = size


cdef int _cmp_pair(const void *a, const void *b) noexcept nogil:
    cdef const uint64_t *x = <const uint64_t *>a
    cdef const uint64_t *y = <const uint64_t *>b
    if x[0] < y[0]:
        return -1
    if x[0] > y[0]:
        return 1
    return 0


cdef extern from "stdlib.h" nogil:
    void qsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))


cdef size_t _coalesce(uint64_t *pairs, size_t n) noexcept nogil:
    """Sort (lo, hi) pairs in place and merge overlapping or adjacent ones; new count."""
    cdef size_t i, k = 0
    if n == 0:
        return 0
    qsort(pairs, n, 2 * sizeof(uint64_t), _cmp_pair)
    for i in range(1, n):
        if pairs[2 * i] <= pairs[2 * k + 1]:
            if pairs[2 * i + 1] > pairs[2 * k + 1]:
                pairs[2 * k + 1] = pairs[2 * i + 1]
        else:
            k += 1
            pairs[2 * k] = pairs[2 * i]
            pairs[2 * k + 1] = pairs[2 * i + 1]
    return k + 1


@cython.no_gc_clear  # the hook's user data lives in this object until Unicorn drops the hook
cdef class IndexCore:
    """The code executed per epoch (checkpoint interval), in C. See the comment above."""

    cdef IndexState s
    cdef bint _attached
    cdef object _core

    def __cinit__(self, object core not None):
        self._core = core
        if _index_alloc(&self.s, 4096) != 0:
            raise MemoryError()
        self.s.epoch = 1

    def __dealloc__(self):
        if self._attached:
            self._core.set_block_listener(0, 0)
        free(self.s.starts)
        free(self.s.sizes)
        free(self.s.stamps)
        free(self.s.listed)

    def attach(self):
        """Become the run core's block listener (one at a time)."""
        if self._attached:
            return
        self._core.set_block_listener(<size_t>&_index_cb, <size_t>&self.s)
        self._attached = True

    def detach(self):
        if not self._attached:
            return
        self._core.set_block_listener(0, 0)
        self._attached = False

    @property
    def attached(self):
        return bool(self._attached)

    @property
    def out_of_memory(self):
        """True once a block could not be listed (the summaries are then unusable)."""
        return bool(self.s.oom)

    @property
    def blocks(self):
        """Distinct blocks listed in the current epoch."""
        return self.s.nlisted

    def peek(self):
        """The ranges of the current epoch (bytes, see above), without ending it."""
        cdef size_t n = self.s.nlisted
        cdef size_t i, k
        cdef uint64_t *pairs = <uint64_t *>malloc((2 * n + 2) * sizeof(uint64_t))
        if pairs == NULL:
            raise MemoryError()
        try:
            with nogil:
                for i in range(n):
                    k = _index_find(&self.s, self.s.listed[i])
                    pairs[2 * i] = self.s.listed[i]
                    pairs[2 * i + 1] = self.s.listed[i] + (self.s.sizes[k] or 1)
                n = _coalesce(pairs, n)
            return (<char *>pairs)[:n * 2 * sizeof(uint64_t)]
        finally:
            free(pairs)

    def reset(self):
        """Open a new epoch (nothing listed)."""
        self.s.epoch += 1
        self.s.nlisted = 0

    def take(self):
        """:meth:`peek`, then :meth:`reset`."""
        out = self.peek()
        self.reset()
        return out


def ranges_pack(pairs):
    """Range-set bytes from an iterable of (lo, hi) (sorted and merged here)."""
    items = [(lo, hi) for lo, hi in pairs if hi > lo]
    cdef size_t n = len(items)
    cdef size_t i = 0
    cdef uint64_t *buf = <uint64_t *>malloc((2 * n + 2) * sizeof(uint64_t))
    if buf == NULL:
        raise MemoryError()
    try:
        for lo, hi in items:
            buf[2 * i] = lo
            buf[2 * i + 1] = hi
            i += 1
        n = _coalesce(buf, n)
        return (<char *>buf)[:n * 2 * sizeof(uint64_t)]
    finally:
        free(buf)


def ranges_unpack(const unsigned char[:] data):
    """The (lo, hi) pairs of range-set bytes."""
    cdef size_t n = data.shape[0] // 16
    cdef size_t i
    cdef const uint64_t *p = <const uint64_t *>&data[0] if n else NULL
    return [(p[2 * i], p[2 * i + 1]) for i in range(n)]


def ranges_union(bytes a, bytes b):
    """The union of two range sets."""
    if not a:
        return b
    if not b or a == b:
        return a
    cdef size_t na = len(a) // 16
    cdef size_t nb = len(b) // 16
    cdef uint64_t *buf = <uint64_t *>malloc((na + nb) * 2 * sizeof(uint64_t))
    cdef size_t n
    if buf == NULL:
        raise MemoryError()
    try:
        memcpy(buf, <const char *>a, na * 16)
        memcpy(buf + 2 * na, <const char *>b, nb * 16)
        with nogil:
            n = _coalesce(buf, na + nb)
        return (<char *>buf)[:n * 2 * sizeof(uint64_t)]
    finally:
        free(buf)


def ranges_overlap(bytes ranges, uint64_t lo, uint64_t hi):
    """True if [lo, hi) meets a range of the set."""
    cdef size_t n = len(ranges) // 16
    cdef const uint64_t *p = <const uint64_t *><const char *>ranges
    cdef size_t a = 0, b = n, mid
    if n == 0 or hi <= lo:
        return False
    # The first range whose hi > lo; it meets [lo, hi) iff its lo < hi.
    while a < b:
        mid = (a + b) >> 1
        if p[2 * mid + 1] <= lo:
            a = mid + 1
        else:
            b = mid
    return a < n and p[2 * a] < hi


# --- instruction trace --------------------------------------------------------------------
#
# Record buffer (host byte order; fields unaligned, accessed with memcpy):
#   'L' u64 pc, u64 mask, u64 value for each set bit of mask     one per instruction
#   'R' / 'W' u32 size, u64 address, size bytes                   its memory accesses
#   'H' u32 size, u64 address, size bytes (filled later)          a host write (syscall)
#   'X' u32 size, u64 address, size bytes                         a dropped entry
# An instruction's accesses follow its 'L' record.

DEF MAXREG = 40
DEF RING = 8
DEF LINE_HDR = 17
DEF ACC_HDR = 13

ctypedef struct Mark:
    size_t off
    uint64_t pc
    uint64_t regs[MAXREG]

ctypedef struct TraceState:
    syx_probe_mem_read_t mem_read
    syx_probe_reg_read_t reg_read
    EarlyExit *early
    uint64_t early_seen
    int nregs
    int regids[MAXREG]
    void *vals[MAXREG]
    uint64_t cur[MAXREG]
    uint64_t prev[MAXREG]
    int have_prev
    uint64_t last_pc
    # records
    unsigned char *buf
    size_t len
    size_t cap
    size_t flush_at
    Mark ring[RING]
    int ring_head
    int ring_n
    uint64_t total
    uint64_t flushed
    int host_pending
    # output
    int fd
    char *out
    size_t out_len
    size_t out_cap
    char *carry
    size_t carry_len
    size_t carry_cap
    char names[MAXREG][16]
    int name_len[MAXREG]
    char pc_name[16]
    int pc_name_len
    int write_errno
    int oom
    int broken
    uint64_t accesses
    # 32-bit ARM: the instructions of the Thumb IT block being traced (Unicorn calls no
    # code hook for one whose condition fails; they still retire, one position each).
    int thumb_it
    int cpsr_id
    uint64_t it_addr[4]
    int it_n
    int it_i
    uint64_t it_end


cdef int _grow(void **ptr, size_t *cap, size_t need) noexcept nogil:
    """Make ``*ptr`` (a malloc'd buffer of ``*cap`` bytes) hold ``need`` bytes."""
    cdef size_t n = cap[0] if cap[0] else 4096
    cdef void *p
    if need <= cap[0]:
        return 0
    while n < need:
        n *= 2
    p = realloc(ptr[0], n)
    if p == NULL:
        return -1
    ptr[0] = p
    cap[0] = n
    return 0


cdef inline int _reserve(TraceState *s, size_t extra) noexcept nogil:
    if s.len + extra <= s.cap:
        return 0
    if _grow(<void **>&s.buf, &s.cap, s.len + extra) != 0:
        s.oom = 1
        return -1
    return 0


cdef inline unsigned char *_put_u64(unsigned char *p, uint64_t v) noexcept nogil:
    memcpy(p, &v, 8)
    return p + 8


cdef inline uint64_t _get_u64(const unsigned char *p) noexcept nogil:
    cdef uint64_t v
    memcpy(&v, p, 8)
    return v


cdef inline uint32_t _get_u32(const unsigned char *p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v


cdef inline int _popcount(uint64_t v) noexcept nogil:
    cdef int n = 0
    while v:
        v &= v - 1
        n += 1
    return n


cdef const char *HEX = b"0123456789abcdef"


cdef inline size_t _fmt_hex(char *p, uint64_t v) noexcept nogil:
    """``v`` as lowercase hex without leading zeros (at least one digit); returns length."""
    cdef char tmp[16]
    cdef int n = 0
    cdef int i
    while True:
        tmp[n] = HEX[v & 15]
        n += 1
        v >>= 4
        if v == 0:
            break
    for i in range(n):
        p[i] = tmp[n - 1 - i]
    return n


cdef int _write_out(TraceState *s) noexcept nogil:
    cdef size_t done = 0
    cdef ssize_t w
    while done < s.out_len and s.write_errno == 0:
        w = posix_write(s.fd, s.out + done, s.out_len - done)
        if w < 0:
            if errno == 4:  # EINTR
                continue
            s.write_errno = errno if errno else 5
            break
        done += <size_t>w
    s.out_len = 0
    return 0 if s.write_errno == 0 else -1


cdef int _out_reserve(TraceState *s, size_t extra) noexcept nogil:
    if s.out_len + extra <= s.out_cap:
        return 0
    if s.out_len > 0 and s.out_len + extra > (1 << 20):
        _write_out(s)
    if s.out_len + extra <= s.out_cap:
        return 0
    if _grow(<void **>&s.out, &s.out_cap, s.out_len + extra) != 0:
        s.oom = 1
        return -1
    return 0


cdef int _carry_access(TraceState *s, unsigned char tag, uint64_t addr, uint32_t size,
                       const unsigned char *data) noexcept nogil:
    """Format ``,mr=0xADDR:HEX`` (or mw) into the carry: the next line's memory part."""
    cdef size_t need = 8 + 18 + 2 * <size_t>size
    cdef char *p
    cdef uint32_t i
    if s.carry_len + need > s.carry_cap:
        if _grow(<void **>&s.carry, &s.carry_cap, s.carry_len + need) != 0:
            s.oom = 1
            return -1
    p = s.carry + s.carry_len
    p[0] = b','
    p[1] = b'm'
    p[2] = b'r' if tag == b'R' else b'w'
    p[3] = b'='
    p[4] = b'0'
    p[5] = b'x'
    p += 6
    p += _fmt_hex(p, addr)
    p[0] = b':'
    p += 1
    for i in range(size):
        p[0] = HEX[data[i] >> 4]
        p[1] = HEX[data[i] & 15]
        p += 2
    s.carry_len = <size_t>(p - s.carry)
    return 0


cdef int _flush(TraceState *s, int keep) noexcept nogil:
    """Format and write every line but the newest ``keep`` (which stay in the buffer).

    A Tenet line describes the state before its instruction: the registers that changed
    since the previous line (all of them on the first line), then pc, then the memory the
    *previous* instruction read and wrote (Tenet's tracers report an instruction's effects
    at the next instruction). So each record's accesses go to the next line (the carry).
    """
    cdef size_t end
    cdef size_t p = 0
    cdef unsigned char tag
    cdef uint64_t pc
    cdef uint64_t mask
    cdef uint64_t value
    cdef uint32_t size
    cdef int i
    cdef int k
    cdef char *o
    cdef int lines = 0
    # INVARIANT: buf[0:len) holds whole records written by the hooks below (an 'L' record
    # is LINE_HDR + 8 * popcount(mask) bytes, an access ACC_HDR + size), and every ring
    # mark of an unformatted line points at its 'L' record, so the walk stays in bounds.
    if keep > s.ring_n:
        keep = s.ring_n
    if keep > <int>(s.total - s.flushed):
        keep = <int>(s.total - s.flushed)
    end = s.ring[(s.ring_head - keep + RING) % RING].off if keep > 0 else s.len
    while p < end:
        tag = s.buf[p]
        if tag == b'L':
            pc = _get_u64(s.buf + p + 1)
            mask = _get_u64(s.buf + p + 9)
            if _out_reserve(s, <size_t>s.nregs * 40 + 40 + s.carry_len) != 0:
                return -1
            o = s.out + s.out_len
            p += LINE_HDR
            for i in range(s.nregs):
                if mask & (1ULL << i):
                    value = _get_u64(s.buf + p)
                    p += 8
                    memcpy(o, s.names[i], s.name_len[i])
                    o += s.name_len[i]
                    o[0] = b'='
                    o[1] = b'0'
                    o[2] = b'x'
                    o += 3
                    o += _fmt_hex(o, value)
                    o[0] = b','
                    o += 1
            memcpy(o, s.pc_name, s.pc_name_len)
            o += s.pc_name_len
            o[0] = b'='
            o[1] = b'0'
            o[2] = b'x'
            o += 3
            o += _fmt_hex(o, pc)
            if s.carry_len:
                memcpy(o, s.carry, s.carry_len)
                o += s.carry_len
            o[0] = b'\n'
            o += 1
            s.out_len = <size_t>(o - s.out)
            s.carry_len = 0
            lines += 1
        else:
            size = _get_u32(s.buf + p + 1)
            if tag == b'R' or tag == b'W':
                if _carry_access(s, tag, _get_u64(s.buf + p + 5), size,
                                 s.buf + p + ACC_HDR) != 0:
                    return -1
            p += ACC_HDR + size
    # Drop what was formatted; the kept lines move to the front.
    if end < s.len:
        memmove(s.buf, s.buf + end, s.len - end)
    s.len -= end
    for k in range(RING):
        if s.ring[k].off >= end:
            s.ring[k].off -= end
    s.flushed += <uint64_t>lines
    return 0


cdef int _truncate(TraceState *s, uint64_t k) noexcept nogil:
    """Take back the newest ``k`` lines (they did not retire). -1 if they are gone."""
    cdef int idx
    cdef int last
    if k == 0:
        return 0
    if k > s.total - s.flushed or (k > <uint64_t>s.ring_n):
        return -1
    if k == <uint64_t>s.ring_n and k != s.total:
        return -1  # the state of the line before them is no longer known
    idx = (s.ring_head - <int>k + RING) % RING
    s.len = s.ring[idx].off
    s.ring_head = idx
    s.ring_n -= <int>k
    s.total -= k
    s.host_pending = 0
    if s.total == 0:
        s.have_prev = 0
        s.carry_len = 0
    else:
        last = (s.ring_head - 1 + RING) % RING
        memcpy(s.prev, s.ring[last].regs, sizeof(uint64_t) * MAXREG)
        s.last_pc = s.ring[last].pc
    return 0


cdef void _resolve_host_uc(TraceState *s, uc_engine *uc) noexcept nogil:
    """Fill in the bytes of the host writes (a system call's results) made during the
    last instruction, now that they are in memory."""
    cdef int last = (s.ring_head - 1 + RING) % RING
    cdef size_t p
    cdef uint64_t mask
    cdef uint32_t size
    s.host_pending = 0
    if s.ring_n == 0 or s.total == s.flushed:
        return
    p = s.ring[last].off
    mask = _get_u64(s.buf + p + 9)
    p += LINE_HDR + 8 * <size_t>_popcount(mask)
    while p < s.len:
        size = _get_u32(s.buf + p + 1)
        if s.buf[p] == b'H':
            if s.mem_read(uc, _get_u64(s.buf + p + 5), s.buf + p + ACC_HDR, size) == UC_ERR_OK:
                s.buf[p] = b'W'
            else:
                s.buf[p] = b'X'
        p += ACC_HDR + size


cdef void _trace_code_cb(uc_engine *uc, uint64_t address, uint32_t size,
                         void *user_data) noexcept nogil:
    # INVARIANT: user_data is the TraceState inside a TraceCore, alive as for BlockCore.
    cdef TraceState *s = <TraceState *>user_data
    if s.oom or s.broken:
        return
    if s.early.count != s.early_seen:
        s.early_seen = s.early.count
        # QEMU abandoned the previous block at early.address and restarts there: an
        # instruction whose hook already ran at that address did not retire.
        if s.total > s.flushed and s.last_pc == s.early.address:
            if _truncate(s, 1) != 0:
                s.broken = 1
                return
    if s.host_pending:
        _resolve_host_uc(s, uc)
    if s.reg_read(uc, s.regids, s.vals, s.nregs) != UC_ERR_OK:
        s.broken = 1
        return
    if s.thumb_it and s.it_i < s.it_n:
        _it_skipped(s, address)
    _trace_line(s, address)
    if s.thumb_it and not s.oom:
        _it_block(s, uc, address)


cdef void _it_skipped(TraceState *s, uint64_t address) noexcept nogil:
    """Lines for the instructions of the current IT block that Unicorn ran without a code
    hook call (condition failed) before ``address``: their registers are unchanged."""
    cdef int j = s.it_i
    while j < s.it_n and s.it_addr[j] != address:
        j += 1
    if j < s.it_n:
        while s.it_i < j:
            _trace_line(s, s.it_addr[s.it_i])
            s.it_i += 1
        s.it_i += 1  # (this one runs)
    elif address == s.it_end:
        while s.it_i < s.it_n:
            _trace_line(s, s.it_addr[s.it_i])
            s.it_i += 1
    else:
        s.it_n = 0  # the block was left otherwise (an exception, a signal)


cdef void _it_block(TraceState *s, uc_engine *uc, uint64_t address) noexcept nogil:
    """If the instruction at ``address`` is a Thumb IT instruction, note the addresses of
    the instructions it makes conditional."""
    cdef unsigned char code[18]
    cdef uint32_t hw
    cdef uint64_t cpsr = 0
    cdef void *slot = &cpsr
    cdef int count, k, off
    if s.mem_read(uc, address, code, 2) != UC_ERR_OK:
        return
    hw = code[0] | (<uint32_t>code[1] << 8)
    if (hw & 0xFF00) != 0xBF00 or (hw & 0xF) == 0:
        return
    if s.reg_read(uc, &s.cpsr_id, &slot, 1) != UC_ERR_OK:
        return
    if not cpsr & 0x20:
        return
    count = 4 if hw & 1 else 3 if hw & 2 else 2 if hw & 4 else 1
    if s.mem_read(uc, address + 2, code, 16) != UC_ERR_OK:
        return
    off = 0
    for k in range(count):
        s.it_addr[k] = address + 2 + <uint64_t>off
        hw = code[off] | (<uint32_t>code[off + 1] << 8)
        off += 4 if (hw >> 11) >= 0x1D else 2
    s.it_n = count
    s.it_i = 0
    s.it_end = address + 2 + <uint64_t>off


cdef void _trace_line(TraceState *s, uint64_t address) noexcept nogil:
    """The line of the instruction at ``address`` (registers in ``s.cur``)."""
    cdef uint64_t mask = 0
    cdef int i
    cdef unsigned char *p
    cdef Mark *m
    for i in range(s.nregs):
        if not s.have_prev or s.cur[i] != s.prev[i]:
            mask |= 1ULL << i
    if s.len > s.flush_at and s.total - s.flushed > RING:
        if _flush(s, RING) != 0:
            return
    if _reserve(s, LINE_HDR + 8 * <size_t>s.nregs) != 0:
        return
    # INVARIANT: _reserve made room for the largest record (every register changed).
    m = &s.ring[s.ring_head]
    m.off = s.len
    m.pc = address
    memcpy(m.regs, s.cur, sizeof(uint64_t) * MAXREG)
    s.ring_head = (s.ring_head + 1) % RING
    if s.ring_n < RING:
        s.ring_n += 1
    p = s.buf + s.len
    p[0] = b'L'
    p = _put_u64(p + 1, address)
    p = _put_u64(p, mask)
    for i in range(s.nregs):
        if mask & (1ULL << i):
            p = _put_u64(p, s.cur[i])
    s.len = <size_t>(p - s.buf)
    memcpy(s.prev, s.cur, sizeof(uint64_t) * MAXREG)
    s.have_prev = 1
    s.last_pc = address
    s.total += 1


cdef void _append_access(TraceState *s, uc_engine *uc, unsigned char tag, uint64_t address,
                         uint32_t size, int64_t value) noexcept nogil:
    cdef unsigned char *p
    cdef uint64_t v = <uint64_t>value
    if s.total == s.flushed or s.oom or s.broken:
        return  # no current instruction (never while recording; see attach)
    if _reserve(s, ACC_HDR + size) != 0:
        return
    # INVARIANT: room for the entry was reserved; len moves only once it is complete.
    p = s.buf + s.len
    p[0] = tag
    memcpy(p + 1, &size, 4)
    _put_u64(p + 5, address)
    if tag == b'R':
        # INVARIANT: memory hooks run before the access, so this is what the load reads.
        if s.mem_read(uc, address, p + ACC_HDR, size) != UC_ERR_OK:
            return  # the access faults; the instruction does not retire
    elif tag == b'W':
        if size > 8:
            return  # never: Unicorn reports stores in pieces of at most 8 bytes
        # INVARIANT: both guest architectures are little-endian.
        memcpy(p + ACC_HDR, &v, size)
    s.len += ACC_HDR + size
    s.accesses += 1


cdef void _trace_mem_cb(uc_engine *uc, int type, uint64_t address, int size, int64_t value,
                        void *user_data) noexcept nogil:
    cdef TraceState *s = <TraceState *>user_data
    if size <= 0:
        return
    _append_access(s, uc, b'W' if type == UC_MEM_WRITE else b'R', address, <uint32_t>size,
                   value)


@cython.no_gc_clear  # the hooks' user data lives in this object until Unicorn drops them
cdef class TraceCore:
    """An instruction trace in Tenet's text format, written to file descriptor ``fd``.

    ``regids``/``names``: the Unicorn ids and trace names of the registers to follow (all
    64-bit, at most 40); ``pc_name``: the name pc gets on every line. ``core`` is the
    machine's ``RunCore`` (kept referenced). See the module docstring.
    """

    cdef TraceState s
    cdef UcApi api
    cdef uc_engine *uc
    cdef uc_hook hooks[3]
    cdef bint _attached
    cdef bint finished
    cdef object _uc
    cdef object _core

    def __cinit__(self, object uc not None, object core not None, int fd, list regids not None,
                  list names not None, str pc_name not None, size_t flush_at=8 << 20):
        cdef int i
        if len(regids) != len(names) or not 0 < len(regids) <= MAXREG:
            raise ValueError(f"between 1 and {MAXREG} registers, each with a name")
        self._uc = uc
        self._core = core
        self.uc = <uc_engine *>_uc_handle(uc)
        _ucapi_fill(&self.api)
        self.s.mem_read = <syx_probe_mem_read_t>_uc_function("uc_mem_read")
        self.s.reg_read = <syx_probe_reg_read_t>_uc_function("uc_reg_read_batch")
        self.s.early = <EarlyExit *><size_t>core.early_exit_address()
        self.s.fd = fd
        self.s.flush_at = flush_at
        self.s.nregs = len(regids)
        for i in range(self.s.nregs):
            self.s.regids[i] = regids[i]
            self.s.vals[i] = &self.s.cur[i]
            raw = names[i].encode()
            if not 0 < len(raw) < 16:
                raise ValueError(f"bad register name {names[i]!r}")
            memcpy(self.s.names[i], <char *>raw, len(raw))
            self.s.name_len[i] = len(raw)
        raw = pc_name.encode()
        if not 0 < len(raw) < 16:
            raise ValueError(f"bad pc name {pc_name!r}")
        memcpy(self.s.pc_name, <char *>raw, len(raw))
        self.s.pc_name_len = len(raw)

    def __dealloc__(self):
        free(self.s.buf)
        free(self.s.out)
        free(self.s.carry)

    def _flush_translations(self):
        # Code hooks reach only blocks translated after them (a block translated while our
        # hook is the only code hook even calls it directly, see BlockCore), and memory
        # hooks only slow-path accesses: drop the translation cache and the softmmu TLB,
        # both ways, so that after detaching no block calls the hooks or their helpers.
        self.api.ctl(self.uc, SYX_CTL_W(UC_CTL_TB_FLUSH, 0))
        self.api.ctl(self.uc, SYX_CTL_W(UC_CTL_TLB_FLUSH, 0))

    def attach(self):
        if self._attached or self.finished:
            return
        self.s.early_seen = self.s.early.count
        cdef uc_err err
        cdef int i
        cdef int types[3]
        cdef void *cbs[3]
        types[0] = UC_HOOK_CODE
        types[1] = UC_HOOK_MEM_READ
        types[2] = UC_HOOK_MEM_WRITE
        cbs[0] = <void *>_trace_code_cb
        cbs[1] = <void *>_trace_mem_cb
        cbs[2] = <void *>_trace_mem_cb
        for i in range(3):
            err = self.api.hook_add(self.uc, &self.hooks[i], types[i], cbs[i], &self.s, 1, 0)
            if err != UC_ERR_OK:
                while i > 0:
                    i -= 1
                    self.api.hook_del(self.uc, self.hooks[i])
                raise RuntimeError(f"uc_hook_add(trace) failed: {err}")
        self._attached = True
        self._flush_translations()

    def detach(self):
        """Delete the hooks, write out every line and free the buffers. The object must
        stay alive until the next emulation returns (the machine keeps it)."""
        cdef int i
        if self._attached:
            for i in range(3):
                self.api.hook_del(self.uc, self.hooks[i])
            self._attached = False
            self._flush_translations()
        if not self.finished:
            self.finished = True
            if not self.s.oom:
                _flush(&self.s, 0)
            if self.s.out_len and not self.s.oom:
                _write_out(&self.s)
            free(self.s.buf)
            free(self.s.out)
            free(self.s.carry)
            self.s.buf = NULL
            self.s.out = NULL
            self.s.carry = NULL
            self.s.len = self.s.cap = self.s.out_len = self.s.out_cap = 0
            self.s.carry_len = self.s.carry_cap = 0

    def settle(self, uint64_t lines):
        """The machine stopped with exactly ``lines`` instructions retired since the trace
        began: take back the lines of instructions that did not retire. Returns False when
        the trace cannot match (fewer lines than instructions, or too many to take back)."""
        if self.finished:
            return True
        self.s.early_seen = self.s.early.count
        if self.s.total > lines:
            if _truncate(&self.s, self.s.total - lines) != 0:
                self.s.broken = 1
        elif self.s.total < lines:
            self.s.broken = 1
        return not self.s.broken

    def host_write(self, uint64_t address, uint32_t size):
        """The host is about to write guest memory (a system call's result, a debugger
        write): record it with the current instruction, bytes read back before the next."""
        cdef unsigned char *p
        if not self._attached or self.s.total == self.s.flushed or self.s.oom or size == 0:
            return
        if _reserve(&self.s, ACC_HDR + size) != 0:
            return
        p = self.s.buf + self.s.len
        p[0] = b'H'
        memcpy(p + 1, &size, 4)
        _put_u64(p + 5, address)
        self.s.len += ACC_HDR + size
        self.s.host_pending = 1

    def mark_broken(self):
        self.s.broken = 1

    def track_it_blocks(self, int cpsr_id):
        """32-bit ARM: give the instructions of Thumb IT blocks whose condition fails
        their lines too (Unicorn calls no code hook for them)."""
        self.s.thumb_it = 1
        self.s.cpsr_id = cpsr_id

    @property
    def lines(self):
        """Lines recorded (written or still buffered)."""
        return self.s.total

    @property
    def accesses(self):
        return self.s.accesses

    @property
    def error(self):
        """None, or why the trace is incomplete: "memory", "inconsistent", or an errno."""
        if self.s.oom:
            return "memory"
        if self.s.write_errno:
            return self.s.write_errno
        if self.s.broken:
            return "inconsistent"
        return None
