// patchscope report: the pages' code. Every text from the binary goes into the DOM through
// textContent (el() below), never through innerHTML: a symbol named "<img onerror=…>" stays text.
"use strict";

const PS = {
  data: {},
  waiting: {},
  timing: {},
  load(name, value) {
    PS.data[name] = value;
    (PS.waiting[name] || []).forEach((f) => f(value));
  },
  // gzip + base64: decoded with the browser's own DecompressionStream, no library
  loadPacked(name, b64) {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    new Response(stream).text().then((t) => PS.load(name, JSON.parse(t)));
  },
  // a data file by <script>: browsers refuse fetch() of file:// URLs
  script(src, name) {
    return new Promise((resolve, reject) => {
      if (PS.data[name]) return resolve(PS.data[name]);
      (PS.waiting[name] = PS.waiting[name] || []).push(resolve);
      const s = document.createElement("script");
      s.src = src;
      s.onerror = () => reject(new Error("cannot load " + src));
      document.head.appendChild(s);
    });
  },
};

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return e;
}

function badge(band) {
  return el("span", { class: "band " + band }, band);
}

function fnLink(name, file) {
  let h = "f=" + encodeURIComponent(name);
  if (file) h += "&file=" + encodeURIComponent(file);
  return "function.html#" + h;
}

function hashParams() {
  return new URLSearchParams(location.hash.slice(1));
}

function hex(v) {
  return "0x" + v.toString(16);
}

function kv(rows) {
  return el("table", { class: "kv" }, rows.filter((r) => r[1] !== null && r[1] !== undefined && r[1] !== "")
    .map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))));
}

// ---- theme and navigation ----

function setTheme(t) {
  document.documentElement.dataset.theme = t;
  try { localStorage.setItem("ps-theme", t); } catch (e) { /* file:// without storage */ }
}

function initTheme() {
  let t = null;
  try { t = localStorage.getItem("ps-theme"); } catch (e) { /* none */ }
  if (!t) t = matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  document.documentElement.dataset.theme = t;
}
initTheme();

function nav() {
  const ov = PS.data.overview || {};
  const pages = [["index.html", "Overview"], ["functions.html", "Functions"]];
  if ((ov.pages || []).includes("probes")) pages.push(["probes.html", "Probes"]);
  if ((ov.pages || []).includes("diff")) pages.push(["diff.html", "Diff"]);
  const here = location.pathname.split("/").pop() || "index.html";
  const n = document.getElementById("nav");
  n.appendChild(el("span", { class: "brand" }, "patchscope"));
  for (const [href, text] of pages) {
    n.appendChild(el("a", { href, class: href === here ? "here" : null }, text));
  }
  if (ov.binary) n.appendChild(el("span", { class: "muted ident" }, ov.binary.path));
  document.getElementById("theme").addEventListener("click", () =>
    setTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark"));
  document.addEventListener("keydown", (e) => {
    if (e.target.matches("input, select, textarea") || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "t") setTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark");
  });
}

function app(...children) {
  const a = document.getElementById("app");
  a.replaceChildren(...children);
  return a;
}

// ---- overview ----

function bars(counts, total, classes) {
  return el("div", { class: "bars" }, Object.entries(counts).map(([k, v]) =>
    el("div", { class: "bar-row" },
      el("span", { class: "bar-label" }, k),
      el("span", { class: "bar-track" },
        el("span", { class: "bar " + (classes ? k : ""), style: `width:${(100 * v / (total || 1)).toFixed(2)}%` })),
      el("span", { class: "bar-value" }, v.toLocaleString("en"), " ", el("span", { class: "muted" },
        `(${(100 * v / (total || 1)).toFixed(1)} %)`)))));
}

function pageIndex() {
  const ov = PS.data.overview;
  const s = ov.summary;
  const b = ov.binary;
  const byBand = s.functions_by_band;
  const codes = Object.entries(s.functions_by_code).sort((x, y) => y[1] - x[1]);
  const parts = [
    el("h1", {}, "The safety spectrum"),
    kv([["binary", b.path], ["architecture", b.arch], ["kind", b.kind], ["build-id", b.build_id],
      ["release", b.kernel_release], ["DWARF", b.dwarf], ["debug file", b.debug_file],
      ["source functions", s.functions.toLocaleString("en")]]),
    el("h2", {}, "Bands"),
    bars(byBand, s.functions, true),
    el("p", {}, ...Object.keys(byBand).map((k) =>
      el("a", { href: "functions.html#band=" + k, class: "chip" }, `all ${k} functions`))),
    el("h2", {}, "Inlining"),
    bars(s.inlining, s.functions, false),
    el("h2", {}, "Finding codes"),
    el("table", { class: "grid" },
      el("thead", {}, el("tr", {}, el("th", {}, "code"), el("th", {}, "band"), el("th", { class: "num" }, "functions"),
        el("th", {}, "meaning"))),
      el("tbody", {}, codes.map(([c, n]) => el("tr", {},
        el("td", {}, el("a", { href: "functions.html#code=" + encodeURIComponent(c) }, c)),
        el("td", {}, badge(ov.codes[c].band)),
        el("td", { class: "num" }, n.toLocaleString("en")),
        el("td", {}, ov.codes[c].summary))))),
  ];
  if (ov.figures) {
    parts.push(el("h2", {}, "Experiments"), el("div", { class: "figures" },
      Object.entries(ov.figures).map(([k, src]) => el("figure", {}, el("img", { src, alt: k + " experiment" }),
        el("figcaption", {}, k)))));
  }
  app(...parts);
}

// ---- the functions table: filtered, sorted, only the visible rows in the DOM ----

const ROW = 28;

function pageFunctions() {
  const F = PS.data.functions;
  const n = F.name.length;
  const lower = F.name.map((x) => x.toLowerCase());
  const files = F.files.map((x) => x.toLowerCase());
  const state = { q: "", file: "", band: "", code: "", status: "", sort: "name", dir: 1, sel: 0 };
  const hp = hashParams();
  for (const k of ["q", "file", "band", "code", "status"]) if (hp.get(k)) state[k] = hp.get(k);
  let rows = new Int32Array(0);
  const select = (name, options, label) => el("select", { id: name, "aria-label": label },
    el("option", { value: "" }, "any " + label), options.map((o) => el("option", { value: o }, o)));
  const search = el("input", { id: "search", type: "search", placeholder: "function name (/ to focus)",
    value: state.q, autocomplete: "off", "aria-label": "search function names" });
  const file = el("input", { id: "file", type: "search", placeholder: "source file", value: state.file,
    "aria-label": "filter by source file" });
  const band = select("band", F.bands, "band");
  const code = select("code", F.codes, "code");
  const status = select("status", F.statuses, "inlining");
  band.value = state.band; code.value = state.code; status.value = state.status;
  const count = el("span", { id: "count", class: "muted" });
  const cols = [["name", "function"], ["file", "declared"], ["band", "band"], ["status", "inlining"],
    ["instances", "instances"], ["sites", "inline sites"], ["code", "findings"]];
  const head = el("div", { class: "trow thead", role: "row" }, cols.map(([k, t]) =>
    el("span", { class: "c-" + k, role: "columnheader", tabindex: "0", "data-sort": k,
      onclick: () => sortBy(k), onkeydown: (e) => { if (e.key === "Enter") sortBy(k); } }, t)));
  const spacer = el("div", { class: "spacer" });
  const body = el("div", { class: "tbody", role: "rowgroup" });
  const scroller = el("div", { id: "rows", class: "scroller", tabindex: "0", role: "grid",
    "aria-label": "functions" }, spacer, body);
  app(el("div", { class: "filters" }, search, file, band, code, status, count), head, scroller);

  const codeSets = F.code;
  function matches(i, q, fq, b, c, s) {
    if (b >= 0 && F.band[i] !== b) return false;
    if (s >= 0 && F.status[i] !== s) return false;
    if (c >= 0 && !codeSets[i].includes(c)) return false;
    if (q && lower[i].indexOf(q) < 0) return false;
    if (fq && files[F.file[i]].indexOf(fq) < 0) return false;
    return true;
  }
  const keyOf = {
    name: (i) => lower[i], file: (i) => files[F.file[i]], band: (i) => F.band[i], status: (i) => F.status[i],
    instances: (i) => F.instances[i], sites: (i) => F.sites[i], code: (i) => codeSets[i].length,
  };
  let order = null;
  function sorted() {
    if (order && order.key === state.sort && order.dir === state.dir) return order.ids;
    const ids = Array.from({ length: n }, (_, i) => i);
    const key = keyOf[state.sort];
    const ks = ids.map(key);
    ids.sort((a, b) => (ks[a] < ks[b] ? -1 : ks[a] > ks[b] ? 1 : lower[a] < lower[b] ? -1 : 1) * state.dir);
    order = { key: state.sort, dir: state.dir, ids: Int32Array.from(ids) };
    return order.ids;
  }
  function refilter() {
    const t0 = performance.now();
    state.q = search.value.trim().toLowerCase();
    state.file = file.value.trim().toLowerCase();
    state.band = band.value; state.code = code.value; state.status = status.value;
    const b = F.bands.indexOf(state.band), c = F.codes.indexOf(state.code), s = F.statuses.indexOf(state.status);
    const ids = sorted();
    const out = new Int32Array(n);
    let m = 0;
    for (let k = 0; k < n; k++) {
      const i = ids[k];
      if (matches(i, state.q, state.file, b, c, s)) out[m++] = i;
    }
    rows = out.subarray(0, m);
    state.sel = 0;
    spacer.style.height = rows.length * ROW + "px";
    scroller.scrollTop = 0;
    count.textContent = `${m.toLocaleString("en")} of ${n.toLocaleString("en")} functions`;
    render();
    PS.timing.search = performance.now() - t0;
    const h = new URLSearchParams();
    for (const k of ["q", "file", "band", "code", "status"]) if (state[k]) h.set(k, state[k]);
    history.replaceState(null, "", h.toString() ? "#" + h : location.pathname);
  }
  function sortBy(k) {
    state.dir = state.sort === k ? -state.dir : 1;
    state.sort = k;
    for (const h of head.children) h.removeAttribute("aria-sort");
    head.querySelector(`[data-sort="${k}"]`).setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending");
    refilter();
  }
  function row(i, k) {
    const f = F.files[F.file[i]];
    return el("div", { class: "trow" + (k === state.sel ? " sel" : ""), role: "row", style: `top:${k * ROW}px` },
      el("span", { class: "c-name" }, el("a", { href: fnLink(F.name[i], dup(i) ? f : null) }, F.name[i])),
      el("span", { class: "c-file" }, f ? `${f}:${F.line[i]}` : "-"),
      el("span", { class: "c-band" }, badge(F.bands[F.band[i]])),
      el("span", { class: "c-status" }, F.statuses[F.status[i]]),
      el("span", { class: "c-instances num" }, F.instances[i]),
      el("span", { class: "c-sites num" }, F.sites[i]),
      el("span", { class: "c-code" }, codeSets[i].map((c) => F.codes[c]).join(", ")));
  }
  const seen = new Map();
  F.name.forEach((x) => seen.set(x, (seen.get(x) || 0) + 1));
  const dup = (i) => seen.get(F.name[i]) > 1;
  function render() {
    const first = Math.max(0, Math.floor(scroller.scrollTop / ROW) - 10);
    const last = Math.min(rows.length, first + Math.ceil(scroller.clientHeight / ROW) + 20);
    const out = [];
    for (let k = first; k < last; k++) out.push(row(rows[k], k));
    body.replaceChildren(...out);
  }
  function move(d) {
    if (!rows.length) return;
    state.sel = Math.max(0, Math.min(rows.length - 1, state.sel + d));
    const top = state.sel * ROW;
    if (top < scroller.scrollTop) scroller.scrollTop = top;
    else if (top + ROW > scroller.scrollTop + scroller.clientHeight) scroller.scrollTop = top + ROW - scroller.clientHeight;
    render();
  }
  scroller.addEventListener("scroll", render);
  let timer = 0;
  const later = () => { clearTimeout(timer); timer = setTimeout(refilter, 60); };
  search.addEventListener("input", later);
  file.addEventListener("input", later);
  for (const s of [band, code, status]) s.addEventListener("change", refilter);
  document.addEventListener("keydown", (e) => {
    const typing = e.target.matches("input, select");
    if (e.key === "/" && !typing) { e.preventDefault(); search.focus(); return; }
    if (e.key === "ArrowDown") { e.preventDefault(); move(1); }
    else if (e.key === "ArrowUp") { e.preventDefault(); move(-1); }
    else if (e.key === "PageDown") { e.preventDefault(); move(Math.floor(scroller.clientHeight / ROW)); }
    else if (e.key === "PageUp") { e.preventDefault(); move(-Math.floor(scroller.clientHeight / ROW)); }
    else if (e.key === "Enter" && rows.length && (!typing || e.target === search)) {
      const i = rows[state.sel];
      location.href = fnLink(F.name[i], dup(i) ? F.files[F.file[i]] : null);
    }
  });
  PS.refilter = refilter;
  refilter();
  search.focus();
}

// ---- one function ----

function findFunction(F, name, file) {
  const out = [];
  for (let i = 0; i < F.name.length; i++) {
    if (F.name[i] === name && (!file || F.files[F.file[i]] === file)) out.push(i);
  }
  return out;
}

async function pageFunction() {
  const F = PS.data.functions;
  const hp = hashParams();
  const name = hp.get("f") || "";
  const ids = findFunction(F, name, hp.get("file"));
  if (!ids.length) {
    app(el("h1", {}, "No function named ", el("code", {}, name)), el("p", {}, el("a", { href: "functions.html" },
      "all functions")));
    return;
  }
  if (ids.length > 1) {
    app(el("h1", {}, name), el("p", {}, `${ids.length} source functions have this name:`),
      el("ul", {}, ids.map((i) => el("li", {}, el("a", { href: fnLink(name, F.files[F.file[i]]) },
        `${name} (${F.files[F.file[i]] || "no file"}:${F.line[i]})`)))));
    return;
  }
  const id = ids[0];
  const chunk = Math.floor(id / PS.data.overview.chunk);
  const data = await PS.script(`data/f/${chunk}.js`, "chunk" + chunk);
  renderFunction(data[String(id)]);
}

function decl(r) {
  return r.decl_file ? `${r.decl_file}:${r.decl_line}` : "no DWARF";
}

function renderFunction(r) {
  document.title = "patchscope · " + r.name;
  const parts = [
    el("h1", {}, el("code", {}, r.name), " ", badge(r.band)),
    kv([["declared", decl(r)], ["inlining", r.status], ["external", r.external ? "yes" : "no"],
      ["instances", String(r.instances.length)], ["inline sites", String(r.inline_sites.count)]]),
  ];
  parts.push(el("h2", {}, `Findings (${r.findings.length})`));
  parts.push(r.findings.length ? el("div", { class: "findings" }, r.findings.map((f) =>
    el("div", { class: "finding", id: "finding-" + f.code },
      el("div", {}, badge(f.band), " ", el("strong", { class: "code" }, f.code),
        f.address ? el("span", { class: "muted" }, " at ", f.address) : null),
      el("p", {}, f.message),
      el("details", {}, el("summary", {}, "evidence"), el("pre", {}, JSON.stringify(f.evidence, null, 2)))))) :
    el("p", { class: "muted" }, "none: safe to probe at its entry"));
  parts.push(el("h2", {}, `Instances (${r.instances.length})`));
  if (!r.instances.length) parts.push(el("p", { class: "muted" }, "no out-of-line copy: every call is inlined"));
  r.instances.forEach((inst, k) => parts.push(instance(r, inst, k)));
  const sites = r.inline_sites;
  parts.push(el("h2", {}, `Inline sites (${sites.count})`));
  if (sites.count) {
    parts.push(el("table", { class: "grid" },
      el("thead", {}, el("tr", {}, el("th", {}, "address"), el("th", {}, "inlined into"), el("th", {}, "call"),
        el("th", { class: "num" }, "depth"))),
      el("tbody", {}, sites.sites.map((s) => el("tr", {},
        el("td", {}, el("code", {}, s.entry_pc)),
        el("td", {}, el("a", { href: fnLink(s.caller) }, s.caller)),
        el("td", {}, s.call_file ? `${s.call_file}:${s.call_line}` : "-"),
        el("td", { class: "num" }, s.depth))))));
  }
  app(...parts);
}

function instance(r, inst, k) {
  const marks = new Map(); // address (hex, no 0x) → [[class, text]]
  const add = (addr, cls, text) => {
    if (addr === null || addr === undefined) return;
    const key = BigInt(addr).toString(16);
    if (!marks.has(key)) marks.set(key, []);
    marks.get(key).push([cls, text]);
  };
  add(inst.probe_entry, "m-entry", "probe entry: " + inst.probe_entry_is);
  inst.returns.forEach((a) => add(a, "m-return", "return"));
  inst.tail_exits.forEach((t) => add(t.at, "m-tail", "tail jump → " + t.to));
  const windows = [];
  for (const f of r.findings) {
    if (f.evidence && f.evidence.instance && f.evidence.instance !== inst.symbol) continue;
    if (f.address && f.code !== "tail-call-exit") add(f.address, "m-finding m-" + f.band, f.code);
    if (f.evidence && f.evidence.low && f.evidence.high && f.code !== "no-ftrace-site") {
      windows.push([BigInt(f.evidence.low), BigInt(f.evidence.high), f.code]);
    }
  }
  const clones = inst.suffixes.length ? inst.suffixes.join(" → ") : "none (the original)";
  const box = el("section", { class: "instance", id: "instance-" + k },
    el("h3", {}, el("code", {}, inst.symbol || "(no symbol)")),
    kv([["entry", inst.entry_pc], ["probes enter at", `${inst.probe_entry} (${inst.probe_entry_is})`],
      ["size", inst.size + " bytes"], ["clone chain", clones], ["symbols", inst.symbols.join(", ")],
      ["noreturn", inst.noreturn ? "yes" : null],
      ["ranges", inst.ranges.map((p) => `${p.low}–${p.high}${p.symbol ? " " + p.symbol : ""}`).join(", ")]]));
  (inst.code || []).forEach((range) => box.appendChild(disassembly(range, marks, windows)));
  return box;
}

function disassembly(range, marks, windows) {
  const low = BigInt(range.low);
  let off = 0n;
  const lines = [];
  const text = range.text ? range.text.split("\n") : [];
  for (let i = 0; i < text.length; i++) {
    const a = low + off;
    const key = a.toString(16);
    const m = marks.get(key) || [];
    const w = windows.filter(([lo, hi]) => a >= lo && a < hi).map((x) => x[2]);
    const cls = ["insn"].concat(m.map((x) => x[0].split(" ")).flat(), w.length ? ["m-window"] : []);
    lines.push(el("div", { class: cls.join(" "), "data-address": hex(a) },
      el("span", { class: "addr" }, hex(a)),
      el("span", { class: "text" }, text[i]),
      el("span", { class: "marks" }, m.map((x) => el("span", { class: "mark " + x[0] }, x[1])),
        w.map((c) => el("span", { class: "mark m-window" }, c)))));
    off += BigInt(parseInt(range.sizes[i], 16));
  }
  return el("div", { class: "disasm", role: "list", "aria-label": "disassembly from " + range.low }, lines);
}

// ---- probes (check) and diff ----

function pageProbes() {
  const doc = PS.data.probes;
  app(el("h1", {}, "Probe points ", badge(doc.verdict)), ...doc.points.map((p) =>
    el("section", { class: "point" },
      el("h3", {}, el("code", {}, p.probe), " ", badge(p.verdict), p.origin ? el("span", { class: "muted" }, " ", p.origin) : null),
      p.pointer ? el("pre", { class: "err" }, p.pointer) : null,
      ...p.errors.map((e) => el("p", { class: "err" }, e)),
      ...p.notes.map((e) => el("p", { class: "muted" }, e)),
      ...p.findings.map((f) => el("p", {}, badge(f.band), " ", el("strong", {}, f.code), ": ", f.message)),
      p.landings.length ? el("table", { class: "grid" },
        el("thead", {}, el("tr", {}, ["address", "function", "in", "kind", "band", "reasons"].map((t) => el("th", {}, t)))),
        el("tbody", {}, p.landings.map((l) => el("tr", {},
          el("td", {}, el("code", {}, l.address)),
          el("td", {}, l.function ? el("a", { href: fnLink(l.function) }, l.function) : "?"),
          el("td", {}, l.in || "?"),
          el("td", {}, `${l.kind} (${l.how})`),
          el("td", {}, badge(l.band)),
          el("td", {}, l.reasons.map((f) => el("div", {}, el("strong", {}, f.code), ": ", f.message))))))) : null)));
}

function pageDiff() {
  const doc = PS.data.diff;
  const s = doc.summary;
  const parts = [el("h1", {}, "Two builds"),
    kv([["old", `${doc.old.path} (${doc.old.build_id || "no build-id"})`],
      ["new", `${doc.new.path} (${doc.new.build_id || "no build-id"})`],
      ["functions", `${s.functions_old} → ${s.functions_new}`],
      ["changes", Object.entries(s).filter(([k]) => !k.startsWith("functions_")).map(([k, v]) => `${v} ${k}`).join(", ")]]),
    el("table", { class: "grid" },
      el("thead", {}, el("tr", {}, ["function", "declared in", "changed"].map((t) => el("th", {}, t)))),
      el("tbody", {}, doc.functions.map((f) => el("tr", {},
        el("td", {}, f.new ? el("a", { href: fnLink(f.name) }, f.name) : f.name),
        el("td", {}, f.decl_file || "-"),
        el("td", {}, el("ul", {}, f.words.map((w) => el("li", {}, w))),
          f.code ? el("details", {}, el("summary", {}, "code, normalized: old | new"),
            el("div", { class: "side" }, el("pre", {}, f.code.old.join("\n")), el("pre", {}, f.code.new.join("\n")))) : null)))))];
  app(...parts);
}

const PAGES = { index: pageIndex, functions: pageFunctions, function: pageFunction, probes: pageProbes, diff: pageDiff };

document.addEventListener("DOMContentLoaded", () => {
  nav();
  const page = document.body.dataset.page;
  Promise.resolve(PAGES[page]()).catch((e) => app(el("p", { class: "err" }, String(e))));
  if (page === "function") window.addEventListener("hashchange", () => pageFunction());
});
