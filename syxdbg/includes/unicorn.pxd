# Declarations of the few libunicorn entry points and types syxdbg's Cython modules use.
#
# The functions are never linked: each module calls them through pointers taken from the
# Python binding's own ctypes library (see ``ucapi``), so there is exactly one copy of
# libunicorn in the process and no rpath into the wheel. The types come from the wheel's
# headers (``unicorn/include/unicorn``), added to the include path by setup.py.

from libc.stdint cimport uint32_t, uint64_t

cdef extern from "unicorn/unicorn.h" nogil:
    ctypedef struct uc_engine:
        pass
    ctypedef size_t uc_hook
    ctypedef int uc_err

    cdef enum:
        UC_ERR_OK
        UC_HOOK_INTR
        UC_HOOK_INSN
        UC_HOOK_CODE
        UC_HOOK_BLOCK
        UC_HOOK_MEM_WRITE
        UC_HOOK_MEM_READ
        UC_HOOK_TLB_FILL
        UC_CTL_TB_REMOVE_CACHE
        UC_CTL_TB_FLUSH
        UC_CTL_TLB_FLUSH
        UC_CTL_IO_WRITE
        UC_CTL_IO_READ

    ctypedef void (*uc_cb_hookcode_t)(uc_engine *uc, uint64_t address, uint32_t size,
                                       void *user_data)

    ctypedef enum uc_prot:
        UC_PROT_NONE
        UC_PROT_READ
        UC_PROT_WRITE
        UC_PROT_EXEC
        UC_PROT_ALL

    ctypedef struct uc_tlb_entry:
        uint64_t paddr
        uc_prot perms

cdef extern from *:
    """
    #include <unicorn/unicorn.h>
    typedef __typeof__(&uc_hook_add) syx_hook_add_t;
    typedef __typeof__(&uc_hook_del) syx_hook_del_t;
    typedef __typeof__(&uc_emu_stop) syx_emu_stop_t;
    typedef __typeof__(&uc_ctl) syx_ctl_t;
    #define SYX_CTL_W(t, n) UC_CTL_WRITE((t), (n))
    """
    ctypedef uc_err (*syx_hook_add_t)(uc_engine *uc, uc_hook *hh, int type, void *callback,
                                      void *user_data, uint64_t begin, uint64_t end, ...) nogil
    ctypedef uc_err (*syx_hook_del_t)(uc_engine *uc, uc_hook hh) nogil
    ctypedef uc_err (*syx_emu_stop_t)(uc_engine *uc) nogil
    ctypedef uc_err (*syx_ctl_t)(uc_engine *uc, int control, ...) nogil
    int SYX_CTL_W(int t, int n)
