"""Build the Cython extensions.

They include libunicorn's headers from the unicorn wheel (a build requirement) and call
libunicorn through function pointers taken from the binding at run time, so nothing links
against the library.
"""

import os

import unicorn
from Cython.Build import cythonize
from setuptools import Extension, setup

UC_INCLUDE = os.path.join(os.path.dirname(unicorn.__file__), "include")
DEBUG = os.environ.get("SYXDBG_DEBUG") == "1"

extensions = [
    Extension(
        name,
        [path],
        include_dirs=[UC_INCLUDE],
        define_macros=[("SYXDBG_DEBUG", "1")] if DEBUG else [],
        extra_compile_args=["-O2", "-Wno-unused-function"],
    )
    for name, path in [
        ("syxdbg.machine._native", "syxdbg/machine/_native.pyx"),
        ("syxdbg.machine._probes", "syxdbg/machine/_probes.pyx"),
        ("syxdbg.snapshot._core", "syxdbg/snapshot/_core.pyx"),
    ]
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["."],
        compiler_directives={"language_level": "3", "embedsignature": True},
    )
)
