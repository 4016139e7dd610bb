# One table of libunicorn function pointers, filled from the binding's ctypes CDLL.

from syxdbg.includes.unicorn cimport (syx_ctl_t, syx_emu_stop_t, syx_hook_add_t,
                                      syx_hook_del_t)

ctypedef struct UcApi:
    syx_hook_add_t hook_add
    syx_hook_del_t hook_del
    syx_emu_stop_t emu_stop
    syx_ctl_t ctl
