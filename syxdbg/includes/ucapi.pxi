# Included by each Cython module that calls libunicorn: fills a UcApi from ctypes.

import ctypes as _ctypes

from unicorn.unicorn_py3.unicorn import uclib as _uclib


cdef int _ucapi_fill(UcApi *api) except -1:
    def addr(name):
        return _ctypes.cast(getattr(_uclib, name), _ctypes.c_void_p).value
    api.hook_add = <syx_hook_add_t><size_t>addr("uc_hook_add")
    api.hook_del = <syx_hook_del_t><size_t>addr("uc_hook_del")
    api.emu_stop = <syx_emu_stop_t><size_t>addr("uc_emu_stop")
    api.ctl = <syx_ctl_t><size_t>addr("uc_ctl")
    return 0


cdef inline size_t _uc_handle(object uc) except 0:
    """The raw ``uc_engine*`` behind a ``unicorn.Uc`` object."""
    return <size_t>uc._uch.value
