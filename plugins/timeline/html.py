"""The timeline report as one self-contained HTML page: inline CSS, script and data (JSON in a
``<script type="application/json">``); nothing is fetched when it is viewed.

The page draws on a canvas, per pixel column: individual events (system calls, watched
writes, checkpoints, the end) are found by binary search among the visible ones, function
activity is one rectangle per active bucket, so zooming and panning a billion-instruction
run costs what the screen shows. Below the canvas, tables list the system calls and the
watched writes in the visible range (at most :data:`TABLE_ROWS` rows each), with the
command that goes there.
"""

from __future__ import annotations

import html
import json
import shlex
from typing import Any

from .collect import FaultMark, Report, Watch

__all__ = ["goto_commands", "render", "report_data"]

#: Functions drawn as rows (the busiest ones; the others are counted in a note).
MAX_FUNCTION_ROWS = 80


def goto_commands(report: Report) -> dict[str, str]:
    """Templates (``{N}`` is the position) of the commands that take a user to a position."""
    if report.recording is not None:
        rec = shlex.quote(report.recording)
        return {"gdb": f"syxdbg replay --ex 'monitor goto {{N}}' {rec}",
                "shell": f"syxdbg replay --shell --ex 'goto {{N}}' {rec}"}
    return {"gdb": "monitor goto {N}", "shell": "goto {N}"}


def _value(data: bytes) -> str:
    if not data:
        return ""
    hexed = data.hex()
    if len(data) in (1, 2, 4, 8):
        u = int.from_bytes(data, "little")
        s = int.from_bytes(data, "little", signed=True)
        return f"{s}" if s == u else f"{s} ({u:#x})"
    return hexed


def _watch_data(w: Watch) -> dict[str, Any]:
    return {
        "text": w.text, "address": w.address, "length": w.length, "truncated": w.truncated,
        "pos": [x.position for x in w.writes], "pc": [x.pc for x in w.writes],
        "addr": [x.address for x in w.writes],
        "old": [_value(x.old) for x in w.writes], "new": [_value(x.new) for x in w.writes],
        "lane": [x.lane for x in w.writes],
    }


def _ret(result: int | None) -> str:
    if result is None:
        return "(does not return)"
    if -4096 < result < 0:
        import errno

        return f"-{errno.errorcode.get(-result, str(-result))}"
    return hex(result) if result > 0xFFFF else str(result)


def report_data(report: Report) -> dict[str, Any]:
    """The page's data (what the script draws); JSON-serialisable."""
    funcs = sorted(report.functions, key=lambda f: -f.weight)[:MAX_FUNCTION_ROWS]
    keep = {id(f) for f in funcs}
    ordered = [f for f in report.functions if id(f) in keep]
    b = report.buckets
    calls = report.syscalls
    return {
        "program": report.program, "arch": report.arch, "start": report.start,
        "end": report.end, "bucketSize": b.size, "bucketCount": len(b),
        "edgePcs": report.edge_pcs,
        "disasm": {str(k): v for k, v in report.disasm.items()},
        "lanes": report.lanes,
        "functions": [{"name": f.name, "addr": f.start, "b": f.buckets, "n": f.blocks}
                      for f in ordered],
        "functionsHidden": max(0, len(report.functions) - len(ordered)),
        "syscalls": {"pos": [c.position for c in calls], "pc": [c.pc for c in calls],
                     "name": [c.name for c in calls],
                     "args": [", ".join(c.args) for c in calls],
                     "ret": [_ret(c.result) for c in calls],
                     "lane": [c.lane for c in calls]},
        "syscallsDropped": report.syscalls_dropped,
        "syscallCounts": report.syscall_counts,
        "laneSyscallCounts": {str(lane): {"b": b, "n": n}
                              for lane, (b, n) in report.lane_syscall_counts.items()},
        "checkpoints": [[p, k] for p, k in report.checkpoints],
        "faults": {"pos": [f.position for f in report.faults],
                   "pc": [f.pc for f in report.faults],
                   "text": [_fault_text(f) for f in report.faults],
                   "signal": [_signal_name(f.signal) for f in report.faults],
                   "handled": [f.handled for f in report.faults],
                   "lane": [f.lane for f in report.faults]},
        "procEvents": {"pos": [e.position for e in report.process_events],
                       "pc": [e.pc for e in report.process_events],
                       "kind": [e.kind for e in report.process_events],
                       "pid": [e.pid for e in report.process_events],
                       "text": [e.text for e in report.process_events],
                       "lane": [e.lane for e in report.process_events],
                       "byLane": [e.by_lane for e in report.process_events]},
        "finish": {"text": report.end_text, "kind": report.end_kind, "pc": report.end_pc,
                "position": report.end},
        "watches": [_watch_data(w) for w in report.watches],
        "recording": report.recording,
        "commands": goto_commands(report),
        "notes": report.notes,
        "seconds": round(report.seconds, 3),
    }


def _signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _fault_text(f: FaultMark) -> str:
    what = f" ({f.detail})" if f.detail else ""
    then = "to its handler" if f.handled else "the process ended"
    return f"{_signal_name(f.signal)} at address {f.address:#x}{what}: {then}"


def _json(data: dict[str, Any]) -> str:
    # Inside <script>: no "</" may close the element early.
    return json.dumps(data, separators=(",", ":")).replace("</", "<\\/").replace(
        "\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render(report: Report) -> str:
    """The whole page."""
    title = f"syxdbg timeline: {report.program.rsplit('/', 1)[-1]}"
    return (PAGE.replace("@TITLE@", html.escape(title))
            .replace("@DATA@", _json(report_data(report)))
            .replace("@CSS@", CSS).replace("@SCRIPT@", SCRIPT))


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>@TITLE@</title>
<style>@CSS@</style>
</head>
<body>
<header>
 <h1 id="title">@TITLE@</h1>
 <p id="summary"></p>
 <p id="notes"></p>
</header>
<div id="toolbar">
 <button id="zoom-in" title="zoom in (+, wheel, double-click)">+</button>
 <button id="zoom-out" title="zoom out (-)">&minus;</button>
 <button id="zoom-reset" title="the whole run (0)">whole run</button>
 <span id="range"></span>
 <span id="cursor"></span>
</div>
<div id="chart"><canvas id="canvas"></canvas><div id="tip" hidden></div></div>
<section id="details"><h2>Selection</h2><div id="selection">Hover over the timeline;
click an element to keep it here. Drag to pan, wheel to zoom.</div></section>
<section><h2>System calls <span class="sub" id="syscalls-count"></span></h2>
<table id="syscalls"><thead><tr><th>position</th><th>call</th><th>result</th>
<th>instruction</th><th>go there</th></tr></thead><tbody></tbody></table></section>
<section id="watches"></section>
<section id="process-section" hidden><h2>Processes and threads</h2>
<ul id="lanes"></ul><ul id="processes"></ul></section>
<section><h2>Checkpoints, faults and end</h2><ul id="marks"></ul></section>
<script type="application/json" id="timeline-data">@DATA@</script>
<script>@SCRIPT@</script>
</body>
</html>
"""

CSS = """
:root { --bg:#fbfbfd; --fg:#1d2430; --mute:#6b7280; --line:#d9dde5; --sys:#2563eb;
  --ck:#9333ea; --w:#dc2626; --end:#111827; --fn:#059669; --lane:#eef1f6;
  --fork:#0891b2; --exec:#d97706; --exit:#4b5563; --fault:#c026d3; }
* { box-sizing: border-box; }
body { margin:0; font:13px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif; color:var(--fg);
  background:var(--bg); }
header { padding:12px 18px 4px; }
h1 { font-size:18px; margin:0 0 4px; }
h2 { font-size:14px; margin:14px 0 6px; }
.sub { color:var(--mute); font-weight:normal; }
#summary, #notes { margin:2px 0; color:var(--mute); }
#toolbar { display:flex; gap:8px; align-items:center; padding:6px 18px;
  border-top:1px solid var(--line); border-bottom:1px solid var(--line); background:#fff;
  position:sticky; top:0; z-index:2; }
#toolbar button { font:inherit; padding:2px 10px; border:1px solid var(--line);
  background:#f3f4f6; border-radius:4px; cursor:pointer; }
#toolbar span { color:var(--mute); font-variant-numeric:tabular-nums; }
#chart { position:relative; margin:0 18px; }
#canvas { display:block; width:100%; cursor:grab; background:#fff;
  border:1px solid var(--line); border-top:none; }
#canvas.dragging { cursor:grabbing; }
#tip { position:absolute; pointer-events:none; background:#111827; color:#f9fafb;
  padding:6px 8px; border-radius:4px; font-size:12px; max-width:560px; z-index:3;
  white-space:pre-wrap; box-shadow:0 2px 8px rgba(0,0,0,.25); }
#tip code, #selection code { font-family:ui-monospace,Menlo,Consolas,monospace; }
section { padding:0 18px; }
#selection { background:#fff; border:1px solid var(--line); border-radius:4px; padding:8px;
  white-space:pre-wrap; min-height:3em; }
table { border-collapse:collapse; width:100%; background:#fff; }
th, td { border:1px solid var(--line); padding:2px 6px; text-align:left; vertical-align:top; }
th { background:#f3f4f6; font-weight:600; }
td.num { text-align:right; font-variant-numeric:tabular-nums; }
td code { font-family:ui-monospace,Menlo,Consolas,monospace; font-size:12px;
  word-break:break-all; }
tr:hover td { background:#f5f8ff; }
"""

SCRIPT = r"""
(function () {
"use strict";
const D = JSON.parse(document.getElementById("timeline-data").textContent);
const canvas = document.getElementById("canvas");
const tip = document.getElementById("tip");
const g = canvas.getContext("2d");
const LABEL = 190, ROW = 18, HEAD = 26, TABLE_ROWS = 500;
const css = getComputedStyle(document.documentElement);
const color = (name) => css.getPropertyValue(name).trim() || "#888";
const fmt = (n) => Math.round(n).toLocaleString("en-US");
const hex = (n) => "0x" + n.toString(16);
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;",
  ">": "&gt;", '"': "&quot;"})[c]);
const insn = (pc) => (pc === null || pc === undefined) ? "" :
  (D.disasm[String(pc)] || hex(pc));
const goto = (pos) => D.commands.gdb.replace("{N}", String(pos));
const gotoShell = (pos) => D.commands.shell.replace("{N}", String(pos));

// Rows: per lane (a process or thread: its system calls and the writes it made), then
// what belongs to the whole run (checkpoints, the end, function activity).
const rows = [];
function inLane(lanes, n, id) {
  const idx = [];
  for (let k = 0; k < n; k++) if ((lanes ? lanes[k] : 0) === id) idx.push(k);
  return idx;
}
function eventRow(row, idx, pos) { row.idx = idx; row.pos = idx.map((k) => pos[k]); return row; }
const P = D.procEvents, F = D.faults;
const procColor = {fork: color("--fork"), exec: color("--exec"), exit: color("--exit")};
for (const lane of D.lanes) {
  rows.push({kind: "lane", label: lane.label});
  // (a fork is drawn in the child's lane and in the lane of the thread that forked)
  const pe = [];
  for (let k = 0; k < P.pos.length; k++)
    if (P.lane[k] === lane.id || P.byLane[k] === lane.id) pe.push(k);
  if (pe.length) rows.push(eventRow({kind: "proc", label: "fork, exec, exit"}, pe, P.pos));
  const fe = inLane(F.lane, F.pos.length, lane.id);
  if (fe.length) rows.push(eventRow({kind: "fault", label: "faults", color: color("--fault")},
                                    fe, F.pos));
  const s = D.syscalls;
  rows.push(eventRow({kind: "sys", label: "system calls", color: color("--sys"),
                      lane: lane.id}, inLane(s.lane, s.pos.length, lane.id), s.pos));
  D.watches.forEach((w, i) => rows.push(eventRow(
    {kind: "w", label: "writes: " + w.text, watch: i, color: color("--w")},
    inLane(w.lane, w.pos.length, lane.id), w.pos)));
}
rows.push({kind: "lane", label: "the whole run"});
rows.push({kind: "ck", label: "checkpoints", pos: D.checkpoints.map((c) => c[0]),
           color: color("--ck")});
rows.push({kind: "end", label: "end of run", pos: [D.finish.position], color: color("--end")});
rows.push({kind: "head", label: "functions (" + D.functions.length +
           (D.functionsHidden ? ", " + D.functionsHidden + " quieter ones hidden" : "") + ")"});
D.functions.forEach((f, i) => rows.push({kind: "fn", label: f.name, fn: i,
                                         color: color("--fn")}));

let v0 = D.start, v1 = Math.max(D.end, D.start + 1);
let width = 800, height = HEAD + rows.length * ROW + 4;
let pinned = null;

function plotWidth() { return Math.max(10, width - LABEL - 8); }
function xOf(pos) { return LABEL + (pos - v0) / (v1 - v0) * plotWidth(); }
function posOf(x) { return v0 + (x - LABEL) / plotWidth() * (v1 - v0); }
function lowerBound(a, v) {
  let lo = 0, hi = a.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (a[mid] < v) lo = mid + 1; else hi = mid; }
  return lo;
}
function bucketStart(i) { return D.start + i * D.bucketSize; }
function bucketEnd(i) { return Math.min(D.end, bucketStart(i + 1)); }

function resize() {
  const dpr = window.devicePixelRatio || 1;
  width = canvas.parentElement.clientWidth || 800;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  canvas.style.height = height + "px";
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  draw();
}

function niceStep(span, n) {
  const raw = span / Math.max(1, n), p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return Math.max(1, m * p);
  return Math.max(1, 10 * p);
}

function draw() {
  g.clearRect(0, 0, width, height);
  g.font = "12px system-ui, sans-serif";
  g.textBaseline = "middle";
  // axis
  const step = niceStep(v1 - v0, plotWidth() / 110);
  g.fillStyle = "#6b7280"; g.strokeStyle = "#e5e7eb";
  for (let t = Math.ceil(v0 / step) * step; t <= v1; t += step) {
    const x = Math.round(xOf(t)) + 0.5;
    g.beginPath(); g.moveTo(x, HEAD - 6); g.lineTo(x, height); g.stroke();
    g.fillText(fmt(t), x + 3, 10);
  }
  g.save();
  g.beginPath(); g.rect(LABEL, 0, plotWidth() + 1, height); g.clip();
  rows.forEach((r, i) => drawRow(r, HEAD + i * ROW));
  g.restore();
  rows.forEach((r, i) => {
    const y = HEAD + i * ROW;
    if (r.kind === "lane" || r.kind === "head") {
      g.fillStyle = "#eef1f6"; g.fillRect(0, y, LABEL - 4, ROW);
      g.fillStyle = "#1d2430"; g.font = "600 12px system-ui, sans-serif";
    } else { g.fillStyle = "#374151"; g.font = "12px system-ui, sans-serif"; }
    let text = r.label;
    while (text.length > 3 && g.measureText(text).width > LABEL - 12) text = text.slice(0, -2);
    if (text !== r.label) text += "\u2026";
    g.fillText(text, 6, y + ROW / 2);
  });
  g.font = "12px system-ui, sans-serif";
  document.getElementById("range").textContent =
    "positions " + fmt(v0) + " \u2013 " + fmt(v1) + " (" + fmt(v1 - v0) + " instructions)";
}

function drawEvents(pos, y, col) {
  const lo = lowerBound(pos, v0), hi = lowerBound(pos, v1 + 1);
  g.fillStyle = col;
  let last = -1e9;
  for (let k = lo; k < hi; k++) {
    const x = Math.floor(xOf(pos[k]));
    if (x === last) continue;
    last = x;
    g.fillRect(x - 1, y + 3, 3, ROW - 6);
  }
}

function drawRow(r, y) {
  if (r.kind === "lane" || r.kind === "head") {
    g.fillStyle = "#f6f7fa"; g.fillRect(LABEL, y, plotWidth() + 1, ROW); return;
  }
  if (r.kind === "fn") {
    const f = D.functions[r.fn];
    let max = 1; for (const n of f.n) if (n > max) max = n;
    const lo = lowerBound(f.b, Math.floor((v0 - D.start) / D.bucketSize));
    let lastPx = -1e9;
    for (let k = lo; k < f.b.length; k++) {
      const b = f.b[k];
      if (bucketStart(b) > v1) break;
      const x0 = xOf(bucketStart(b)), x1 = xOf(bucketEnd(b));
      // Buckets narrower than a pixel: one rectangle per pixel column.
      const px = Math.floor(x0);
      if (x1 - x0 < 1 && px === lastPx) continue;
      lastPx = px;
      g.globalAlpha = 0.35 + 0.65 * f.n[k] / max;
      g.fillStyle = r.color;
      g.fillRect(x0, y + 3, Math.max(1, x1 - x0), ROW - 6);
    }
    g.globalAlpha = 1;
    return;
  }
  if (r.kind === "sys") drawDensity(y, r.lane);
  if (r.kind === "proc") { drawProcessEvents(r, y); return; }
  drawEvents(r.pos, y, r.color);
}

// Forks, execs and ends: a diamond per event, coloured by kind (few: drawn one by one).
function drawProcessEvents(r, y) {
  const lo = lowerBound(r.pos, v0), hi = lowerBound(r.pos, v1 + 1);
  for (let k = lo; k < hi; k++) {
    const x = xOf(r.pos[k]), m = y + ROW / 2;
    g.fillStyle = procColor[P.kind[r.idx[k]]] || "#888";
    g.beginPath(); g.moveTo(x, m - 6); g.lineTo(x + 5, m); g.lineTo(x, m + 6);
    g.lineTo(x - 5, m); g.closePath(); g.fill();
  }
}

// System calls per bucket, as a light band under the individual marks (all of them, also
// those beyond the ones listed one by one): the lane's own when there are several lanes.
function laneCounts(lane) {
  if (!Object.keys(D.laneSyscallCounts).length) return {b: null, n: D.syscallCounts};
  return D.laneSyscallCounts[String(lane)] || {b: [], n: []};
}
function drawDensity(y, lane) {
  const c = laneCounts(lane);
  let max = 1; for (const n of c.n) if (n > max) max = n;
  g.fillStyle = "#93c5fd";
  const first = Math.max(0, Math.floor((v0 - D.start) / D.bucketSize));
  const lo = c.b ? lowerBound(c.b, first) : first;
  for (let k = lo; k < c.n.length; k++) {
    const b = c.b ? c.b[k] : k;
    if (bucketStart(b) > v1) break;
    if (!c.n[k]) continue;
    const x0 = xOf(bucketStart(b)), x1 = xOf(bucketEnd(b));
    g.globalAlpha = 0.25 + 0.5 * Math.log(1 + c.n[k]) / Math.log(1 + max);
    g.fillRect(x0, y + 1, Math.max(1, x1 - x0), ROW - 2);
  }
  g.globalAlpha = 1;
}

// -- hit testing ------------------------------------------------------------------------
function nearest(pos, x) {
  const slack = 4 * (v1 - v0) / plotWidth();
  const p = posOf(x);
  let k = lowerBound(pos, p - slack), best = -1, dist = 1e300;
  for (; k < pos.length && pos[k] <= p + slack; k++) {
    const d = Math.abs(pos[k] - p);
    if (d < dist) { dist = d; best = k; }
  }
  return best;
}

function describe(x, y) {
  if (x < LABEL) return null;
  const i = Math.floor((y - HEAD) / ROW);
  const r = rows[i];
  const p = Math.max(D.start, Math.min(D.end, Math.round(posOf(x))));
  const b = Math.min(D.bucketCount - 1, Math.max(0, Math.floor((p - D.start) / D.bucketSize)));
  const near = "bucket " + fmt(bucketStart(b)) + "\u2013" + fmt(bucketEnd(b)) +
    " starts at " + insn(D.edgePcs[b]);
  if (!r) return null;
  if (r.kind === "sys") {
    const k = nearest(r.pos, x);
    if (k < 0) {
      const c = laneCounts(r.lane);
      const at = c.b ? lowerBound(c.b, b) : b;
      const n = (c.b ? (c.b[at] === b ? c.n[at] : 0) : c.n[b]) || 0;
      return n ? {pos: bucketStart(b), title: n + " system call(s) in positions " +
                  fmt(bucketStart(b)) + "\u2013" + fmt(bucketEnd(b)), insn: near} : null;
    }
    const s = D.syscalls, j = r.idx[k];
    return {pos: s.pos[j], title: s.name[j] + "(" + s.args[j] + ") = " + s.ret[j],
            insn: insn(s.pc[j])};
  }
  if (r.kind === "proc") {
    const k = nearest(r.pos, x);
    if (k < 0) return null;
    const j = r.idx[k];
    return {pos: P.pos[j], title: P.kind[j] + ": " + P.text[j], insn: insn(P.pc[j])};
  }
  if (r.kind === "fault") {
    const k = nearest(r.pos, x);
    if (k < 0) return null;
    const j = r.idx[k];
    return {pos: F.pos[j], title: "fault: " + F.text[j], insn: insn(F.pc[j])};
  }
  if (r.kind === "ck") {
    const k = nearest(r.pos, x);
    if (k < 0) return null;
    return {pos: r.pos[k], title: D.checkpoints[k][1] + " at position " + fmt(r.pos[k]),
            insn: ""};
  }
  if (r.kind === "w") {
    const k = nearest(r.pos, x);
    if (k < 0) return null;
    const w = D.watches[r.watch];
    const j = r.idx[k];
    return {pos: w.pos[j], title: "write to " + w.text + " (" + hex(w.addr[j]) + "): " +
            w.old[j] + " \u2192 " + w.new[j], insn: insn(w.pc[j])};
  }
  if (r.kind === "end") {
    const k = nearest(r.pos, x);
    if (k < 0) return null;
    return {pos: D.finish.position, title: D.finish.text, insn: insn(D.finish.pc)};
  }
  if (r.kind === "fn") {
    const f = D.functions[r.fn];
    const k = lowerBound(f.b, b);
    if (f.b[k] !== b) return {pos: p, title: f.name + " did not run here", insn: near,
                              noGo: true};
    return {pos: bucketStart(b), title: f.name + " ran in positions " + fmt(bucketStart(b)) +
            "\u2013" + fmt(bucketEnd(b)) + " (" + f.n[k] + " distinct blocks)",
            insn: near, fn: f.name};
  }
  return {pos: p, title: "position \u2248 " + fmt(p), insn: near, noGo: true};
}

function text(d) {
  let out = d.title + "\nposition " + fmt(d.pos);
  if (d.insn) out += "\n" + d.insn;
  if (!d.noGo) {
    out += "\n$ " + goto(d.pos);
    if (d.fn) out += "   (then: tbreak " + d.fn + ", continue)";
  }
  return out;
}

function showTip(ev) {
  const rect = canvas.getBoundingClientRect();
  const x = ev.clientX - rect.left, y = ev.clientY - rect.top;
  const p = Math.round(posOf(x));
  document.getElementById("cursor").textContent = x >= LABEL ? "cursor: position " + fmt(p) : "";
  const d = describe(x, y);
  if (!d) { tip.hidden = true; return null; }
  tip.textContent = text(d);
  tip.hidden = false;
  const left = Math.min(x + 14, width - tip.offsetWidth - 4);
  tip.style.left = Math.max(0, left) + "px";
  tip.style.top = (y + 16) + "px";
  return d;
}

// -- zoom and pan -----------------------------------------------------------------------
function setView(a, b) {
  const minSpan = 20, total = Math.max(D.end - D.start, 1);
  let span = Math.max(minSpan, Math.min(b - a, total));
  a = Math.max(D.start, Math.min(a, D.start + total - span));
  v0 = a; v1 = a + span;
  scheduleDraw();
}
let pending = false, tablesDue = 0;
function scheduleDraw() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; draw(); });
  clearTimeout(tablesDue);
  tablesDue = setTimeout(tables, 150);
}
function zoom(factor, atX) {
  const p = posOf(atX === undefined ? LABEL + plotWidth() / 2 : atX);
  setView(p - (p - v0) * factor, p + (v1 - p) * factor);
}
canvas.addEventListener("wheel", (ev) => {
  ev.preventDefault();
  const rect = canvas.getBoundingClientRect();
  if (ev.shiftKey || Math.abs(ev.deltaX) > Math.abs(ev.deltaY)) {
    const d = (ev.deltaX || ev.deltaY) / plotWidth() * (v1 - v0);
    setView(v0 + d, v1 + d);
  } else {
    zoom(Math.pow(1.0015, ev.deltaY), ev.clientX - rect.left);
  }
}, {passive: false});
let drag = null;
canvas.addEventListener("mousedown", (ev) => {
  drag = {x: ev.clientX, v0: v0, v1: v1, moved: false};
  canvas.classList.add("dragging");
});
window.addEventListener("mousemove", (ev) => {
  if (drag) {
    const dx = ev.clientX - drag.x;
    if (Math.abs(dx) > 2) drag.moved = true;
    const d = -dx / plotWidth() * (drag.v1 - drag.v0);
    setView(drag.v0 + d, drag.v1 + d);
  }
});
window.addEventListener("mouseup", (ev) => {
  if (drag && !drag.moved && ev.target === canvas) {
    const rect = canvas.getBoundingClientRect();
    const d = describe(ev.clientX - rect.left, ev.clientY - rect.top);
    if (d) select(d);
  }
  drag = null;
  canvas.classList.remove("dragging");
});
canvas.addEventListener("mousemove", showTip);
canvas.addEventListener("mouseleave", () => { tip.hidden = true; });
canvas.addEventListener("dblclick", (ev) => {
  const rect = canvas.getBoundingClientRect();
  zoom(0.5, ev.clientX - rect.left);
});
document.getElementById("zoom-in").onclick = () => zoom(0.5);
document.getElementById("zoom-out").onclick = () => zoom(2);
document.getElementById("zoom-reset").onclick = () => setView(D.start, D.end);
window.addEventListener("keydown", (ev) => {
  if (ev.target instanceof HTMLInputElement) return;
  const span = v1 - v0;
  if (ev.key === "+" || ev.key === "=") zoom(0.5);
  else if (ev.key === "-") zoom(2);
  else if (ev.key === "0") setView(D.start, D.end);
  else if (ev.key === "ArrowLeft") setView(v0 - span / 5, v1 - span / 5);
  else if (ev.key === "ArrowRight") setView(v0 + span / 5, v1 + span / 5);
});
window.addEventListener("resize", resize);

function select(d) {
  pinned = d;
  const el = document.getElementById("selection");
  el.innerHTML = "";
  const t = document.createElement("div");
  t.textContent = d.title + "\nposition " + fmt(d.pos) + (d.insn ? "\n" + d.insn : "");
  el.appendChild(t);
  if (!d.noGo) {
    for (const c of [goto(d.pos), gotoShell(d.pos)]) {
      const line = document.createElement("div");
      const code = document.createElement("code");
      code.textContent = c;
      line.append("$ ", code);
      el.appendChild(line);
    }
  }
}

// -- tables (the visible range) -----------------------------------------------------------
function tables() {
  const s = D.syscalls;
  const lo = lowerBound(s.pos, v0), hi = lowerBound(s.pos, v1 + 1);
  const body = document.querySelector("#syscalls tbody");
  const out = [];
  for (let k = lo; k < Math.min(hi, lo + TABLE_ROWS); k++) {
    out.push("<tr class=\"syscall\" data-position=\"" + s.pos[k] + "\" data-name=\"" +
      esc(s.name[k]) + "\"><td class=\"num\">" + fmt(s.pos[k]) + "</td><td><code>" +
      esc(s.name[k] + "(" + s.args[k] + ")") + "</code></td><td><code>" + esc(s.ret[k]) +
      "</code></td><td><code>" + esc(insn(s.pc[k])) + "</code></td><td><code>" +
      esc(goto(s.pos[k])) + "</code></td></tr>");
  }
  body.innerHTML = out.join("");
  document.getElementById("syscalls-count").textContent =
    (hi - lo) + " in view" + (hi - lo > TABLE_ROWS ? " (first " + TABLE_ROWS + " listed)" : "") +
    ", " + (s.pos.length + D.syscallsDropped) + " in the run";
  const ws = document.getElementById("watches");
  const parts = [];
  D.watches.forEach((w) => {
    const a = lowerBound(w.pos, v0), b = lowerBound(w.pos, v1 + 1);
    parts.push("<h2>Writes to " + esc(w.text) + " <span class=\"sub\">" + hex(w.address) +
      ", " + w.length + " bytes: " + (b - a) + " in view, " + w.pos.length + " in the run" +
      (w.truncated ? " (stopped collecting)" : "") + "</span></h2>");
    parts.push("<table class=\"writes\" data-watch=\"" + esc(w.text) + "\"><thead><tr>" +
      "<th>position</th><th>old</th><th>new</th><th>instruction</th><th>go there</th>" +
      "</tr></thead><tbody>");
    for (let k = a; k < Math.min(b, a + TABLE_ROWS); k++) {
      parts.push("<tr class=\"write\" data-position=\"" + w.pos[k] + "\"><td class=\"num\">" +
        fmt(w.pos[k]) + "</td><td><code>" + esc(w.old[k]) + "</code></td><td><code>" +
        esc(w.new[k]) + "</code></td><td><code>" + esc(insn(w.pc[k])) + "</code></td><td>" +
        "<code>" + esc(goto(w.pos[k])) + "</code></td></tr>");
    }
    parts.push("</tbody></table>");
  });
  ws.innerHTML = parts.join("");
}

function header() {
  const prog = D.program.split("/").pop();
  document.getElementById("summary").textContent = prog + " (" + D.arch + "), positions " +
    fmt(D.start) + "\u2013" + fmt(D.end) + ": " + (D.syscalls.pos.length + D.syscallsDropped) +
    " system calls, " + D.functions.length + " functions shown, " + D.checkpoints.length +
    " checkpoints, " + new Set(D.lanes.map((l) => l.process)).size + " process(es) in " +
    D.lanes.length + " lane(s)" + (P.pos.length ? ", " + P.pos.length +
    " fork/exec/exit events" : "") + (F.pos.length ? ", " + F.pos.length + " faults" : "") +
    "; " + D.finish.text + ". Buckets of " + fmt(D.bucketSize) +
    " instructions; report made in " + D.seconds + " s" +
    (D.recording ? "; recording " + D.recording : "") + ".";
  document.getElementById("notes").textContent = D.notes.join("; ");
  const marks = document.getElementById("marks");
  const items = D.checkpoints.map((c) => "<li class=\"checkpoint\" data-position=\"" + c[0] +
    "\">" + esc(c[1]) + " at position " + fmt(c[0]) + ": <code>" + esc(goto(c[0])) +
    "</code></li>");
  for (let k = 0; k < F.pos.length; k++) {
    items.push("<li class=\"fault\" data-position=\"" + F.pos[k] + "\" data-signal=\"" +
      esc(F.signal[k]) + "\" data-lane=\"" + F.lane[k] + "\" data-handled=\"" +
      (F.handled[k] ? 1 : 0) + "\">fault at position " + fmt(F.pos[k]) + ": " +
      esc(F.text[k]) + ": " + esc(insn(F.pc[k])) + ": <code>" + esc(goto(F.pos[k])) +
      "</code></li>");
  }
  items.push("<li class=\"end\" data-position=\"" + D.finish.position + "\" data-kind=\"" +
    esc(D.finish.kind) + "\">" + esc(D.finish.text) + (D.finish.pc !== null ? ": " +
    esc(insn(D.finish.pc)) : "") + ": <code>" + esc(goto(D.finish.position)) + "</code></li>");
  marks.innerHTML = items.join("");
  // Lanes and process events (a tree of processes or threads).
  if (D.lanes.length > 1 || P.pos.length) {
    document.getElementById("process-section").hidden = false;
    document.getElementById("lanes").innerHTML = D.lanes.map((l) =>
      "<li class=\"lane\" data-lane=\"" + l.id + "\" data-pid=\"" + (l.process ?? "") +
      "\" data-tid=\"" + (l.thread ?? "") + "\">lane: " + esc(l.label) + "</li>").join("");
    const ev = [];
    for (let k = 0; k < P.pos.length; k++) {
      ev.push("<li class=\"process-event\" data-kind=\"" + esc(P.kind[k]) + "\" data-pid=\"" +
        P.pid[k] + "\" data-lane=\"" + P.lane[k] + "\" data-position=\"" + P.pos[k] + "\">" +
        esc(P.kind[k]) + ": " + esc(P.text[k]) + " at position " + fmt(P.pos[k]) + " (" +
        esc(insn(P.pc[k])) + "): <code>" + esc(goto(P.pos[k])) + "</code></li>");
    }
    document.getElementById("processes").innerHTML = ev.join("");
  }
}

header();
tables();
resize();
// "#selftest": zoom in and out twenty times and record the slowest frame and the slowest
// table update (the test suite loads big reports this way to check the page stays
// responsive; while zooming, the tables follow 150 ms after the last frame).
if (location.hash === "#selftest") {
  let worst = 0, worstTables = 0;
  const steps = [];
  for (let k = 0; k < 10; k++) steps.push(0.5);
  for (let k = 0; k < 10; k++) steps.push(2);
  for (const f of steps) {
    const t0 = performance.now();
    zoom(f, LABEL + plotWidth() * 0.37);
    draw();
    const t1 = performance.now();
    tables();
    worst = Math.max(worst, t1 - t0);
    worstTables = Math.max(worstTables, performance.now() - t1);
  }
  // What hovering the last watched write and the last system call shows.
  setView(D.start, D.end);
  const hovers = [];
  rows.forEach((r, i) => {
    if ((r.kind === "w" || r.kind === "sys") && r.pos.length) {
      const d = describe(xOf(r.pos[r.pos.length - 1]), HEAD + i * ROW + ROW / 2);
      if (d) hovers.push(text(d));
    }
  });
  const pre = document.createElement("pre");
  pre.id = "selftest-hover";
  pre.hidden = true;
  pre.textContent = hovers.join("\n---\n");
  document.body.appendChild(pre);
  document.body.setAttribute("data-selftest-ms", worst.toFixed(1));
  document.body.setAttribute("data-selftest-tables-ms", worstTables.toFixed(1));
}
document.body.setAttribute("data-ready", "1");
})();
"""
