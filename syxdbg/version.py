"""The version of syxdbg, in one place: ``syxdbg --version``, ``syxdbg.__version__`` and the
package metadata (pyproject's dynamic version) all read it from here.

It is a module of its own, importing nothing, so that reading the version loads nothing else.
"""

__version__ = "0.1.0"
