# cython: language_level=3, embedsignature=True, boundscheck=False, wraparound=False, cdivision=True
"""The snapshot journal in C: first-write-per-epoch dirty tracking and pooled undo logs.

Guest RAM is the machine's own ``mmap`` buffers (``Backing``); pages are keyed by
(backing, page index), never by guest address. Per backing page a ``stamp`` holds the
generation (epoch) in which its pre-image was last recorded; a push or a restore bumps the
generation, so re-arming every page is O(1).

Dirty tracking, chosen when the journal attaches to a machine:

* ``tlb``: Unicorn's virtual TLB with a C ``UC_HOOK_TLB_FILL`` callback (identity mapping).
  A page whose pre-image is not recorded in this generation gets a TLB entry without WRITE;
  the first store refills the entry, the callback copies the pre-image into the open log and
  grants WRITE. Pages ever fetched keep EXEC in writable entries so that stores to code
  pages stay on Unicorn's SMC-checking slow path. Push and restore flush the TLB. Needs a
  machine that never ran (the TLB type is fixed at the first emulation).
* ``hook``: a C ``UC_HOOK_MEM_WRITE`` callback doing the same copy on the first store.

Host writes (loader, syscalls, debugger) arrive through ``Memory.write_observers`` before
the bytes change and are recorded the same way. Pre-images live in a pool of pre-faulted
pages. Restores ``memcpy`` pre-images back newest to oldest (the oldest wins), drop the
translations of restored pages in executable mappings, and flush the TLB.

No Python runs per store or per TLB fill.
"""

from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset

from syxdbg.includes.ucapi cimport UcApi
from syxdbg.includes.unicorn cimport *

include "../includes/ucapi.pxi"

from ._api import JournalFull

cdef extern from "sys/mman.h" nogil:
    void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset)
    int munmap(void *addr, size_t length)
    int PROT_READ
    int PROT_WRITE
    int MAP_PRIVATE
    int MAP_ANONYMOUS
    int MAP_POPULATE
    void *MAP_FAILED

cdef extern from "unicorn/unicorn.h" nogil:
    cdef enum:
        UC_MEM_READ
        UC_MEM_WRITE
        UC_MEM_FETCH

cdef extern from *:
    """
    #define SYX_TLB_TYPE UC_CTL_WRITE(UC_CTL_TLB_TYPE, 1)
    #define SYX_TLB_FLUSH UC_CTL_WRITE(UC_CTL_TLB_FLUSH, 0)
    #define SYX_TB_REMOVE UC_CTL_WRITE(UC_CTL_TB_REMOVE_CACHE, 2)
    """
    int SYX_TLB_TYPE
    int SYX_TLB_FLUSH
    int SYX_TB_REMOVE

DEF PAGE_SHIFT = 12
DEF PAGE_SIZE = 4096
DEF POOL_CHUNK = 256  # pages per pre-faulted pool chunk (1 MiB)
# Pages set aside for the pre-images of the stores still in flight when the pool runs out
# (the limit is reached or the host refuses memory): Unicorn stops at the end of the current
# translation block, which writes at most TCG_MAX_INSNS (512) x 2 pages. Mapped without
# MAP_POPULATE: it costs address space only until used.
DEF RESERVE_PAGES = 1024


ctypedef struct BackingState:
    uint8_t *base
    size_t npages
    uint32_t *stamp     # generation in which the pre-image was recorded (0: never)
    uint32_t *mark      # scratch for merges
    uint8_t *fetched    # page was ever fetched from (tlb mode)
    uint8_t *shadow     # verify: RAM at the start of the open log (NULL when off)

ctypedef struct MapEnt:
    uint64_t start
    uint64_t end
    uint64_t boff       # offset of ``start`` in the backing
    uint32_t bidx
    uint32_t perms

ctypedef struct Entry:
    uint32_t bidx
    uint32_t page
    uint8_t *data

ctypedef struct Log:
    int64_t id
    Entry *ents
    size_t n
    size_t cap

ctypedef struct J:
    void *uc
    UcApi api
    int tlb
    uint32_t gen
    BackingState *backs
    size_t nbacks
    size_t capbacks
    MapEnt *maps
    size_t nmaps
    size_t last_map
    Log *logs
    size_t nlogs
    size_t caplogs
    uint8_t **freepages
    size_t nfree
    size_t capfree
    void **chunks
    size_t nchunks
    size_t capchunks
    size_t held
    int oom             # the pool ran out; pre-images come from the reserve (consistent)
    int lost            # a pre-image could not be saved at all (history before it is wrong)
    int64_t lost_log    # the newest log that lost a pre-image
    size_t limit        # most pool pages (0: no limit but the host's)
    uint8_t *reserve    # RESERVE_PAGES pages
    uint8_t **rfree     # the free reserve pages
    size_t nrfree
    uint32_t mark_token
    int grant_denied    # fill hook: grant denied writes (Unicorn's slow path reports them)
    int strict_unmapped # fill hook: refuse stores to unmapped pages (no MMIO windows there)


# -- pool -----------------------------------------------------------------------------------
cdef int _pool_grow(J *j) noexcept nogil:
    if j.limit and (j.nchunks + 1) * POOL_CHUNK > j.limit:
        return -1
    cdef void *p = mmap(NULL, POOL_CHUNK * PAGE_SIZE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0)
    cdef size_t i
    cdef void **nc
    cdef uint8_t **nf
    if p == MAP_FAILED:
        return -1
    if j.nchunks == j.capchunks:
        nc = <void **>realloc(j.chunks, (j.capchunks * 2 + 8) * sizeof(void *))
        if nc == NULL:
            munmap(p, POOL_CHUNK * PAGE_SIZE)
            return -1
        j.chunks = nc
        j.capchunks = j.capchunks * 2 + 8
    # INVARIANT: capfree >= every page the pool owns, so _pool_put never overflows.
    if (j.nchunks + 1) * POOL_CHUNK > j.capfree:
        nf = <uint8_t **>realloc(j.freepages, (j.capfree * 2 + POOL_CHUNK) * sizeof(uint8_t *))
        if nf == NULL:
            munmap(p, POOL_CHUNK * PAGE_SIZE)
            return -1
        j.freepages = nf
        j.capfree = j.capfree * 2 + POOL_CHUNK
    j.chunks[j.nchunks] = p
    j.nchunks += 1  # after the free-list check above, which counted this chunk
    for i in range(POOL_CHUNK):
        j.freepages[j.nfree] = <uint8_t *>p + (POOL_CHUNK - 1 - i) * PAGE_SIZE
        j.nfree += 1
    return 0


cdef inline uint8_t *_pool_get(J *j, bint use_reserve) noexcept nogil:
    """A free pre-image page. When the pool cannot grow, a page of the reserve (only for
    guest stores already under way: ``use_reserve``) and the journal is marked full."""
    if j.nfree == 0 and _pool_grow(j) != 0:
        j.oom = 1
        if not use_reserve or j.nrfree == 0:
            return NULL
        j.nrfree -= 1
        return j.rfree[j.nrfree]
    j.nfree -= 1
    return j.freepages[j.nfree]


cdef inline bint _in_reserve(J *j, uint8_t *page) noexcept nogil:
    return j.reserve != NULL and j.reserve <= page < j.reserve + RESERVE_PAGES * PAGE_SIZE


cdef inline void _pool_put(J *j, uint8_t *page) noexcept nogil:
    # INVARIANT: capfree >= number of pool pages (see _pool_grow); the reserve list has room
    # for every reserve page.
    if _in_reserve(j, page):
        j.rfree[j.nrfree] = page
        j.nrfree += 1
        return
    j.freepages[j.nfree] = page
    j.nfree += 1


cdef inline void _settle_oom(J *j) noexcept nogil:
    """Memory was given back: the journal is no longer full once the pool has at least one
    chunk of room again (free pages, or growth under the limit). The reserve refills as the
    logs holding its pages are freed."""
    cdef size_t room = j.nfree
    if not j.oom:
        return
    if not j.limit:
        room += POOL_CHUNK  # the host decides; try again
    elif j.limit > j.nchunks * POOL_CHUNK:
        room += (j.limit - j.nchunks * POOL_CHUNK) // POOL_CHUNK * POOL_CHUNK
    if room >= POOL_CHUNK:
        j.oom = 0


# -- recording ------------------------------------------------------------------------------
cdef inline int _record(J *j, uint32_t bidx, size_t page, bint guest) noexcept nogil:
    """Copy the pre-image of (bidx, page) into the open log unless already done this epoch.

    ``guest``: a store already under way (it happens whatever we return): the reserve may be
    used, and failing marks the journal ``lost``. A host write fails before it happens."""
    cdef BackingState *b = &j.backs[bidx]
    cdef Log *lg
    cdef Entry *ne
    cdef uint8_t *buf
    if b.stamp[page] == j.gen:
        return 0
    if j.nlogs == 0:
        return 0
    lg = &j.logs[j.nlogs - 1]
    if lg.n == lg.cap:
        ne = <Entry *>realloc(lg.ents, (lg.cap * 2 + 64) * sizeof(Entry))
        if ne == NULL:
            j.oom = 1
            if guest:
                j.lost = 1
                if lg.id > j.lost_log:
                    j.lost_log = lg.id
            return -1
        lg.ents = ne
        lg.cap = lg.cap * 2 + 64
    buf = _pool_get(j, guest)
    if buf == NULL:
        if guest:
            j.lost = 1
            if lg.id > j.lost_log:
                j.lost_log = lg.id
        return -1
    memcpy(buf, b.base + (page << PAGE_SHIFT), PAGE_SIZE)
    lg.ents[lg.n].bidx = bidx
    lg.ents[lg.n].page = <uint32_t>page
    lg.ents[lg.n].data = buf
    lg.n += 1
    j.held += 1
    b.stamp[page] = j.gen
    return 0


cdef inline MapEnt *_find_map(J *j, uint64_t addr) noexcept nogil:
    cdef size_t lo, hi, mid
    cdef MapEnt *m
    if j.nmaps == 0:
        return NULL
    m = &j.maps[j.last_map]
    if m.start <= addr < m.end:
        return m
    lo = 0
    hi = j.nmaps
    while lo < hi:
        mid = (lo + hi) >> 1
        m = &j.maps[mid]
        if addr < m.start:
            hi = mid
        elif addr >= m.end:
            lo = mid + 1
        else:
            j.last_map = mid
            return m
    return NULL


cdef inline int _mark_range(J *j, uint64_t addr, uint64_t size, bint guest) noexcept nogil:
    cdef uint64_t a = addr & ~<uint64_t>(PAGE_SIZE - 1)
    cdef uint64_t end = addr + size
    cdef MapEnt *m
    if size == 0:
        return 0
    while a < end:
        m = _find_map(j, a)
        if m != NULL:
            if _record(j, m.bidx, <size_t>((a - m.start + m.boff) >> PAGE_SHIFT), guest) != 0:
                if not guest:
                    return -1
        a += PAGE_SIZE
    return 0


cdef void _write_cb(void *uc, int type, uint64_t address, int size, int64_t value,
                    void *user_data) noexcept nogil:
    cdef J *j = <J *>user_data
    if j.nlogs == 0:
        return
    if ((address ^ (address + <uint64_t>size - 1)) >> PAGE_SHIFT) == 0:
        # Fast case: one page; the stamp check is the whole cost of a repeated store.
        _mark_range(j, address, 1, True)
    else:
        _mark_range(j, address, <uint64_t>size, True)
    if j.oom:
        j.api.emu_stop(<uc_engine *>uc)


cdef bint _tlb_cb(void *uc, uint64_t vaddr, int type, uc_tlb_entry *result,
                  void *user_data) noexcept nogil:
    cdef J *j = <J *>user_data
    cdef MapEnt *m = _find_map(j, vaddr)
    cdef size_t page
    cdef BackingState *b
    cdef int perms
    result.paddr = vaddr
    if m == NULL:
        if type == UC_MEM_WRITE and j.strict_unmapped and not j.grant_denied:
            # A store to unmapped memory: refused, hence precise, as a forbidden store
            # below. (Not on a machine with MMIO windows, which are Unicorn regions the
            # journal does not map; loads of unmapped memory are precise anyway.)
            result.perms = <uc_prot>0
            return True
        # Unmapped: let Unicorn's own unmapped-access path (and hooks) report it.
        result.perms = UC_PROT_ALL
        return True
    page = <size_t>((vaddr - m.start + m.boff) >> PAGE_SHIFT)
    b = &j.backs[m.bidx]
    perms = m.perms & (UC_PROT_READ | UC_PROT_EXEC)
    if type == UC_MEM_WRITE and not (m.perms & UC_PROT_WRITE) and not j.grant_denied:
        # A store the mapping forbids: no writable entry, so Unicorn raises the fault at the
        # store (cpu_loop_exit_restore: UC_ERR_EXCEPTION, pc and registers at it). Granted,
        # its slow path would report UC_ERR_WRITE_PROT only after running the rest of the
        # block, the store skipped, with a stale pc when no fill synced it (issue 17: an
        # ARM-state store fault reported at the block's end). The machine asks again with
        # grant_denied set to learn the address (Machine._locate_fault).
        result.perms = <uc_prot>perms
        return True
    if type == UC_MEM_FETCH:
        b.fetched[page] = 1
    if type == UC_MEM_WRITE and (m.perms & UC_PROT_WRITE):
        _record(j, m.bidx, page, True)
        if j.oom:
            # Full: stop at the end of this block (its stores' pre-images come from the
            # reserve), so the journal stays exact.
            j.api.emu_stop(<uc_engine *>uc)
    if (m.perms & UC_PROT_WRITE) and (b.stamp[page] == j.gen or j.nlogs == 0):
        perms |= UC_PROT_WRITE
        if b.fetched[page]:
            # SMC safety: keep writable entries of code pages on the slow path.
            perms |= UC_PROT_EXEC
    # A denied access gets the permission anyway: Unicorn's slow path then checks the
    # region's permissions and reports UC_ERR_*_PROT (with hooks) exactly as in CPU mode.
    if type == UC_MEM_READ:
        perms |= UC_PROT_READ
    elif type == UC_MEM_WRITE:
        perms |= UC_PROT_WRITE
    elif type == UC_MEM_FETCH:
        perms |= UC_PROT_EXEC
    result.perms = <uc_prot>perms
    return True


# -- logs -----------------------------------------------------------------------------------
cdef void _free_log_entries(J *j, Log *lg) noexcept nogil:
    cdef size_t i
    for i in range(lg.n):
        _pool_put(j, lg.ents[i].data)
    j.held -= lg.n
    lg.n = 0


cdef void _remove_log(J *j, size_t i) noexcept nogil:
    cdef size_t k
    free(j.logs[i].ents)
    for k in range(i, j.nlogs - 1):
        j.logs[k] = j.logs[k + 1]
    j.nlogs -= 1


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


cdef class Journal:
    """The compiled journal engine of one machine (see the module docstring)."""

    cdef J j
    cdef object machine
    cdef object _uc
    cdef dict _bidx
    cdef list _backings
    cdef uc_hook _hook
    cdef int64_t _next_id
    cdef bint _verify
    cdef bint _closed
    cdef dict _reshaped        # log id -> [(start, end)] of regions mapped/unmapped/changed
    cdef list _layout_prev     # the map entries of the last sync_layout
    cdef object __weakref__

    def __cinit__(self):
        memset(&self.j, 0, sizeof(J))

    def __init__(self, machine not None, str mode="auto"):
        self.machine = machine
        self._uc = machine.uc
        self._bidx = {}
        self._backings = []
        self._next_id = 0
        self._reshaped = {}
        self._layout_prev = []
        self.j.uc = <void *>_uc_handle(self._uc)
        _ucapi_fill(&self.j.api)
        self._alloc_reserve()
        if mode == "auto":
            mode = "tlb" if machine.can_enable_virtual_tlb() else "hook"
        cdef uc_err err
        if mode == "tlb":
            machine.enable_virtual_tlb(self)
            self.j.tlb = 1
            # (Cortex-M firmware has MMIO windows: Unicorn regions outside the map.)
            self.j.strict_unmapped = machine.arch.name != "cortex-m"
            err = self.j.api.hook_add(<uc_engine *>self.j.uc, &self._hook, UC_HOOK_TLB_FILL,
                                      <void *>_tlb_cb, &self.j, 1, 0)
        elif mode == "hook":
            err = self.j.api.hook_add(<uc_engine *>self.j.uc, &self._hook, UC_HOOK_MEM_WRITE,
                                      <void *>_write_cb, &self.j, 1, 0)
        else:
            raise ValueError(f"unknown tracking mode {mode!r} (auto, tlb or hook)")
        if err != UC_ERR_OK:
            raise RuntimeError(f"uc_hook_add failed: {err}")
        self.sync_layout()
        machine.mem.layout_observers.append(self.sync_layout)
        machine.mem.write_observers.append(self.host_write)
        if self.j.tlb:
            self._flush_tlb()

    def __dealloc__(self):
        self._release()

    cdef void _release(self) noexcept:
        cdef size_t i
        for i in range(self.j.nlogs):
            free(self.j.logs[i].ents)
        free(self.j.logs)
        self.j.logs = NULL
        self.j.nlogs = 0
        for i in range(self.j.nbacks):
            free(self.j.backs[i].stamp)
            free(self.j.backs[i].mark)
            free(self.j.backs[i].fetched)
            if self.j.backs[i].shadow != NULL:
                munmap(self.j.backs[i].shadow, self.j.backs[i].npages * PAGE_SIZE)
        free(self.j.backs)
        self.j.backs = NULL
        self.j.nbacks = 0
        free(self.j.maps)
        self.j.maps = NULL
        self.j.nmaps = 0
        for i in range(self.j.nchunks):
            munmap(self.j.chunks[i], POOL_CHUNK * PAGE_SIZE)
        free(self.j.chunks)
        free(self.j.freepages)
        self.j.chunks = NULL
        self.j.freepages = NULL
        self.j.nchunks = 0
        self.j.nfree = 0
        if self.j.reserve != NULL:
            munmap(self.j.reserve, RESERVE_PAGES * PAGE_SIZE)
            self.j.reserve = NULL
        free(self.j.rfree)
        self.j.rfree = NULL
        self.j.nrfree = 0

    cdef int _alloc_reserve(self) except -1:
        cdef void *p = mmap(NULL, RESERVE_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        cdef size_t i
        if p == MAP_FAILED:
            raise JournalFull("snapshot journal: the host has no memory for its reserve")
        self.j.rfree = <uint8_t **>malloc(RESERVE_PAGES * sizeof(uint8_t *))
        if self.j.rfree == NULL:
            munmap(p, RESERVE_PAGES * PAGE_SIZE)
            raise JournalFull("snapshot journal: the host has no memory for its reserve")
        self.j.reserve = <uint8_t *>p
        for i in range(RESERVE_PAGES):
            self.j.rfree[i] = self.j.reserve + (RESERVE_PAGES - 1 - i) * PAGE_SIZE
        self.j.nrfree = RESERVE_PAGES
        return 0

    @property
    def grant_denied(self):
        """True while stores the mappings forbid get writable TLB entries (then Unicorn's
        slow path reports UC_ERR_WRITE_PROT, with hooks, after the rest of the block)."""
        return bool(self.j.grant_denied)

    @grant_denied.setter
    def grant_denied(self, bint value):
        self.j.grant_denied = value

    @property
    def mode(self):
        """``"tlb"`` or ``"hook"``."""
        return "tlb" if self.j.tlb else "hook"

    cdef void _flush_tlb(self) noexcept:
        self.j.api.ctl(<uc_engine *>self.j.uc, SYX_TLB_FLUSH)

    # -- layout -------------------------------------------------------------------------------
    cdef uint32_t _backing_index(self, object backing) except 0xFFFFFFFF:
        idx = self._bidx.get(backing.id)
        if idx is not None:
            return idx
        cdef BackingState *nb
        cdef size_t npages = backing.size // PAGE_SIZE
        if self.j.nbacks == self.j.capbacks:
            nb = <BackingState *>realloc(self.j.backs,
                                         (self.j.capbacks * 2 + 8) * sizeof(BackingState))
            if nb == NULL:
                raise JournalFull("snapshot journal: the host is out of memory")
            self.j.backs = nb
            self.j.capbacks = self.j.capbacks * 2 + 8
        cdef BackingState *b = &self.j.backs[self.j.nbacks]
        memset(b, 0, sizeof(BackingState))
        b.base = <uint8_t *><size_t>backing.address
        b.npages = npages
        b.stamp = <uint32_t *>calloc(npages, sizeof(uint32_t))
        b.mark = <uint32_t *>calloc(npages, sizeof(uint32_t))
        b.fetched = <uint8_t *>calloc(npages, 1)
        if b.stamp == NULL or b.mark == NULL or b.fetched == NULL:
            raise JournalFull("snapshot journal: the host is out of memory")
        # A backing first seen now is recorded as "already saved" in no epoch: stamp 0
        # never equals a live generation once a log is open.
        if self._verify:
            self._alloc_shadow(b)
        idx = self.j.nbacks
        self.j.nbacks += 1
        self._bidx[backing.id] = idx
        self._backings.append(backing)  # keeps the buffer alive while logs point into it
        return idx

    cdef int _alloc_shadow(self, BackingState *b) except -1:
        cdef void *p = mmap(NULL, b.npages * PAGE_SIZE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        if p == MAP_FAILED:
            raise JournalFull("snapshot journal: the host has no memory for a shadow copy of "
                              "guest RAM")
        memcpy(p, b.base, b.npages * PAGE_SIZE)
        b.shadow = <uint8_t *>p
        return 0

    def sync_layout(self):
        """Rebuild the C view of the memory map (a ``Memory.layout_observers`` callback)."""
        regions = self.machine.mem.regions()
        cdef size_t n = len(regions)
        cdef MapEnt *maps = <MapEnt *>calloc(n + 1, sizeof(MapEnt))
        if maps == NULL:
            raise JournalFull("snapshot journal: the host is out of memory")
        cdef size_t i = 0
        try:
            for r in regions:
                maps[i].start = r.start
                maps[i].end = r.start + r.size
                maps[i].boff = r.offset
                maps[i].bidx = self._backing_index(r.backing)
                maps[i].perms = int(r.perms)
                i += 1
        except BaseException:
            free(maps)
            raise
        free(self.j.maps)
        self.j.maps = maps
        self.j.nmaps = n
        self.j.last_map = 0
        # What changed is part of the open log's interval (for :meth:`written`).
        layout = [(maps[i].start, maps[i].end, maps[i].bidx, maps[i].boff, maps[i].perms)
                  for i in range(n)]
        if self.j.nlogs:
            changed = set(layout).symmetric_difference(self._layout_prev)
            if changed:
                self._reshaped.setdefault(self.j.logs[self.j.nlogs - 1].id, []).extend(
                    (c[0], c[1]) for c in changed)
        self._layout_prev = layout
        if self.j.tlb:
            self._flush_tlb()

    # -- host writes --------------------------------------------------------------------------
    def host_write(self, uint64_t address, uint64_t size):
        """Record pre-images before a host write (a ``Memory.write_observers`` callback).

        Raises :class:`JournalFull` when a pre-image cannot be kept: the write must then not
        happen (``Memory.write`` calls its observers first), so the journal stays exact."""
        if _mark_range(&self.j, address, size, False) != 0:
            raise JournalFull(self._full_message())

    # -- logs ---------------------------------------------------------------------------------
    cdef Py_ssize_t _index(self, int64_t log_id) noexcept:
        cdef Py_ssize_t lo = 0
        cdef Py_ssize_t hi = self.j.nlogs
        cdef Py_ssize_t mid
        while lo < hi:
            mid = (lo + hi) >> 1
            if self.j.logs[mid].id < log_id:
                lo = mid + 1
            else:
                hi = mid
        if lo < <Py_ssize_t>self.j.nlogs and self.j.logs[lo].id == log_id:
            return lo
        return -1

    def open_log(self):
        """Close the open log, open a new one (a new epoch); return its id."""
        cdef Log *nl
        cdef size_t i
        cdef Log *cur
        cdef BackingState *b
        if self.j.oom:
            # The open log stays open and exact (the reserve kept the pre-images of the
            # stores in flight); memory comes back when older history is restored or freed.
            raise JournalFull(self._full_message())
        if self._verify and self.j.nlogs:
            cur = &self.j.logs[self.j.nlogs - 1]
            for i in range(cur.n):
                b = &self.j.backs[cur.ents[i].bidx]
                memcpy(b.shadow + (<size_t>cur.ents[i].page << PAGE_SHIFT),
                       b.base + (<size_t>cur.ents[i].page << PAGE_SHIFT), PAGE_SIZE)
        if self.j.nlogs == self.j.caplogs:
            nl = <Log *>realloc(self.j.logs, (self.j.caplogs * 2 + 8) * sizeof(Log))
            if nl == NULL:
                raise JournalFull("snapshot journal: the host is out of memory")
            self.j.logs = nl
            self.j.caplogs = self.j.caplogs * 2 + 8
        self._next_id += 1
        nl = &self.j.logs[self.j.nlogs]
        memset(nl, 0, sizeof(Log))
        nl.id = self._next_id
        self.j.nlogs += 1
        self.j.gen += 1
        if self.j.tlb:
            self._flush_tlb()
        return self._next_id

    def restore_to(self, int64_t log_id):
        """RAM := state at the start of ``log_id``; newer logs are dropped; it stays open."""
        cdef Py_ssize_t k = self._index(log_id)
        if k < 0:
            raise KeyError(log_id)
        if self.j.lost and log_id <= self.j.lost_log:
            raise JournalFull("snapshot journal: that state cannot be restored: memory ran out "
                              "while the guest was writing and a pre-image was lost")
        cdef Py_ssize_t i
        cdef size_t e, written = 0, m
        cdef Log *lg
        cdef Entry *en
        cdef BackingState *b
        cdef MapEnt *mp
        cdef uint64_t addr
        cdef bint code = False
        cdef size_t off
        with nogil:
            i = <Py_ssize_t>self.j.nlogs - 1
            while i >= k:
                lg = &self.j.logs[i]
                # Newest to oldest: the oldest pre-image of a page is written last.
                for e in range(lg.n):
                    en = &lg.ents[e]
                    b = &self.j.backs[en.bidx]
                    off = <size_t>en.page << PAGE_SHIFT
                    memcpy(b.base + off, en.data, PAGE_SIZE)
                    if b.shadow != NULL:
                        memcpy(b.shadow + off, en.data, PAGE_SIZE)
                    written += 1
                    for m in range(self.j.nmaps):
                        mp = &self.j.maps[m]
                        if (mp.bidx == en.bidx and (mp.perms & UC_PROT_EXEC)
                                and mp.boff <= off < mp.boff + (mp.end - mp.start)):
                            addr = mp.start + off - mp.boff
                            self.j.api.ctl(<uc_engine *>self.j.uc, SYX_TB_REMOVE,
                                           <uint64_t>addr, <uint64_t>(addr + PAGE_SIZE))
                            code = True
                _free_log_entries(&self.j, lg)
                i -= 1
            while <Py_ssize_t>self.j.nlogs - 1 > k:
                _remove_log(&self.j, self.j.nlogs - 1)
            self.j.gen += 1
            _settle_oom(&self.j)
        for lid in [lid for lid in self._reshaped if lid >= log_id]:
            del self._reshaped[lid]
        if self.j.tlb:
            self._flush_tlb()
        if code:
            self.machine.code_restored()
        return written

    def drop_log(self, int64_t log_id):
        """Merge a closed log into its predecessor (older pre-images win)."""
        cdef Py_ssize_t k = self._index(log_id)
        if k < 0:
            return
        if k == <Py_ssize_t>self.j.nlogs - 1:
            raise ValueError("cannot drop the open log")
        cdef Log *cur = &self.j.logs[k]
        cdef Log *prev
        cdef size_t e
        cdef Entry *en
        cdef Entry *ne
        cdef uint32_t tok
        if k == 0:
            _free_log_entries(&self.j, cur)
            _remove_log(&self.j, 0)
            _settle_oom(&self.j)
            self._reshaped.pop(log_id, None)
            return
        prev = &self.j.logs[k - 1]
        moved = self._reshaped.pop(log_id, None)
        if moved:
            self._reshaped.setdefault(prev.id, []).extend(moved)
        if prev.n + cur.n > prev.cap:
            ne = <Entry *>realloc(prev.ents, (prev.n + cur.n + 64) * sizeof(Entry))
            if ne == NULL:
                raise JournalFull("snapshot journal: the host is out of memory")
            prev.ents = ne
            prev.cap = prev.n + cur.n + 64
        self.j.mark_token += 1
        tok = self.j.mark_token
        for e in range(prev.n):
            en = &prev.ents[e]
            self.j.backs[en.bidx].mark[en.page] = tok
        for e in range(cur.n):
            en = &cur.ents[e]
            if self.j.backs[en.bidx].mark[en.page] == tok:
                _pool_put(&self.j, en.data)
                self.j.held -= 1
            else:
                prev.ents[prev.n] = en[0]
                prev.n += 1
        cur.n = 0
        _remove_log(&self.j, k)
        _settle_oom(&self.j)

    def drop_older(self, int64_t log_id):
        """Free every log older than ``log_id``."""
        while self.j.nlogs and self.j.logs[0].id < log_id and self.j.nlogs > 1:
            _free_log_entries(&self.j, &self.j.logs[0])
            _remove_log(&self.j, 0)
        _settle_oom(&self.j)
        if self.j.nlogs:
            for lid in [lid for lid in self._reshaped if lid < self.j.logs[0].id]:
                del self._reshaped[lid]

    # -- memory limit -------------------------------------------------------------------------
    def set_limit(self, max_bytes):
        """Keep at most ``max_bytes`` of pre-images (None: as much as the host gives). Past
        it the journal is *full*: the machine stops at the end of the current block and the
        next push raises :class:`JournalFull`, with every state still exact."""
        self.j.limit = 0 if max_bytes is None else max(1, (max_bytes + PAGE_SIZE - 1)
                                                       // PAGE_SIZE)
        _settle_oom(&self.j)

    @property
    def full(self):
        """True while the journal is out of memory (see :meth:`set_limit`)."""
        return bool(self.j.oom)

    def _full_message(self):
        if self.j.limit:
            return (f"snapshot journal full: its {self.j.limit * PAGE_SIZE >> 20} MiB limit "
                    "is reached (go back in time or drop history to free it)")
        return ("snapshot journal full: the host is out of memory (go back in time or drop "
                "history to free it)")

    def has_log(self, int64_t log_id):
        return self._index(log_id) >= 0

    def log_pages(self, int64_t log_id):
        """Guest addresses of the pages first written while ``log_id`` was open (by the guest
        or the host), among those mapped now; sorted. A recording persists exactly these."""
        cdef Py_ssize_t k = self._index(log_id)
        if k < 0:
            raise KeyError(log_id)
        cdef Log *lg = &self.j.logs[k]
        cdef size_t e, m
        cdef uint64_t off
        cdef MapEnt *mp
        out = []
        for e in range(lg.n):
            off = <uint64_t>lg.ents[e].page << PAGE_SHIFT
            for m in range(self.j.nmaps):
                mp = &self.j.maps[m]
                if mp.bidx == lg.ents[e].bidx and mp.boff <= off < mp.boff + (mp.end - mp.start):
                    out.append(mp.start + (off - mp.boff))
        out.sort()
        return out

    def written(self, int64_t first, int64_t end=-1):
        """What the logs with ``first <= id < end`` (``end`` -1: every newer log) saw
        written: ``(ranges, reshaped)``. ``ranges`` are the guest pages first written in
        them (by the guest or the host), among those mapped now, as sorted disjoint
        [lo, hi) byte ranges packed as native uint64 pairs (the range-set bytes of
        ``syxdbg.machine._probes``); ``reshaped`` the (start, end) of every map entry mapped,
        unmapped or changed meanwhile (its bytes may have changed without a store).
        Costs the pages written, never RAM size."""
        cdef size_t i, e, m, n = 0, cap = 0
        cdef uint64_t off
        cdef MapEnt *mp
        cdef Log *lg
        cdef uint64_t *pairs
        cdef uint64_t *np
        reshaped = []
        for lid, spans in self._reshaped.items():
            if lid >= first and (end < 0 or lid < end):
                reshaped.extend(spans)
        for i in range(self.j.nlogs):
            lg = &self.j.logs[i]
            if lg.id >= first and (end < 0 or lg.id < end):
                cap += lg.n
        pairs = <uint64_t *>malloc((2 * cap + 2) * sizeof(uint64_t))
        if pairs == NULL:
            raise MemoryError()
        try:
            for i in range(self.j.nlogs):
                lg = &self.j.logs[i]
                if lg.id < first or (end >= 0 and lg.id >= end):
                    continue
                for e in range(lg.n):
                    off = <uint64_t>lg.ents[e].page << PAGE_SHIFT
                    for m in range(self.j.nmaps):
                        mp = &self.j.maps[m]
                        if (mp.bidx == lg.ents[e].bidx and mp.boff <= off
                                and off < mp.boff + (mp.end - mp.start)):
                            if n == cap:  # a page mapped at several addresses
                                cap = cap * 2 + 16
                                np = <uint64_t *>realloc(pairs, 2 * cap * sizeof(uint64_t))
                                if np == NULL:
                                    raise MemoryError()
                                pairs = np
                            pairs[2 * n] = mp.start + (off - mp.boff)
                            pairs[2 * n + 1] = pairs[2 * n] + PAGE_SIZE
                            n += 1
            n = _coalesce(pairs, n)
            return (<char *>pairs)[:n * 2 * sizeof(uint64_t)], reshaped
        finally:
            free(pairs)

    def pages_since(self, int64_t log_id):
        """Guest addresses (sorted, mapped now) of the pages first written in ``log_id`` or
        any newer log: the pages that may differ from the state at the start of ``log_id``.
        Costs the pages written, never RAM size."""
        cdef Py_ssize_t k = self._index(log_id)
        if k < 0:
            raise KeyError(log_id)
        cdef size_t i, e, m
        cdef uint64_t off
        cdef MapEnt *mp
        cdef Log *lg
        by_backing = {}
        for m in range(self.j.nmaps):
            by_backing.setdefault(self.j.maps[m].bidx, []).append(m)
        seen = set()
        out = set()
        for i in range(<size_t>k, self.j.nlogs):
            lg = &self.j.logs[i]
            for e in range(lg.n):
                key = (<uint64_t>lg.ents[e].bidx << 32) | lg.ents[e].page
                if key in seen:
                    continue
                seen.add(key)
                off = <uint64_t>lg.ents[e].page << PAGE_SHIFT
                for m in by_backing.get(lg.ents[e].bidx, ()):
                    mp = &self.j.maps[m]
                    if mp.boff <= off < mp.boff + (mp.end - mp.start):
                        out.add(mp.start + (off - mp.boff))
        return sorted(out)

    # -- verification -------------------------------------------------------------------------
    def enable_verify(self):
        """Keep a shadow image of RAM at the start of the open log (for :meth:`check`)."""
        cdef size_t i, e
        cdef Log *cur
        cdef BackingState *b
        if self._verify:
            return
        self._verify = True
        for i in range(self.j.nbacks):
            self._alloc_shadow(&self.j.backs[i])
        if self.j.nlogs:
            cur = &self.j.logs[self.j.nlogs - 1]
            for e in range(cur.n):
                b = &self.j.backs[cur.ents[e].bidx]
                memcpy(b.shadow + (<size_t>cur.ents[e].page << PAGE_SHIFT), cur.ents[e].data,
                       PAGE_SIZE)

    def check(self):
        """Pages of mapped RAM that differ from the state at the start of the open log."""
        from ._api import PageDiff, SnapshotError

        if not self._verify:
            raise SnapshotError(
                "memory consistency checks need a shadow copy: SyxSnapshot.new(verify=True)"
            )
        out = []
        cdef size_t m, p, first
        cdef MapEnt *mp
        cdef BackingState *b
        cdef uint8_t *cur
        cdef uint8_t *exp
        names = {r.start: r.name for r in self.machine.mem.regions()}
        for m in range(self.j.nmaps):
            mp = &self.j.maps[m]
            b = &self.j.backs[mp.bidx]
            for p in range((mp.end - mp.start) >> PAGE_SHIFT):
                cur = b.base + mp.boff + (p << PAGE_SHIFT)
                exp = b.shadow + mp.boff + (p << PAGE_SHIFT)
                if memcmp(cur, exp, PAGE_SIZE) != 0:
                    first = 0
                    while cur[first] == exp[first]:
                        first += 1
                    out.append(PageDiff(mp.start + (p << PAGE_SHIFT), names.get(mp.start, ""),
                                        first))
        return out

    def stats(self):
        return {
            "pages": self.j.held,
            "bytes": self.j.held * PAGE_SIZE,
            "logs": self.j.nlogs,
            "pool_pages": self.j.nchunks * POOL_CHUNK,
            "free_pages": self.j.nfree,
            "reserve_free": self.j.nrfree,
            "limit_pages": self.j.limit,
            "full": int(self.j.oom),
        }

    def close(self):
        """Drop every log. In hook mode also detach from the machine and free everything.

        In tlb mode the fill hook must keep mapping pages for the machine's lifetime, so the
        journal stays attached (untracking: no log is open) and :meth:`reopen` reuses it.
        """
        cdef size_t i
        if self._closed:
            return
        self._closed = True
        self._reshaped.clear()
        if self.j.tlb:
            while self.j.nlogs:
                _free_log_entries(&self.j, &self.j.logs[self.j.nlogs - 1])
                _remove_log(&self.j, self.j.nlogs - 1)
            for i in range(self.j.nbacks):
                if self.j.backs[i].shadow != NULL:
                    munmap(self.j.backs[i].shadow, self.j.backs[i].npages * PAGE_SIZE)
                    self.j.backs[i].shadow = NULL
            self._verify = False
            self._flush_tlb()
            return
        self.j.api.hook_del(<uc_engine *>self.j.uc, self._hook)
        mem = self.machine.mem
        if self.sync_layout in mem.layout_observers:
            mem.layout_observers.remove(self.sync_layout)
        if self.host_write in mem.write_observers:
            mem.write_observers.remove(self.host_write)
        self._release()
        self._backings = []
        self._bidx = {}

    def reopen(self):
        """Use a closed tlb-mode journal again (the machine's fill hook never left)."""
        if not self.j.tlb:
            raise RuntimeError("only a tlb-mode journal can be reopened")
        self._closed = False
