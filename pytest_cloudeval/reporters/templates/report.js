// report.html's only script (allowed by hash in the page's CSP). It reads the embedded JSON and only
// ever sets textContent and attributes: nothing from a task result is parsed as HTML.
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("report-data").textContent);
  var ROWS = DATA.rows, DETAILS = DATA.details, CHANGES = DATA.changes || null;
  var CHUNK = 500;
  var byKey = {};
  ROWS.forEach(function (r) { r.t = (r.ti || 0) + (r.to || 0); byKey[r.k] = r; });

  var $ = function (id) { return document.getElementById(id); };
  var tbody = $("task-rows");
  var controls = { outcome: $("f-outcome"), bench: $("f-bench"), kind: $("f-kind"), change: $("f-change"), q: $("f-text") };
  var state = { outcome: "", bench: "", kind: "", change: "", q: "", sort: "", desc: false, task: "" };
  var job = 0;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmtNum(v) { return v === null || v === undefined ? "–" : Math.round(v).toLocaleString("en-US"); }
  function fmtSecs(v) { return v === null || v === undefined ? "–" : (v < 120 ? v.toFixed(1) + "s" : (v / 60).toFixed(1) + "m"); }
  function fmtUsd(v) { return v === null || v === undefined ? "–" : "$" + v.toFixed(4); }
  function fmtScore(v) { return v === null || v === undefined ? "–" : (Math.round(v * 1000) / 1000).toString(); }
  function fileHref(key, name) {
    // Each segment is percent-encoded: a name can never become a scheme (javascript:, data:).
    var parts = (key + "/" + name).split("/").map(encodeURIComponent);
    return DATA.files_url + parts.join("/");
  }

  // -- state <-> URL hash ---------------------------------------------------------------------
  function readHash() {
    var p = new URLSearchParams(location.hash.replace(/^#/, ""));
    state.outcome = p.get("outcome") || ""; state.bench = p.get("bench") || ""; state.kind = p.get("kind") || "";
    state.change = p.get("change") || ""; state.q = p.get("q") || ""; state.sort = p.get("sort") || "";
    state.desc = p.get("desc") === "1"; state.task = p.get("task") || "";
    Object.keys(controls).forEach(function (name) { if (controls[name]) controls[name].value = state[name]; });
  }
  function writeHash() {
    var p = new URLSearchParams();
    ["outcome", "bench", "kind", "change", "q", "sort", "task"].forEach(function (name) { if (state[name]) p.set(name, state[name]); });
    if (state.desc) p.set("desc", "1");
    var hash = p.toString();
    var url = location.href.replace(/#.*$/, "") + (hash ? "#" + hash : "");
    try { history.replaceState(null, "", url); } catch (e) { location.hash = hash; }
  }

  // -- the task table ---------------------------------------------------------------------------
  function matches(r) {
    if (state.outcome && r.o !== state.outcome) return false;
    if (state.bench && r.b !== state.bench) return false;
    if (state.kind && r.e !== state.kind) return false;
    if (state.change && (!CHANGES || CHANGES[r.k] !== state.change)) return false;
    if (state.q) {
      var hay = (r.k + " " + r.v + " " + r.m + " " + r.w + " " + r.e + " " + r.o).toLowerCase();
      var words = state.q.toLowerCase().split(/\s+/).filter(Boolean);
      for (var i = 0; i < words.length; i++) if (hay.indexOf(words[i]) < 0) return false;
    }
    return true;
  }
  function compare(a, b) {
    var k = state.sort, x = a[k], y = b[k];
    if (x === null || x === undefined) return y === null || y === undefined ? 0 : 1;
    if (y === null || y === undefined) return -1;
    var c = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
    return state.desc ? -c : c;
  }
  function makeRow(r) {
    var tr = el("tr");
    tr.setAttribute("data-key", r.k);
    if (r.k === state.task) tr.className = "open";
    tr.appendChild(el("td", "key", r.k + (r.r ? " (resumed)" : "")));
    tr.appendChild(el("td", null, r.b));
    var o = el("td"); o.appendChild(el("span", "outcome o-" + r.o, r.o)); tr.appendChild(o);
    var v = el("td", null, r.v); if (r.e) v.appendChild(el("span", "dim", " · " + r.e)); tr.appendChild(v);
    tr.appendChild(el("td", "n", fmtScore(r.s)));
    tr.appendChild(el("td", "n", r.a));
    tr.appendChild(el("td", "n", fmtSecs(r.d)));
    tr.appendChild(el("td", "n", r.ti === null && r.to === null ? "–" : fmtNum(r.t)));
    tr.appendChild(el("td", "n", fmtUsd(r.c)));
    tr.appendChild(el("td", "dim", r.w));
    return tr;
  }
  function render() {
    var mine = ++job;
    var rows = ROWS.filter(matches);
    if (state.sort) rows.sort(compare);
    document.querySelectorAll("#tasks th[data-sort]").forEach(function (th) {
      th.classList.toggle("sorted", th.getAttribute("data-sort") === state.sort);
      th.classList.toggle("desc", th.getAttribute("data-sort") === state.sort && state.desc);
    });
    $("shown").textContent = rows.length === ROWS.length ? ROWS.length + " tasks" : rows.length + " of " + ROWS.length + " tasks";
    tbody.textContent = "";
    document.body.setAttribute("data-rendering", "1");
    var i = 0;
    (function chunk() {
      if (mine !== job) return;
      var frag = document.createDocumentFragment();
      for (var end = Math.min(i + CHUNK, rows.length); i < end; i++) frag.appendChild(makeRow(rows[i]));
      tbody.appendChild(frag);
      if (i < rows.length) setTimeout(chunk, 0); else document.body.removeAttribute("data-rendering");
    })();
  }

  // -- the detail panel -----------------------------------------------------------------------
  function pre(text, cls) { return el("pre", cls || null, text); }
  function logBlock(body, title, ex, key, file) {
    if (!ex) return;
    var h = el("h3", null, title + " ");
    h.appendChild(el("span", "hint", fmtNum(ex.size) + " bytes"));
    body.appendChild(h);
    body.appendChild(pre(ex.head));
    if (ex.cut) {
      var p = el("p", "cut", "… " + fmtNum(ex.cut) + " characters left out … ");
      var a = el("a", null, "full file"); a.href = fileHref(key, file); p.appendChild(a);
      body.appendChild(p);
      body.appendChild(pre(ex.tail));
    }
  }
  function openTask(key) {
    var r = byKey[key], d = DETAILS[key], panel = $("detail"), body = $("d-body");
    if (!r || !d) { panel.hidden = true; return; }
    $("d-title").textContent = key;
    body.textContent = "";
    var kv = el("dl", "kv");
    function add(k, v) { kv.appendChild(el("dt", null, k)); kv.appendChild(el("dd", null, v)); }
    add("outcome", r.o + (r.v ? " · " + r.v : "") + (r.e ? " · " + r.e + " error" : ""));
    add("score", fmtScore(r.s)); add("attempt", r.a); add("duration", fmtSecs(r.d));
    add("started / finished", d.times.join(" → ")); add("worker", r.w || "–"); add("agent", r.ag || "–");
    add("tokens", fmtNum(r.ti) + " in · " + fmtNum(r.to) + " out"); add("cost", fmtUsd(r.c));
    if (CHANGES && CHANGES[key]) add("compared", CHANGES[key]);
    body.appendChild(kv);
    if (d.message) { body.appendChild(el("h3", null, "Message")); body.appendChild(pre(d.message)); }
    if (d.error && d.error !== d.message) { body.appendChild(el("h3", null, "Error")); body.appendChild(pre(d.error, "err")); }
    if (d.tests && d.tests.length) {
      var passed = d.tests.filter(function (t) { return t.v === "ACCEPTED"; }).length;
      body.appendChild(el("h3", null, "Judge: " + passed + " of " + d.tests.length + " tests accepted"));
      var box = el("div", "tests");
      d.tests.forEach(function (t) {
        var s = el("span", t.v === "ACCEPTED" ? "" : "bad", "#" + t.i + " " + t.v + (t.t !== null ? " " + t.t.toFixed(2) + "s" : ""));
        if (t.d) s.title = t.d;
        box.appendChild(s);
      });
      body.appendChild(box);
    }
    if (d.reward) { body.appendChild(el("h3", null, "Reward")); body.appendChild(pre(d.reward)); }
    var metrics = Object.keys(d.metrics || {});
    if (metrics.length) {
      body.appendChild(el("h3", null, "Metrics"));
      var m = el("dl", "kv");
      metrics.forEach(function (k) { m.appendChild(el("dt", null, k)); m.appendChild(el("dd", null, JSON.stringify(d.metrics[k]))); });
      body.appendChild(m);
    }
    logBlock(body, "Agent log", d.log, key, "agent.log");
    logBlock(body, "Verifier output", d.verifier, key, "logs/verifier/test-output.txt");
    if (d.files && d.files.length) {
      body.appendChild(el("h3", null, "Files"));
      var ul = el("ul", "files");
      d.files.forEach(function (f) {
        var li = el("li"), a = el("a", null, f[0]); a.href = fileHref(key, f[0]);
        li.appendChild(a); li.appendChild(el("span", "dim", " " + fmtNum(f[1]) + " bytes")); ul.appendChild(li);
      });
      body.appendChild(ul);
    }
    panel.hidden = false;
    tbody.querySelectorAll("tr.open").forEach(function (tr) { tr.classList.remove("open"); });
    tbody.querySelectorAll("tr").forEach(function (tr) { if (tr.getAttribute("data-key") === key) tr.classList.add("open"); });
  }
  function setTask(key) { state.task = key; writeHash(); if (key) openTask(key); else $("detail").hidden = true; }

  // -- wiring ---------------------------------------------------------------------------------
  Object.keys(controls).forEach(function (name) {
    var c = controls[name];
    if (!c) return;
    c.addEventListener(name === "q" ? "input" : "change", function () { state[name] = c.value; writeHash(); render(); });
  });
  $("f-clear").addEventListener("click", function () {
    state.outcome = state.bench = state.kind = state.change = state.q = "";
    Object.keys(controls).forEach(function (name) { if (controls[name]) controls[name].value = ""; });
    writeHash(); render();
  });
  document.querySelectorAll("#tasks th[data-sort]").forEach(function (th) {
    th.addEventListener("click", function () {
      var k = th.getAttribute("data-sort");
      if (state.sort === k) state.desc = !state.desc; else { state.sort = k; state.desc = k === "d" || k === "c" || k === "t"; }
      writeHash(); render();
    });
  });
  tbody.addEventListener("click", function (ev) {
    var tr = ev.target.closest("tr[data-key]");
    if (tr) setTask(tr.getAttribute("data-key"));
  });
  document.addEventListener("click", function (ev) {
    var link = ev.target.closest(".tasklink, rect.bar[data-key]");
    if (link && link.getAttribute("data-key")) { ev.preventDefault(); setTask(link.getAttribute("data-key")); return; }
    var kind = ev.target.closest(".kindlink");
    if (kind) {
      ev.preventDefault(); state.kind = kind.getAttribute("data-kind"); state.outcome = "error";
      controls.kind.value = state.kind; controls.outcome.value = "error"; writeHash(); render();
      $("tasks-section").scrollIntoView();
    }
  });
  $("d-close").addEventListener("click", function () { setTask(""); });
  document.addEventListener("keydown", function (ev) { if (ev.key === "Escape") setTask(""); });
  window.addEventListener("hashchange", function () { readHash(); render(); if (state.task) openTask(state.task); else $("detail").hidden = true; });

  readHash();
  render();
  if (state.task) openTask(state.task);
  document.body.setAttribute("data-ready", "1");
})();
