"""Loading programs into a :class:`~syxdbg.machine.Machine`.

* :func:`load_elf` maps a static Linux executable (ET_EXEC or static-PIE) and builds the
  initial process stack exactly as Linux's ``create_elf_tables`` does.
* :func:`load_raw` maps a raw firmware blob at a given base and entry.

Both return a :class:`LoadedImage` describing what was loaded; the session keeps it
(``session.image``) and the Linux plugin takes ``brk`` and the process facts from it.
"""

from .elf import ElfInfo, inspect_elf, load_elf
from .image import LoadedImage, Segment
from .raw import load_raw

__all__ = ["ElfInfo", "LoadedImage", "Segment", "inspect_elf", "load_elf", "load_raw"]
