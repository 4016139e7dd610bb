# cython: language_level=3, embedsignature=True, boundscheck=False, wraparound=False, cdivision=True
"""The machine's hot path, in C: retired-instruction counting and breakpoints.

Counting: one C ``UC_HOOK_BLOCK`` callback adds the instruction count of each executed
translation block to ``total``. Block counts are cached in an open-addressing table keyed by
(start, byte size); only a block never seen before calls into Python (``resolver``, which
disassembles it once). At a stop inside a block the machine subtracts the instructions of the
current block that did not retire (see ``Machine._position_at_stop``).

Limits and interrupts: Unicorn checks for a stop request right after a block hook returns,
before the block's first instruction. So ``set_limit(n)`` makes the block hook stop *before*
a block that would take ``total`` past ``n`` (without counting it), and ``interrupt()`` only
raises a flag that the next block hook turns into such a stop. Either way the position is
exact at a block boundary and no instruction of the refused block ran. The machine then runs
the remaining (< one block) instructions with Unicorn's exact ``count=``, which costs a code
hook per instruction, but only for that short stretch. Unicorn does not retranslate cached
blocks when ``count=`` is switched on, so the machine first drops the refused block from the
translation cache; the counted stretch lies entirely inside that block.

Breakpoints: one C ``UC_HOOK_CODE`` per breakpoint address, bounded to that address, kept for
the life of the breakpoint (Unicorn frees deleted hooks only when ``emu_start`` returns, so
hooks are never added and deleted per step). ``skip_once(addr)`` lets a resume step off a
breakpoint at the current pc without removing it.

No Python runs per instruction or per block, except the once-per-new-block resolver.
"""

from cpython.ref cimport PyObject
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memset

from syxdbg.includes.ucapi cimport UcApi
from syxdbg.includes.unicorn cimport *
from syxdbg.machine._shared cimport EarlyExit

include "../includes/ucapi.pxi"


cdef extern from "Python.h":
    object _PyLong_FromByteArray(const unsigned char *data, size_t n, int little_endian,
                                 int is_signed)

cdef uint64_t EMPTY = 0xFFFFFFFFFFFFFFFFULL

cdef extern from *:
    """
    typedef __typeof__(&uc_reg_read) syx_reg_read_t;
    typedef __typeof__(&uc_reg_write) syx_reg_write_t;
    typedef __typeof__(&uc_emu_start) syx_emu_start_t;
    """
    ctypedef uc_err (*syx_reg_read_t)(uc_engine *uc, int regid, void *value) nogil
    ctypedef uc_err (*syx_reg_write_t)(uc_engine *uc, int regid, const void *value) nogil
    ctypedef uc_err (*syx_emu_start_t)(uc_engine *uc, uint64_t begin, uint64_t until,
                                       uint64_t timeout, size_t count) nogil

#: Step hooks kept installed (see RunCore.arm_step): enough for the loops a user steps
#: through, few enough that the code hook list Unicorn walks stays short.
DEF STEP_HOOKS_MAX = 32


ctypedef void (*block_listener_t)(void *ctx, uint64_t address, uint32_t size) noexcept nogil


ctypedef struct CoreState:
    uc_engine *uc
    UcApi api
    uint64_t total
    uint64_t cur_start
    uint32_t cur_size
    uint32_t cur_n
    uint64_t cur_target
    int in_block
    uint64_t limit
    int limit_active
    int limit_hit
    uint64_t refused_start
    uint32_t refused_size
    int bp_hit
    uint64_t bp_addr
    int interrupted
    int interrupt_req
    int error
    uint64_t skip_addr
    int skip_pending
    uint64_t step_addr
    int step_active
    EarlyExit early
    # block table
    uint64_t *keys
    uint32_t *sizes
    uint32_t *counts
    uint64_t *targets
    size_t cap
    size_t used
    PyObject *owner
    # Told of every block counted (the timeline's interval code index, ``_probes``).
    block_listener_t listener
    void *listener_ctx


cdef inline size_t _slot(uint64_t key, size_t cap) noexcept nogil:
    cdef uint64_t h = key * 0x9E3779B97F4A7C15ULL
    return <size_t>((h ^ (h >> 29)) & (cap - 1))


cdef int _table_alloc(CoreState *s, size_t cap) noexcept nogil:
    cdef size_t i
    s.cap = cap
    s.used = 0
    s.keys = <uint64_t *>calloc(cap, sizeof(uint64_t))
    s.sizes = <uint32_t *>calloc(cap, sizeof(uint32_t))
    s.counts = <uint32_t *>calloc(cap, sizeof(uint32_t))
    s.targets = <uint64_t *>calloc(cap, sizeof(uint64_t))
    if s.keys == NULL or s.sizes == NULL or s.counts == NULL or s.targets == NULL:
        return -1
    for i in range(cap):
        s.keys[i] = EMPTY
    return 0


cdef void _table_free(CoreState *s) noexcept nogil:
    free(s.keys)
    free(s.sizes)
    free(s.counts)
    free(s.targets)


cdef int _table_insert(CoreState *s, uint64_t key, uint32_t size, uint32_t n,
                       uint64_t target) noexcept nogil:
    cdef size_t i
    cdef CoreState old
    cdef size_t j
    if (s.used + 1) * 2 > s.cap:
        old = s[0]
        if _table_alloc(s, old.cap * 2) != 0:
            return -1
        for j in range(old.cap):
            if old.keys[j] != EMPTY:
                _table_insert(s, old.keys[j], old.sizes[j], old.counts[j], old.targets[j])
        _table_free(&old)
    i = _slot(key, s.cap)
    while s.keys[i] != EMPTY and s.keys[i] != key:
        i = (i + 1) & (s.cap - 1)
    if s.keys[i] == EMPTY:
        s.used += 1
    s.keys[i] = key
    s.sizes[i] = size
    s.counts[i] = n
    s.targets[i] = target
    return 0


cdef uint32_t _resolve(CoreState *s, uint64_t address, uint32_t size,
                       uint64_t *target) noexcept with gil:
    cdef RunCore core = <RunCore>s.owner
    try:
        n, t = core.resolver(address, size)
        if n <= 0:
            raise RuntimeError(f"translation block at {address:#x} has no instructions")
    except BaseException as exc:  # kept and re-raised by the machine after emu_start
        core.pending = exc
        return 0
    target[0] = <uint64_t>t
    if _table_insert(s, address, size, <uint32_t>n, <uint64_t>t) != 0:
        core.pending = MemoryError("block table allocation failed")
        return 0
    return <uint32_t>n


cdef uint32_t _retired_before(CoreState *s, uint64_t address) noexcept with gil:
    cdef RunCore core = <RunCore>s.owner
    try:
        return <uint32_t>core.partial(s.cur_start, s.cur_size, address)
    except BaseException as exc:
        core.pending = exc
        return s.cur_n


cdef void _left_early(CoreState *s, uint64_t address, uint32_t size,
                     uint32_t n) noexcept nogil:
    """Correct the count when QEMU left the previous block part-way without a stop.

    A store over code of the running block (self-modifying code) makes QEMU abandon the
    block before that store and re-execute the store alone, as a one-instruction block; other
    early exits resume at the next instruction. Either way the new block starts inside the
    previous block's range and only the instructions before it retired. Legitimately, a block
    inside that range starts only at the previous block's own start (a loop) or direct
    branch target, and then it is the normal translation, not a single instruction.

    A one-instruction block that ends where the previous block ends is its last instruction
    run again (an x86 ``rep`` iteration): every instruction before it retired, no
    correction, and no call into Python to find that out (busybox sha256sum entered
    this case once per 64-byte block: 312,000 GIL round trips for 20 MB).
    """
    cdef uint32_t retired
    if address != s.cur_start and address != s.cur_target:
        s.total -= s.cur_n - _retired_before(s, address)
        s.early.count += 1
        s.early.address = address
    elif n == 1 and s.cur_n > 1 and address + size != s.cur_start + s.cur_size:
        retired = _retired_before(s, address)
        if s.cur_n - retired > 1:
            s.total -= s.cur_n - retired
            s.early.count += 1
            s.early.address = address
    s.in_block = 0


cdef void _block_cb(uc_engine *uc, uint64_t address, uint32_t size,
                    void *user_data) noexcept nogil:
    cdef CoreState *s = <CoreState *>user_data
    cdef size_t i = _slot(address, s.cap)
    cdef uint32_t n = 0
    cdef uint64_t target = 0
    while s.keys[i] != EMPTY:
        if s.keys[i] == address:
            if s.sizes[i] == size:
                n = s.counts[i]
                target = s.targets[i]
            break
        i = (i + 1) & (s.cap - 1)
    if n == 0:
        n = _resolve(s, address, size, &target)
        if n == 0:
            s.error = 1
            s.api.emu_stop(uc)
            n = 1
    if s.in_block and s.cur_start <= address < s.cur_start + s.cur_size:
        _left_early(s, address, size, n)
    if s.interrupt_req:
        s.interrupt_req = 0
        s.interrupted = 1
        s.in_block = 0
        s.api.emu_stop(uc)
        return
    if s.limit_active and s.total + n > s.limit:
        s.limit_hit = 1
        s.refused_start = address
        s.refused_size = size
        s.in_block = 0
        s.api.emu_stop(uc)
        return
    s.total += n
    s.cur_start = address
    s.cur_size = size
    s.cur_n = n
    s.cur_target = target
    s.in_block = 1
    if s.listener != NULL:
        s.listener(s.listener_ctx, address, size)


cdef void _bp_cb(uc_engine *uc, uint64_t address, uint32_t size,
                 void *user_data) noexcept nogil:
    cdef CoreState *s = <CoreState *>user_data
    if s.skip_pending:
        s.skip_pending = 0
        if address == s.skip_addr:
            return
    if not s.bp_hit:
        s.bp_hit = 1
        s.bp_addr = address
    s.api.emu_stop(uc)


cdef void _step_cb(uc_engine *uc, uint64_t address, uint32_t size,
                   void *user_data) noexcept nogil:
    """A step hook stops only at the current run's step target (it stays installed)."""
    cdef CoreState *s = <CoreState *>user_data
    if not s.step_active or address != s.step_addr:
        return
    if not s.bp_hit:
        s.bp_hit = 1
        s.bp_addr = address
    s.api.emu_stop(uc)


cdef inline void _remove_cache(CoreState *s, uint64_t address) noexcept:
    """Drop the translated blocks holding ``address`` (Unicorn refuses an end of 2**64;
    the last byte shares its page with the byte before it)."""
    cdef uint64_t start = address if address < EMPTY else address - 1
    s.api.ctl(s.uc, SYX_CTL_W(UC_CTL_TB_REMOVE_CACHE, 2), start, start + 1)


# -- time counters ------------------------------------------------------------------------
# The guest's cycle counters (x86 RDTSC/RDTSCP, aarch64 CNTVCT_EL0/CNTPCT_EL0 and their
# self-synchronised forms) would read the host's clock: nondeterministic, so re-execution
# and replay would diverge. They are answered from the instruction position instead. x86
# hooks fire only on those instructions; aarch64 has one hook for every MRS (TLS reads are
# frequent), so its C callback filters and calls Python only for the counter registers.

ctypedef struct Arm64CpReg:
    uint32_t crn
    uint32_t crm
    uint32_t op0
    uint32_t op1
    uint32_t op2
    uint64_t val


cdef int _counter_python(void *fn, int reg) noexcept with gil:
    try:
        (<object>fn)(reg)
    except BaseException:  # the machine's callback does not raise; never unwind into C
        return 0
    return 1


cdef int _x86_tsc_cb(uc_engine *uc, void *user_data) noexcept nogil:
    return _counter_python(user_data, 0)


cdef uint32_t _arm64_mrs_cb(uc_engine *uc, int reg, const Arm64CpReg *cp,
                            void *user_data) noexcept nogil:
    if cp.op0 != 3 or cp.op1 != 3 or cp.crn != 14 or cp.crm != 0:
        return 0
    if cp.op2 != 1 and cp.op2 != 2 and cp.op2 != 5 and cp.op2 != 6:
        return 0  # CNTFRQ_EL0 and the other timer registers: constants, left to Unicorn
    return <uint32_t>_counter_python(user_data, reg)


cdef class CounterHooks:
    """Deterministic cycle counters: ``callback(reg)`` sets the value (``reg``: the aarch64
    destination register's unicorn id; 0 on x86, where it writes EDX:EAX (and ECX))."""

    cdef uc_engine *uc
    cdef UcApi api
    cdef object callback
    cdef list hooks

    def __cinit__(self, object uc not None, object callback not None, str arch,
                  object instructions):
        self.uc = <uc_engine *>_uc_handle(uc)
        _ucapi_fill(&self.api)
        self.callback = callback
        self.hooks = []
        cdef uc_hook hh
        cdef uc_err err
        cdef void *cb = <void *>_x86_tsc_cb if arch == "x86_64" else <void *>_arm64_mrs_cb
        for ins in instructions:
            hh = 0
            err = self.api.hook_add(self.uc, &hh, UC_HOOK_INSN, cb, <void *>self.callback,
                                    1, 0, <int>ins)
            if err != UC_ERR_OK:
                raise RuntimeError(f"uc_hook_add(UC_HOOK_INSN {ins}) failed: {err}")
            self.hooks.append(hh)


cdef class RunCore:
    """C state of one machine's run loop. See the module docstring."""

    cdef CoreState s
    cdef uc_hook block_hook
    cdef dict _bp_hooks
    cdef dict _step_hooks      # address -> uc_hook, oldest first
    cdef syx_reg_read_t _reg_read
    cdef syx_reg_write_t _reg_write
    cdef syx_emu_start_t _emu_start
    cdef int _pc_id
    cdef public object resolver
    cdef public object partial
    cdef public object pending
    cdef object _uc

    def __cinit__(self, object uc not None, object resolver not None,
                  object partial not None, int pc_id=0):
        """``resolver(start, size) -> (instruction count, direct branch target or 0)`` is
        called once per new block; ``partial(start, size, address)`` gives how many of a
        block's instructions lie before ``address``. ``pc_id``: Unicorn's id of the program
        counter (for :meth:`read_pc`)."""
        self._uc = uc
        self.resolver = resolver
        self.partial = partial
        self.pending = None
        self._bp_hooks = {}
        self._step_hooks = {}
        self._pc_id = pc_id
        import ctypes
        from unicorn.unicorn_py3.unicorn import uclib
        self._reg_read = <syx_reg_read_t><size_t>ctypes.cast(uclib.uc_reg_read,
                                                             ctypes.c_void_p).value
        self._reg_write = <syx_reg_write_t><size_t>ctypes.cast(uclib.uc_reg_write,
                                                               ctypes.c_void_p).value
        self._emu_start = <syx_emu_start_t><size_t>ctypes.cast(uclib.uc_emu_start,
                                                               ctypes.c_void_p).value
        self.s.uc = <uc_engine *>_uc_handle(uc)
        _ucapi_fill(&self.s.api)
        if _table_alloc(&self.s, 4096) != 0:
            _table_free(&self.s)
            raise MemoryError()
        self.s.owner = <PyObject *>self
        cdef uc_err err = self.s.api.hook_add(self.s.uc, &self.block_hook, UC_HOOK_BLOCK,
                                              <void *>_block_cb, &self.s, 1, 0)
        if err != UC_ERR_OK:
            raise RuntimeError(f"uc_hook_add(UC_HOOK_BLOCK) failed: {err}")

    def __dealloc__(self):
        _table_free(&self.s)

    # -- counting ---------------------------------------------------------------------------
    @property
    def total(self):
        """Instructions counted so far (whole blocks, including the current one)."""
        return self.s.total

    @total.setter
    def total(self, uint64_t value):
        self.s.total = value

    @property
    def current_block(self):
        """(start, byte size, instruction count) of the last block entered, or None."""
        if not self.s.in_block:
            return None
        return (self.s.cur_start, self.s.cur_size, self.s.cur_n)

    def forget_block(self):
        """Mark that no block is current (after the machine settled a stop's position)."""
        self.s.in_block = 0

    def invalidate_blocks(self):
        """Forget every cached block count (after code was rewritten)."""
        cdef size_t i
        for i in range(self.s.cap):
            self.s.keys[i] = EMPTY
        self.s.used = 0

    @property
    def cached_blocks(self):
        return self.s.used

    def set_block_listener(self, size_t function, size_t context):
        """Call ``function(context, start, size)`` (a C ``block_listener_t``) for every block
        counted, or nothing when ``function`` is 0. For ``_probes.IndexCore``: one call from
        this hook costs far less than a second block hook (Unicorn then walks its hook list
        for every block)."""
        self.s.listener = <block_listener_t>function
        self.s.listener_ctx = <void *>context

    def early_exit_address(self):
        """Address of this core's :c:type:`EarlyExit` record (for the recorders in
        ``_probes``, which must keep this core alive while they read it)."""
        return <size_t>&self.s.early

    # -- limits and stops -------------------------------------------------------------------
    def set_limit(self, object limit):
        """Stop before any block that would take ``total`` past ``limit`` (None: no limit)."""
        if limit is None:
            self.s.limit_active = 0
        else:
            self.s.limit = limit
            self.s.limit_active = 1

    def reset_stop(self):
        self.s.limit_hit = 0
        self.s.bp_hit = 0
        self.s.bp_addr = 0
        self.s.interrupted = 0
        self.s.interrupt_req = 0
        self.s.error = 0
        self.s.skip_pending = 0

    @property
    def refused_block(self):
        """(start, byte size) of the block the last limit stop refused to enter."""
        return (self.s.refused_start, self.s.refused_size)

    @property
    def stop_flags(self):
        """(limit_hit, breakpoint address or None, interrupted, resolver_error)."""
        return (bool(self.s.limit_hit), self.s.bp_addr if self.s.bp_hit else None,
                bool(self.s.interrupted), bool(self.s.error))

    def skip_once(self, uint64_t address):
        """Ignore a breakpoint at ``address`` if it is the first one hit by the next run."""
        self.s.skip_addr = address
        self.s.skip_pending = 1

    def interrupt(self):
        """Stop the running emulation at the next block boundary. Safe from any thread.

        Only a flag is set; the block hook makes the stop, so the position stays exact.
        """
        self.s.interrupt_req = 1

    # -- breakpoints ------------------------------------------------------------------------
    def add_breakpoint(self, uint64_t address):
        """Install a C code hook bounded to ``address`` (idempotent)."""
        if address in self._bp_hooks:
            return
        cdef uc_hook hh = 0
        cdef uc_err err = self.s.api.hook_add(self.s.uc, &hh, UC_HOOK_CODE, <void *>_bp_cb,
                                              &self.s, address, address)
        if err != UC_ERR_OK:
            raise RuntimeError(f"uc_hook_add(UC_HOOK_CODE) failed: {err}")
        self._bp_hooks[address] = hh

    def remove_breakpoint(self, uint64_t address):
        hh = self._bp_hooks.pop(address, None)
        if hh is not None:
            self.s.api.hook_del(self.s.uc, <uc_hook>hh)

    def breakpoints(self):
        return sorted(self._bp_hooks)

    # -- single steps -------------------------------------------------------------------------
    def arm_step(self, uint64_t address):
        """Make the next run stop before the instruction at ``address`` (a step target).

        Its code hook stays installed afterwards (the newest STEP_HOOKS_MAX are kept) and
        stops only when it is the armed target, so stepping through code already stepped
        needs no retranslation: only a new hook drops the blocks holding its address."""
        cdef uc_hook hh = 0
        cdef uc_err err
        if address not in self._step_hooks:
            if len(self._step_hooks) >= STEP_HOOKS_MAX:
                old = next(iter(self._step_hooks))
                self.s.api.hook_del(self.s.uc, <uc_hook>self._step_hooks.pop(old))
                _remove_cache(&self.s, <uint64_t>old)
            err = self.s.api.hook_add(self.s.uc, &hh, UC_HOOK_CODE, <void *>_step_cb,
                                      &self.s, address, address)
            if err != UC_ERR_OK:
                raise RuntimeError(f"uc_hook_add(UC_HOOK_CODE) failed: {err}")
            self._step_hooks[address] = hh
            _remove_cache(&self.s, address)
        self.s.step_addr = address
        self.s.step_active = 1

    def disarm_step(self):
        self.s.step_active = 0

    def drop_step_hooks(self):
        """Remove every kept step hook (and their addresses' translated blocks)."""
        for address, hh in self._step_hooks.items():
            self.s.api.hook_del(self.s.uc, <uc_hook>hh)
            _remove_cache(&self.s, <uint64_t>address)
        self._step_hooks.clear()

    @property
    def step_hooks(self):
        return sorted(self._step_hooks)

    @property
    def step_hook_count(self):
        return len(self._step_hooks)

    # -- running ------------------------------------------------------------------------------
    def emu_start(self, uint64_t begin, uint64_t until):
        """``uc_emu_start(begin, until, 0, 0)`` without the binding's ctypes round trip; the
        GIL is released as ctypes does (Python hooks take it back). Returns the uc_err; the
        caller re-raises what the binding's Python hooks kept (``Uc._hook_exception``)."""
        cdef uc_err err
        with nogil:
            err = self._emu_start(self.s.uc, begin, until, 0, 0)
        return <int>err

    # -- registers ----------------------------------------------------------------------------
    cpdef uint64_t read_pc(self) except? 0xFFFFFFFFFFFFFFFF:
        """The program counter, read straight from libunicorn."""
        return self.reg_read(self._pc_id)

    cpdef uint64_t reg_read(self, int regid) except? 0xFFFFFFFFFFFFFFFF:
        """A register of at most 64 bits, read straight from libunicorn (no binding)."""
        cdef uint64_t value = 0
        cdef uc_err err = self._reg_read(self.s.uc, regid, &value)
        if err != UC_ERR_OK:
            raise RuntimeError(f"uc_reg_read({regid}) failed: {err}")
        return value

    cpdef int reg_write(self, int regid, uint64_t value):
        """Write a register of at most 64 bits straight to libunicorn (no binding: a thread
        switch writes a dozen, every system call its result). Returns the uc_err (0: done;
        the caller turns a refusal, such as an x86 selector without a descriptor, into its
        own error)."""
        return <int>self._reg_write(self.s.uc, regid, &value)

    def reg_read_many(self, tuple ids, tuple bits):
        """The registers of ``ids``, ``bits[i]`` bits wide (at most 512), as unsigned
        integers (little-endian bytes: an x87 register is its 64-bit mantissa then its
        exponent), in one call: a thread switch saves every register."""
        cdef Py_ssize_t i, n = len(ids)
        cdef uint64_t value
        cdef unsigned char buf[64]
        cdef size_t width
        cdef uc_err err
        cdef list out = [None] * n
        for i in range(n):
            width = <size_t>bits[i]
            if width > 512:
                raise ValueError(f"register {ids[i]} is wider than 512 bits")
            if width <= 64:
                value = 0
                err = self._reg_read(self.s.uc, <int>ids[i], &value)
                if width < 64:
                    value &= ((<uint64_t>1) << width) - 1
                if err == UC_ERR_OK:
                    out[i] = value
            else:
                memset(buf, 0, 64)
                err = self._reg_read(self.s.uc, <int>ids[i], buf)
                if err == UC_ERR_OK:
                    out[i] = _PyLong_FromByteArray(buf, (width + 7) // 8, 1, 0)
            if err != UC_ERR_OK:
                raise RuntimeError(f"uc_reg_read({ids[i]}) failed: {err}")
        return out


# --- Thumb IT state guard (32-bit ARM) ---------------------------------------------------
#
# Unicorn 2.1.4 calls cpu_restore_state() before its UC_HOOK_TLB_FILL and memory hooks; on
# AArch32 that sets env->condexec_bits to the IT state of the accessing instruction, and
# QEMU only ever clears those bits at the start of a block translated inside an IT block.
# A store inside an IT block that fills the TLB (the snapshot journal's first store to a
# page) or runs a memory hook (watchpoints, traces) therefore leaves a stale IT state, and
# the next block is translated as if it were conditional (a `beq.w` becomes UNDEFINED).
# This block hook, installed before the run core's, sees the IT state a block was looked up
# with; in Thumb state with a non-zero IT state it asks ``legit(address)`` (an IT
# instruction covers the address: a block boundary or a stop inside an IT block) and
# otherwise stops before the block (the run core never counted it): the run loop clears the
# IT bits and resumes at the same pc, and QEMU translates the block again.
#
# That stop is not enough when the stale state comes from a TLB fill: the block being looked
# up with it was translated as if inside an IT block, and Unicorn ignores stop requests
# from the hooks of such a block (it treats an IT block as one instruction), so the block
# ran anyway, uncounted and with its instructions made conditional on a stale condition
# (issue 17: a seek that pushed a checkpoint, hence flushed the TLB, between two runs went
# astray in glibc's _dl_aux_init and faulted 700 instructions later). So the guard also
# has a ``UC_HOOK_TLB_FILL`` callback, installed before the snapshot core's (the fill hooks
# run in order, until one fills the entry): it runs right after that cpu_restore_state()
# and clears the IT bits again. Inside a translated block QEMU keeps them zero (a block
# that starts inside an IT block clears them, the code tracks the IT state statically and
# stores it only where it leaves the block or raises an exception), so zero is the value
# the fill overwrote; a fill that fails raises its fault through cpu_loop_exit_restore(),
# which restores the faulting instruction's IT state again. In the default CPU TLB mode
# the hook is never called (and there is no restore before a fill).

DEF CPSR_T = 0x20
DEF CPSR_IT = 0x0600FC00

ctypedef struct ItState:
    uc_engine *uc
    UcApi api
    syx_reg_read_t reg_read
    syx_reg_write_t reg_write
    int cpsr_id
    int retry
    PyObject *legit


cdef int _it_legit(PyObject *fn, uint64_t address) noexcept with gil:
    try:
        return 1 if (<object>fn)(address) else 0
    except BaseException:
        return 1  # when in doubt, leave the state alone


cdef enum:
    UC_MEM_FETCH_TYPE = 18  # uc_mem_type's UC_MEM_FETCH


cdef bint _it_tlb_cb(void *uc, uint64_t vaddr, int type, uc_tlb_entry *result,
                    void *user_data) noexcept nogil:
    cdef ItState *s = <ItState *>user_data
    cdef uint64_t cpsr = 0
    cdef uint32_t value
    # Only after a data access's restore: a fill for an instruction fetch (translating the
    # next block) comes with no restore, and the IT bits then are the live state the next
    # block starts from (a fork's child, whose translations were all dropped, lost the IT
    # state of glibc's "it cc; bxcc lr" after execve and took the branch: issue 14).
    if type == UC_MEM_FETCH_TYPE or s.reg_read(s.uc, s.cpsr_id, &cpsr) != UC_ERR_OK:
        return False
    if (cpsr & CPSR_T) != 0 and (cpsr & CPSR_IT) != 0:
        value = <uint32_t>(cpsr & ~(<uint64_t>CPSR_IT))
        s.reg_write(s.uc, s.cpsr_id, &value)
    return False  # not filled: the next fill hook (the snapshot core's) fills it


cdef void _it_block_cb(uc_engine *uc, uint64_t address, uint32_t size,
                       void *user_data) noexcept nogil:
    cdef ItState *s = <ItState *>user_data
    cdef uint64_t cpsr = 0
    if s.reg_read(uc, s.cpsr_id, &cpsr) != UC_ERR_OK:
        return
    if (cpsr & CPSR_T) == 0 or (cpsr & CPSR_IT) == 0:
        return
    if _it_legit(s.legit, address):
        return
    # (Clearing the bits here would not last: the stop restores the state of the block's
    # first instruction. The run loop clears them once Unicorn has returned.)
    s.retry = 1
    s.api.emu_stop(uc)


cdef class ThumbItGuard:
    """See the comment above. Create it before the :class:`RunCore` (hooks run in order)."""

    cdef ItState s
    cdef uc_hook hook
    cdef uc_hook tlb_hook
    cdef object _legit
    cdef object _uc

    def __cinit__(self, object uc not None, object legit not None, int cpsr_id):
        self._uc = uc
        self._legit = legit
        import ctypes
        from unicorn.unicorn_py3.unicorn import uclib
        self.s.reg_read = <syx_reg_read_t><size_t>ctypes.cast(uclib.uc_reg_read,
                                                              ctypes.c_void_p).value
        self.s.reg_write = <syx_reg_write_t><size_t>ctypes.cast(uclib.uc_reg_write,
                                                                ctypes.c_void_p).value
        self.s.uc = <uc_engine *>_uc_handle(uc)
        _ucapi_fill(&self.s.api)
        self.s.cpsr_id = cpsr_id
        self.s.retry = 0
        self.s.legit = <PyObject *>legit
        cdef uc_err err = self.s.api.hook_add(self.s.uc, &self.hook, UC_HOOK_BLOCK,
                                              <void *>_it_block_cb, &self.s, 1, 0)
        if err != UC_ERR_OK:
            raise RuntimeError(f"uc_hook_add(UC_HOOK_BLOCK) failed: {err}")
        err = self.s.api.hook_add(self.s.uc, &self.tlb_hook, UC_HOOK_TLB_FILL,
                                  <void *>_it_tlb_cb, &self.s, 1, 0)
        if err != UC_ERR_OK:
            raise RuntimeError(f"uc_hook_add(UC_HOOK_TLB_FILL) failed: {err}")

    @property
    def retry(self):
        """True when the last run stopped to re-translate a block (clears the flag)."""
        cdef int r = self.s.retry
        self.s.retry = 0
        return bool(r)

# --- data watchpoints ----------------------------------------------------------------------
#
# One C ``UC_HOOK_MEM_READ``/``UC_HOOK_MEM_WRITE`` per watched range, bounded to the range
# widened by WATCH_MARGIN bytes on each side (Unicorn checks a hook's bounds against the start
# of an access only; an instruction's accesses span at most 64 bytes), records a hit when an
# access overlaps the range. Memory hooks run *before* the access, with pc synced to the
# accessing instruction and its registers not yet written back (QEMU keeps data aborts
# precise). Stopping from a memory hook is unreliable, so the hit only raises a flag; one
# extra C ``UC_HOOK_CODE`` over all addresses, present only while watchpoints exist, stops
# before the next instruction. That is the x86 (trap-after) semantics.
#
# For trap-before semantics (aarch64), ``capture`` makes the hooks also keep, per instruction,
# the pre-image of every store near a watched range and the CPU context at the hit; the
# machine then undoes the accessing instruction (pre-images back in reverse order, context
# restored) so pc is at that instruction and memory holds the old value.

cdef extern from *:
    """
    typedef __typeof__(&uc_mem_read) syx_mem_read_t;
    typedef __typeof__(&uc_context_save) syx_context_save_t;
    """
    ctypedef uc_err (*syx_mem_read_t)(uc_engine *uc, uint64_t address, void *data,
                                      uint64_t size) nogil
    ctypedef uc_err (*syx_context_save_t)(uc_engine *uc, void *context) nogil

cdef extern from "unicorn/unicorn.h" nogil:
    cdef enum:
        UC_MEM_READ
        UC_MEM_WRITE

cimport cython
from libc.stdint cimport int64_t

DEF WATCH_MARGIN = 64
DEF PRE_MAX = 256
DEF PRE_BYTES = 64

ctypedef struct PreImage:
    uint64_t addr
    uint32_t size
    unsigned char data[PRE_BYTES]

ctypedef struct WatchState:
    uc_engine *uc
    syx_emu_stop_t emu_stop
    syx_mem_read_t mem_read
    syx_context_save_t ctx_save
    void *ctx
    int capture
    uint64_t insn_seq
    int skip_first
    int hit
    int hit_kind
    uint64_t hit_addr
    uint64_t hit_access_addr
    uint32_t hit_size
    int hit_write
    int ctx_saved
    int pre_n
    int pre_overflow
    PreImage *pre

ctypedef struct WatchHook:
    WatchState *s
    uint64_t start
    uint64_t end
    int kind          # 2 write, 3 read, 4 access (gdb's Z types)


cdef void _watch_mem_cb(uc_engine *uc, int type, uint64_t address, int size, int64_t value,
                        void *user_data) noexcept nogil:
    cdef WatchHook *w = <WatchHook *>user_data
    cdef WatchState *s = w.s
    cdef int is_write = type == UC_MEM_WRITE
    cdef PreImage *p
    cdef int i
    if s.skip_first and s.insn_seq <= 1:
        return
    if s.capture and is_write:
        # Keep the pre-image of this store (once per address and size within an instruction).
        for i in range(s.pre_n):
            if s.pre[i].addr == address and s.pre[i].size == <uint32_t>size:
                break
        else:
            if s.pre_n < PRE_MAX and size <= PRE_BYTES:
                p = &s.pre[s.pre_n]
                if s.mem_read(uc, address, p.data, size) == UC_ERR_OK:
                    p.addr = address
                    p.size = size
                    s.pre_n += 1
                else:
                    s.pre_overflow = 1
            else:
                s.pre_overflow = 1
    if address >= w.end or address + <uint64_t>size <= w.start:
        return
    if (w.kind == 2 and not is_write) or (w.kind == 3 and is_write):
        return
    if not s.hit:
        s.hit = 1
        s.hit_kind = w.kind
        s.hit_addr = address if address > w.start else w.start
        s.hit_access_addr = address
        s.hit_size = size
        s.hit_write = is_write
    if s.capture and not s.ctx_saved:
        if s.ctx_save(uc, s.ctx) == UC_ERR_OK:
            s.ctx_saved = 1


cdef void _watch_code_cb(uc_engine *uc, uint64_t address, uint32_t size,
                         void *user_data) noexcept nogil:
    cdef WatchState *s = <WatchState *>user_data
    s.insn_seq += 1
    if s.hit:
        s.emu_stop(uc)
        return
    s.pre_n = 0
    s.ctx_saved = 0


@cython.no_gc_clear  # __dealloc__ needs _hooks/_dead to free the C structs
cdef class WatchCore:
    """Data watchpoints in C; see the comment above. ``kind`` is gdb's Z type (2, 3, 4)."""

    cdef WatchState s
    cdef UcApi api
    cdef uc_hook code_hook
    cdef int has_code_hook
    cdef dict _hooks           # (start, size, kind) -> (WatchHook address, [uc_hook, ...])
    cdef list _dead
    cdef object _uc
    cdef object _ctx

    def __cinit__(self, object uc not None):
        self._uc = uc
        self._hooks = {}
        self._dead = []
        self.s.uc = <uc_engine *>_uc_handle(uc)
        _ucapi_fill(&self.api)
        import ctypes
        from unicorn.unicorn_py3.unicorn import uclib
        self.s.emu_stop = self.api.emu_stop
        self.s.mem_read = <syx_mem_read_t><size_t>ctypes.cast(
            uclib.uc_mem_read, ctypes.c_void_p).value
        self.s.ctx_save = <syx_context_save_t><size_t>ctypes.cast(
            uclib.uc_context_save, ctypes.c_void_p).value
        self._ctx = uc.context_save()
        self.s.ctx = <void *><size_t>self._ctx.context.value
        self.s.pre = <PreImage *>calloc(PRE_MAX, sizeof(PreImage))
        if self.s.pre == NULL:
            raise MemoryError()

    def __dealloc__(self):
        for ptr, _ in self._hooks.values():
            free(<void *><size_t>ptr)
        for ptr in self._dead:
            free(<void *><size_t>ptr)
        free(self.s.pre)

    @property
    def capture(self):
        return bool(self.s.capture)

    @capture.setter
    def capture(self, bint value):
        self.s.capture = value

    def _flush(self):
        # New hooks only reach code translated after them, and only slow-path accesses
        # reach memory hooks: drop the translation cache and the softmmu TLB.
        self.api.ctl(self.s.uc, SYX_CTL_W(UC_CTL_TB_FLUSH, 0))
        self.api.ctl(self.s.uc, SYX_CTL_W(UC_CTL_TLB_FLUSH, 0))

    def add(self, uint64_t start, uint64_t size, int kind):
        """Watch ``[start, start+size)`` for ``kind`` (2 write, 3 read, 4 access). Idempotent."""
        key = (start, size, kind)
        if key in self._hooks or size == 0:
            return
        if kind not in (2, 3, 4):
            raise ValueError(f"bad watch kind {kind}")
        cdef WatchHook *w = <WatchHook *>calloc(1, sizeof(WatchHook))
        if w == NULL:
            raise MemoryError()
        w.s = &self.s
        w.start = start
        w.end = start + size
        w.kind = kind
        cdef uint64_t lo = start - WATCH_MARGIN if start > WATCH_MARGIN else 0
        cdef uint64_t hi = start + size - 1 + WATCH_MARGIN
        if hi < start:
            hi = 0xFFFFFFFFFFFFFFFFULL
        cdef uc_hook hh = 0
        handles = []
        # A read watch with capture also hooks stores, for the pre-images of read-modify-write
        # instructions; the callback filters hits by kind.
        types = [UC_HOOK_MEM_WRITE] if kind == 2 else [UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE]
        cdef int t
        cdef uc_err err
        for t in types:
            err = self.api.hook_add(self.s.uc, &hh, t, <void *>_watch_mem_cb, w, lo, hi)
            if err != UC_ERR_OK:
                for h in handles:
                    self.api.hook_del(self.s.uc, <uc_hook>h)
                free(w)
                raise RuntimeError(f"uc_hook_add(memory) failed: {err}")
            handles.append(hh)
        if not self.has_code_hook:
            err = self.api.hook_add(self.s.uc, &self.code_hook, UC_HOOK_CODE,
                                    <void *>_watch_code_cb, &self.s, 1, 0)
            if err != UC_ERR_OK:
                raise RuntimeError(f"uc_hook_add(UC_HOOK_CODE) failed: {err}")
            self.has_code_hook = 1
        self._hooks[key] = (<size_t>w, handles)
        self._flush()

    def remove(self, uint64_t start, uint64_t size, int kind):
        entry = self._hooks.pop((start, size, kind), None)
        if entry is None:
            return
        ptr, handles = entry
        for h in handles:
            self.api.hook_del(self.s.uc, <uc_hook>h)
        # The hooks are only marked deleted until emu_start returns; the struct must outlive
        # them, so it is freed lazily with the core.
        self._dead.append(ptr)
        if not self._hooks and self.has_code_hook:
            self.api.hook_del(self.s.uc, self.code_hook)
            self.has_code_hook = 0
        self._flush()

    def watches(self):
        return sorted(self._hooks)

    def __len__(self):
        return len(self._hooks)

    def begin_run(self, bint skip_first):
        """Clear the hit state before a run; ``skip_first`` ignores the first instruction."""
        self.s.insn_seq = 0
        self.s.skip_first = skip_first
        self.s.hit = 0
        self.s.pre_n = 0
        self.s.pre_overflow = 0
        self.s.ctx_saved = 0

    @property
    def hit(self):
        """None, or (kind, reported address, access address, access size, is_write)."""
        if not self.s.hit:
            return None
        return (self.s.hit_kind, self.s.hit_addr, self.s.hit_access_addr, self.s.hit_size,
                bool(self.s.hit_write))

    def clear_hit(self):
        self.s.hit = 0

    def undo_info(self):
        """(pre-images [(addr, bytes)] in store order, context saved, complete) at a hit."""
        out = []
        cdef int i
        for i in range(self.s.pre_n):
            out.append((self.s.pre[i].addr,
                        bytes((<unsigned char *>self.s.pre[i].data)[:self.s.pre[i].size])))
        return out, bool(self.s.ctx_saved), not self.s.pre_overflow

    @property
    def context(self):
        """The ``UcContext`` the hooks saved at the hit (valid when undo_info says so)."""
        return self._ctx
