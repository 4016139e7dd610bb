# C types shared by the machine's Cython modules (_native, _probes); declarations only.

from libc.stdint cimport uint64_t


# Where RunCore last corrected its count because QEMU left a block part-way (see
# ``_left_early`` in _native.pyx): ``count`` goes up by one each time, ``address`` is the
# start of the block QEMU resumed at. Recorders that watch the same blocks (_probes) compare
# ``count`` with the value they saw last to learn that the previous block did not finish.
ctypedef struct EarlyExit:
    uint64_t count
    uint64_t address
