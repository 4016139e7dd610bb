"""The busybox applet corpus on aarch64 (issue 16): the same cases as
``test_busybox_corpus.py`` (x86_64 against native), run from busybox-static:arm64 under the
real ``syxdbg run`` and under qemu-aarch64 (the oracle), each in a fresh copy of the same
small tree, compared by stdout, stderr, exit status and the tree they leave.

The package is not installed: CI (``.ci/run``) downloads the .deb (``apt-get download
busybox-static:arm64`` into ``~/.cache/syxdbg-tests/debs``, or ``$SYXDBG_TEST_DEBS``) and
this test extracts it with ``dpkg-deb -x``.

The bar: >= 98% of the invocations equal. Known differences are listed with their reason
in ``KNOWN_DIFFERENT`` (and docs/linux.md); a listed case that becomes equal, or a new
difference, fails the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import progs
import pytest
import test_busybox_corpus as corpus

#: Where CI leaves downloaded packages (see .ci/run).
DEBS = Path(os.environ.get("SYXDBG_TEST_DEBS",
                           Path.home() / ".cache" / "syxdbg-tests" / "debs"))

KNOWN_DIFFERENT: dict[str, str] = {
    "tar gz round trip": "busybox tar -z runs gzip as a child process, found on PATH: the "
    "host's x86-64 /bin/gzip. qemu-user hands the exec to the host kernel, which runs it; "
    "syxdbg's aarch64 machine runs aarch64 programs only, so the exec fails with ENOEXEC "
    "as on an aarch64 Linux without binfmt_misc (tar: can't execute 'gzip': Exec format "
    "error)",
}


def _busybox(tmp: Path) -> Path:
    debs = sorted(DEBS.glob("busybox-static_*_arm64.deb"))
    if not debs:
        pytest.fail(f"no busybox-static arm64 package in {DEBS}: run "
                    f"dpkg --add-architecture arm64 && apt-get update && (cd {DEBS} && "
                    "apt-get download busybox-static:arm64), as .ci/run does")
    dpkg = shutil.which("dpkg-deb")
    assert dpkg, "dpkg-deb is needed to extract the package"
    root = tmp / "busybox-arm64"
    subprocess.run([dpkg, "-x", str(debs[-1]), str(root)], check=True)
    exe = root / "bin" / "busybox"
    assert exe.is_file() and not progs.is_dynamic(str(exe))
    return exe


def _qemu() -> str:
    qemu = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
    if qemu is None:
        pytest.fail("qemu-aarch64 is not installed (apt-get install qemu-user)")
    return qemu


def test_busybox_arm64_applets_equal_qemu(tmp_path: Path) -> None:
    busybox = _busybox(tmp_path)
    qemu = _qemu()

    # qemu-user hands its environment to the guest in reverse order: given reversed, the
    # guest sees it in the order a native run (and syxdbg's -E options) give (busybox env).
    qemu_env = dict(reversed(list(corpus.ENV.items())))

    def oracle(argv: list[str], cwd: Path, stdin: bytes) -> tuple[bytes, bytes, int]:
        p = subprocess.run([qemu, str(busybox), *argv], input=stdin, capture_output=True,
                           cwd=cwd, env=qemu_env, timeout=60, check=False)
        return p.stdout, p.stderr, p.returncode

    def emulated(argv: list[str], cwd: Path, stdin: bytes) -> tuple[bytes, bytes, int]:
        cmd = [sys.executable, "-m", "syxdbg", "run", "--clear-env"]
        for name, value in corpus.ENV.items():
            cmd += ["-E", f"{name}={value}"]
        cmd += ["--argv0", str(busybox), str(busybox), *argv]
        p = subprocess.run(cmd, input=stdin, capture_output=True, cwd=cwd, timeout=300,
                           check=False)
        return p.stdout, p.stderr, p.returncode

    work = tmp_path / "corpus"
    invocations = sum(len(c[1]) for c in corpus.CASES)
    different: dict[str, str] = {}
    equal_invocations = 0
    for case in corpus.CASES:
        # The same directory for both runs: absolute paths in outputs (realpath) agree.
        native, ntree = corpus._run_case(case, work, oracle)
        shutil.rmtree(work / "w")
        emu, etree = corpus._run_case(case, work, emulated)
        shutil.rmtree(work / "w")
        same = [n == e for n, e in zip(native, emu, strict=True)]
        equal_invocations += sum(same)
        if not all(same) or ntree != etree:
            i = same.index(False) if not all(same) else -1
            what = (f"{case[1][i]}: qemu {native[i]!r} emulated {emu[i]!r}" if i >= 0
                    else f"trees differ: {sorted(set(ntree) ^ set(etree))!r}")
            different[case[0]] = what
    rate = equal_invocations / invocations
    print(f"busybox arm64 corpus: {equal_invocations}/{invocations} invocations equal "
          f"({rate:.1%}), {len(corpus.CASES) - len(different)}/{len(corpus.CASES)} cases")
    unexplained = {k: v for k, v in different.items() if k not in KNOWN_DIFFERENT}
    assert not unexplained, "\n".join(f"{k}: {v}" for k, v in unexplained.items())
    stale = set(KNOWN_DIFFERENT) - set(different)
    assert not stale, f"known differences that are gone (update the list and docs): {stale}"
    assert rate >= 0.98
