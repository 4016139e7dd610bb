"""C types through the Variables view: bit-fields (signed and unsigned), unions, enums,
bool, char arrays, two-dimensional arrays, pointers to structs, on both architectures.
The program is written here and built by the real cross compilers (static, -O0 -g)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import progs
import pytest
from conftest import start
from dapclient import Client

SOURCE = r"""
#include <stdbool.h>
#include <stdio.h>

enum colour { RED, GREEN = 5, BLUE };
struct flags { unsigned a : 3; int b : 5; unsigned c : 1; unsigned long d : 40; };
union word { unsigned int u; unsigned char bytes[4]; };
struct node { int value; struct node *next; };

struct flags f = { 5, -7, 1, 123456789012UL };
union word w = { .u = 0x11223344 };
enum colour col = BLUE;
bool yes = true;
char name[16] = "syxdbg";
int grid[2][3] = { { 1, 2, 3 }, { 4, 5, 6 } };
struct node second = { 2, 0 };
struct node first = { 1, &second };

int main(void)
{
    struct node *p = &first;
    int total = 0;
    while (p) {
        total += p->value;
        p = p->next;
    }
    printf("%d\n", total); /* STOP */
    return 0;
}
"""


@pytest.mark.parametrize("arch", ["gcc", "aarch64"])
def test_c_types(adapter: Callable[..., Client], require_tool: Callable[[str], str],
                 tmp_path: Path, arch: str) -> None:
    base = progs.TOOLCHAINS[arch]
    require_tool(base.cc)
    src = tmp_path / "types.c"
    src.write_text(SOURCE)
    exe = tmp_path / "types"
    tc = progs.Toolchain(f"{arch}-types", base.cc, base.arch, ("-static", "-O0", "-g"))
    subprocess.run(tc.command(src, exe), check=True, capture_output=True, timeout=300)
    line = next(n for n, t in enumerate(SOURCE.splitlines()) if "STOP" in t)
    c = adapter()
    start(c, {"program": str(exe), "env": {}, "clearEnv": True},
          breakpoints={str(src): [{"line": line}]})
    assert c.stopped()["reason"] == "breakpoint"
    top = c.frames()[0]
    scopes = c.scopes(top["id"])
    local = c.variables(scopes["Locals"])
    assert local["total"]["value"] == "3" and local["p"]["value"] == "0x0"
    glob = c.variables(scopes["Globals"])
    flags = c.variables(glob["f"]["variablesReference"])
    assert {k: v["value"] for k, v in flags.items()} == {
        "a": "5", "b": "-7", "c": "1", "d": "123456789012"}
    word = c.variables(glob["w"]["variablesReference"])
    assert word["u"]["value"] == str(0x11223344)
    assert [b["value"].split()[0] for b in c.variables(
        word["bytes"]["variablesReference"]).values()] == ["68", "51", "34", "17"]
    assert glob["col"]["value"] == "BLUE" and glob["col"]["type"] == "enum colour"
    assert glob["yes"]["value"] == "true"
    assert glob["name"]["value"] == '"syxdbg"' and glob["name"]["type"] == "char[16]"
    assert glob["grid"]["type"] == "int[2][3]"
    rows = c.variables(glob["grid"]["variablesReference"])
    assert rows["[1]"]["type"] == "int[3]"
    assert [v["value"] for v in c.variables(rows["[1]"]["variablesReference"]).values()] \
        == ["4", "5", "6"]
    assert c.evaluate("grid[1][2]")["body"]["result"] == "6"
    assert c.evaluate("first.next->value")["body"]["result"] == "2"
    assert c.evaluate("f.b")["body"]["result"] == "-7"
    nxt = c.variables(c.variables(glob["first"]["variablesReference"])["next"][
        "variablesReference"])
    assert c.variables(nxt["*next"]["variablesReference"])["value"]["value"] == "2"
