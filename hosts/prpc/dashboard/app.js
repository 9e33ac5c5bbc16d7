// The PRPC dashboard's page: polls /api/state and redraws the numbers in place (no reloads);
// the call form and the requeue buttons POST to /api/call and /api/requeue.
"use strict";

const state = { poll: 1000, failures: 0, sections: new Map(), actions: null, navKey: "" };

// Elements are built with textContent only: nothing from the broker is parsed as HTML.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
}

function fmtNum(n) {
  if (n === null || n === undefined) return "–";
  return Number(n).toLocaleString("en-US");
}
function fmtRate(n) {
  if (n === null || n === undefined) return "–";
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2);
}
function fmtMs(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms >= 1000) return (ms / 1000).toFixed(ms >= 10000 ? 0 : 1) + " s";
  if (ms >= 10) return ms.toFixed(0) + " ms";
  return ms.toFixed(ms >= 1 ? 1 : 2) + " ms";
}
function fmtDuration(sec) {
  if (sec === null || sec === undefined) return "–";
  sec = Math.max(0, Math.floor(sec));
  const d = Math.floor(sec / 86400), hh = Math.floor((sec % 86400) / 3600);
  const m = Math.floor((sec % 3600) / 60), ss = sec % 60;
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${m}m`;
  if (m) return `${m}m ${ss}s`;
  return `${ss}s`;
}
function fmtAge(ms) {
  if (ms < 1000) return "just now";
  return fmtDuration(ms / 1000) + " ago";
}
function slug(name) {
  return "q-" + Array.from(name).map((c) => (/[A-Za-z0-9_-]/.test(c) ? c : "_" + c.charCodeAt(0))).join("");
}

// ---- fetching ------------------------------------------------------------------------------

async function api(path, body) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), body ? 130000 : 8000);
  try {
    const init = { signal: ctl.signal, credentials: "same-origin", cache: "no-store" };
    if (body) {
      init.method = "POST";
      init.headers = { "Content-Type": "application/json" };
      init.body = JSON.stringify(body);
    }
    const r = await fetch(path, init);
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    return { status: r.status, data };
  } finally {
    clearTimeout(timer);
  }
}

async function tick() {
  let next = state.poll;
  try {
    const r = await api("/api/state");
    if (r.status === 401) {
      showBanner("This dashboard needs its token: open it once as /?token=TOKEN.");
      setStatus("down", "Token needed");
    } else if (r.status !== 200 || !r.data) {
      throw new Error("HTTP " + r.status);
    } else {
      state.failures = 0;
      render(r.data);
    }
  } catch (e) {
    state.failures += 1;
    setStatus("down", "Dashboard unreachable");
    showBanner("The dashboard process does not answer (" + (e.message || e) + "); retrying.");
    next = Math.min(10000, state.poll * (1 + state.failures));
  }
  setTimeout(tick, next);
}

function setStatus(kind, text) {
  const el = document.getElementById("status");
  el.replaceChildren(h("span", { class: "dot " + kind, "aria-hidden": "true" }), text);
}
function showBanner(text, info) {
  const b = document.getElementById("banner");
  if (!text) { b.hidden = true; b.textContent = ""; return; }
  b.className = "banner" + (info ? " info" : "");
  b.textContent = text;
  b.hidden = false;
}

// ---- rendering -----------------------------------------------------------------------------

function render(data) {
  state.poll = data.poll_ms || 1000;
  state.actions = data.actions;
  document.getElementById("version").textContent = "prpc " + data.version + ".";
  const loading = document.getElementById("loading");
  if (loading) loading.remove();
  const time = new Date(data.now_ms).toLocaleTimeString();
  if (data.broker.error) {
    setStatus("down", `${data.broker.type}: unreachable`);
    showBanner(`The broker (${data.broker.type}) cannot be reached: ${data.broker.error}. Retrying every second.`);
  } else {
    const failing = data.queues.filter((q) => q.error);
    setStatus(failing.length ? "down" : "live", `${data.broker.type} · updated ${time}`);
    showBanner(failing.length ? `The broker does not answer for ${failing.map((q) => q.name).join(", ")}: ${failing[0].error}` : "");
  }
  renderNav(data.queues);
  const main = document.getElementById("queues");
  for (const q of data.queues) {
    let sec = state.sections.get(q.name);
    if (!sec) {
      sec = buildQueue(q.name);
      state.sections.set(q.name, sec);
      main.append(sec.root);
    }
    updateQueue(sec, q, data);
  }
}

function renderNav(queues) {
  const nav = document.getElementById("queue-nav");
  const key = queues.map((q) => q.name).join("\u0000");
  if (queues.length < 2 || key === state.navKey) { nav.hidden = queues.length < 2; return; }
  state.navKey = key;
  nav.replaceChildren(...queues.map((q) => h("a", { href: "#" + slug(q.name) }, q.name)));
  nav.hidden = false;
}

// The parts of a queue's section that stay (the call form keeps what the user typed).
function buildQueue(name) {
  const id = slug(name);
  const sec = {};
  sec.cards = h("dl", { class: "cards" });
  sec.rateChart = h("div");
  sec.latChart = h("div");
  sec.servers = h("div", { class: "table-wrap" });
  sec.functions = h("div", { class: "table-wrap" });
  sec.dead = h("div", { class: "table-wrap" });
  sec.deadHead = h("div", { class: "actions-row" });
  sec.sub = h("span", { class: "sub" });
  sec.datalist = h("datalist", { id: id + "-functions" });
  sec.fn = h("input", { name: "function", list: id + "-functions", required: true, autocomplete: "off", spellcheck: "false" });
  sec.args = h("textarea", { name: "args", rows: 2, spellcheck: "false" });
  sec.args.value = "[]";
  sec.kwargs = h("textarea", { name: "kwargs", rows: 2, spellcheck: "false" });
  sec.kwargs.value = "{}";
  sec.timeout = h("input", { name: "timeout", type: "number", min: "0.1", max: "120", step: "any", inputmode: "decimal" });
  sec.timeout.value = "30";
  sec.callBtn = h("button", { class: "btn", type: "submit" }, "Call");
  sec.callNote = h("p", { class: "note" });
  sec.result = h("output", { class: "result", "aria-live": "polite" });
  sec.form = h("form", { class: "call-form", "aria-label": "Call a function of " + name },
    h("label", {}, "Function", sec.fn),
    h("label", {}, "Timeout (seconds)", sec.timeout),
    h("label", { class: "wide" }, "Arguments (a JSON array)", sec.args),
    h("label", { class: "wide" }, "Keyword arguments (a JSON object)", sec.kwargs),
    h("div", { class: "actions-row wide" }, sec.callBtn, sec.callNote),
    sec.result, sec.datalist);
  sec.form.addEventListener("submit", (ev) => { ev.preventDefault(); doCall(name, sec); });

  sec.root = h("section", { class: "queue", id, "data-queue": name, "aria-labelledby": id + "-title" },
    h("div", { class: "queue-head" }, h("h2", { id: id + "-title" }, "Queue ", h("code", {}, name)), sec.sub),
    sec.cards,
    h("div", { class: "grid2" },
      h("div", { class: "panel" },
        h("div", { class: "panel-head" }, h("h3", {}, "Calls per second"), h("div", { class: "legend" }, h("span", { class: "k-rate" }, "all functions"))),
        sec.rateChart),
      h("div", { class: "panel" },
        h("div", { class: "panel-head" }, h("h3", {}, "Latency"), h("div", { class: "legend" }, h("span", { class: "k-p50" }, "p50"), h("span", { class: "k-p99" }, "p99"))),
        sec.latChart)),
    h("div", { class: "panel" }, h("h3", {}, "Servers"), sec.servers),
    h("div", { class: "panel" }, h("h3", {}, "Functions"), sec.functions),
    h("div", { class: "panel" }, h("div", { class: "panel-head" }, h("h3", {}, "Dead letters"), sec.deadHead), sec.dead),
    h("div", { class: "panel" }, h("h3", {}, "Call a function"), sec.form));
  return sec;
}

function card(key, label, window, value, alert) {
  return h("div", { class: "card" + (alert ? " alert" : ""), "data-stat": key },
    h("dt", {}, label, window ? h("span", { class: "window" }, " · " + window) : null), h("dd", {}, value));
}

function updateQueue(sec, q, data) {
  const st = q.stats;
  const alive = (q.servers || []).filter((s) => s.alive).length;
  sec.sub.textContent = q.loading ? "loading…" : q.error ? "the broker does not answer"
    : `${alive} server${alive === 1 ? "" : "s"} announced`;
  const r = q.rate || {};
  sec.cards.replaceChildren(
    card("waiting", "Waiting", null, st ? fmtNum(st.waiting) : "–"),
    card("pending", "Pending", null, st ? fmtNum(st.pending) : "–"),
    card("consumers", "Consumers", null, st ? fmtNum(st.consumers) : "–"),
    card("dead-letters", "Dead letters", null, st ? fmtNum(st.dead_letters) : "–", st && st.dead_letters > 0),
    card("calls-per-s", "Calls/s", "1 min", fmtRate(r.calls_per_s)),
    card("errors-per-s", "Errors/s", "1 min", fmtRate(r.errors_per_s), r.errors_per_s > 0),
    card("p50", "p50", "5 min", fmtMs(r.p50_ms)),
    card("p99", "p99", "5 min", fmtMs(r.p99_ms)));
  const series = q.series || [];
  sec.rateChart.replaceChildren(chart(series, [{ key: "calls_per_s", cls: "l-rate", area: true }], fmtRate, "calls per second"));
  sec.latChart.replaceChildren(chart(series, [{ key: "p50_ms", cls: "l-p50" }, { key: "p99_ms", cls: "l-p99" }], fmtMs, "latency", true));
  if (q.error || q.loading || data.broker.error) {
    // Nothing is known while the broker does not answer: say so rather than "none".
    const why = q.loading && !data.broker.error ? "Loading…" : "Not known while the broker does not answer.";
    for (const el of [sec.servers, sec.functions, sec.dead]) el.replaceChildren(h("p", { class: "empty", "data-empty": "unknown" }, why));
    sec.deadHead.replaceChildren();
    sec.fnTableKey = sec.deadKey = null;
  } else {
    sec.servers.replaceChildren(serversTable(q));
    // Redrawn only when they change: a row under the pointer stays the same element.
    const fnKey = JSON.stringify(q.functions || []);
    if (sec.fnTableKey !== fnKey) {
      sec.fnTableKey = fnKey;
      sec.functions.replaceChildren(functionsTable(q));
    }
    updateDatalist(sec, q.functions || []);
    updateDead(sec, q, data);
  }
  const on = data.actions.enabled;
  sec.callBtn.disabled = !on || sec.busy === true;
  sec.callNote.textContent = on ? "" : data.actions.reason;
}

// A small line chart of the last five minutes; gaps where no call finished. `log`: a
// logarithmic scale by decades (latency: p50 and p99 are often 100 times apart).
function chart(series, lines, fmt, what, log) {
  const W = 300, H = 100, pad = 4;
  let max = 0, min = Infinity;
  for (const p of series) for (const l of lines) {
    const v = p[l.key];
    if (v === null || v === undefined) continue;
    if (v > max) max = v;
    if (v > 0 && v < min) min = v;
  }
  const n = Math.max(1, series.length - 1);
  const x = (i) => (i / n) * W;
  let top, bottom = 0, y, grid;
  if (log) {
    top = max > 0 ? Math.pow(10, Math.ceil(Math.log10(max))) : 1;
    bottom = Math.min(top / 10, min < Infinity ? Math.pow(10, Math.floor(Math.log10(min))) : top / 10);
    const span = Math.log10(top) - Math.log10(bottom);
    y = (v) => H - pad - ((Math.log10(Math.max(v, bottom)) - Math.log10(bottom)) / span) * (H - 2 * pad);
    grid = [];
    for (let d = bottom * 10; d < top; d *= 10) grid.push(d);
  } else {
    top = max > 0 ? niceCeil(max) : 1;
    y = (v) => H - pad - (v / top) * (H - 2 * pad);
    grid = [0.25, 0.5, 0.75].map((f) => top * f);
  }
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" });
  for (const g of grid) svg.append(s("line", { class: "grid", x1: 0, x2: W, y1: y(g), y2: y(g), "vector-effect": "non-scaling-stroke" }));
  const latest = [];
  for (const l of lines) {
    let d = "", pen = false, lastV = null;
    const has = (i) => i >= 0 && i < series.length && series[i][l.key] !== null && series[i][l.key] !== undefined;
    series.forEach((p, i) => {
      const v = p[l.key];
      if (!has(i)) { pen = false; return; }
      if (!has(i - 1) && !has(i + 1)) {
        // A bin alone between gaps: a short dash, or it would not show at all.
        d += `M${Math.max(0, x(i) - 3).toFixed(1)},${y(v).toFixed(1)} L${Math.min(W, x(i) + 3).toFixed(1)},${y(v).toFixed(1)} `;
      } else {
        d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)} `;
      }
      pen = true;
      lastV = v;
    });
    if (l.area && d) {
      const pts = series.map((p, i) => `${x(i).toFixed(1)},${y(p[l.key] || 0).toFixed(1)}`);
      svg.append(s("polygon", { class: "area", points: `0,${H} ${pts.join(" ")} ${W},${H}` }));
    }
    if (d) svg.append(s("path", { class: l.cls, d, "vector-effect": "non-scaling-stroke" }));
    latest.push(lastV);
  }
  const label = `${what} over the last 5 minutes: peak ${fmt(max)}` +
    (latest.some((v) => v !== null) ? `, latest ${latest.map((v) => fmt(v)).join(" / ")}` : ", no calls");
  svg.setAttribute("aria-label", label);
  const title = s("title", {});
  title.textContent = label;
  svg.prepend(title);
  return h("figure", { class: "fig" },
    svg,
    h("div", { class: "chart-axis", "aria-hidden": "true" }, h("span", {}, "5 min ago"),
      h("span", {}, log ? `${fmt(bottom)} to ${fmt(top)}, log scale` : "max " + fmt(top)), h("span", {}, "now")));
}
function niceCeil(v) {
  const e = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * e) return m * e;
  return 10 * e;
}

// One wrapper per cell: on a phone the cell is a grid of its label and this.
function td(label, content, cls) {
  return h("td", { "data-label": label, class: cls || null }, h("div", { class: "cell" }, content));
}

function serversTable(q) {
  if (q.servers_error) return h("p", { class: "empty", "data-empty": "servers" }, "Servers are not listed: " + q.servers_error);
  const servers = q.servers || [];
  if (!servers.length) {
    return h("p", { class: "empty", "data-empty": "servers" },
      "No servers announced. A PRPC server announces itself about once a second while it serves this queue.");
  }
  const rows = servers.map((sv) => {
    const workers = Object.entries(sv.workers || {}).map(([k, v]) => `${k} × ${v}`).join(", ") || "–";
    const t = sv.totals || {};
    return h("tr", { "data-server": sv.id },
      td("Server", h("span", { class: "mono" }, sv.id)),
      td("Status", sv.alive ? h("span", { class: "pill ok" }, "alive") : h("span", { class: "pill bad" }, "stopped answering")),
      td("Host", [sv.host || "–", sv.pid ? h("span", { class: "muted" }, " pid " + sv.pid) : null]),
      td("Version", sv.version || "–"),
      td("Uptime", fmtDuration(sv.uptime_s), "num"),
      td("Workers", workers),
      td("In flight", fmtNum(sv.in_flight), "num"),
      td("Calls", fmtNum((t.ok || 0) + (t.error || 0) + (t.timeout || 0) + (t.dead_letter || 0)), "num"),
      td("Heartbeat", fmtAge(sv.age_ms), "num"));
  });
  return h("table", { class: "stack" },
    h("thead", {}, h("tr", {}, ["Server", "Status", "Host", "Version", "Uptime", "Workers", "In flight", "Calls", "Heartbeat"].map((c, i) =>
      h("th", { scope: "col", class: [4, 6, 7, 8].includes(i) ? "num" : null }, c)))),
    h("tbody", {}, rows));
}

function functionsTable(q) {
  const fns = q.functions || [];
  if (!fns.length) {
    return h("p", { class: "empty", "data-empty": "functions" },
      (q.servers || []).length ? "The servers announced no functions." : "No functions known yet: they come with the servers' announcements.");
  }
  const rows = fns.map((f) => h("tr", { "data-function": f.name },
    td("Function", [h("span", { class: "fname" }, f.name), h("span", { class: "sig" }, f.signature || "(…)"),
      f.doc ? h("div", { class: "doc" }, f.doc.split("\n")[0]) : null]),
    td("Worker", f.worker ? h("span", { class: "pill tag" }, f.worker) : "–"),
    td("Calls", fmtNum(f.calls), "num calls"),
    td("Errors", fmtNum(f.errors + f.timeouts + f.dead_letters), "num errors" + (f.errors + f.timeouts + f.dead_letters ? " err" : "")),
    td("p50", f.calls ? fmtMs(f.p50_ms) : "–", "num"),
    td("p99", f.calls ? fmtMs(f.p99_ms) : "–", "num")));
  return h("table", { class: "stack" },
    h("thead", {}, h("tr", {}, ["Function", "Worker", "Calls", "Errors", "p50", "p99"].map((c, i) =>
      h("th", { scope: "col", class: i >= 2 ? "num" : null }, c)))),
    h("tbody", {}, rows));
}

function updateDatalist(sec, fns) {
  const key = fns.map((f) => f.name).join("\u0000");
  if (sec.fnKey === key) return;
  sec.fnKey = key;
  sec.datalist.replaceChildren(...fns.map((f) => h("option", { value: f.name }, f.signature || "")));
}

function updateDead(sec, q, data) {
  const a = data.actions;
  const letters = q.dead_letters || [];
  const total = q.stats ? q.stats.dead_letters : letters.length;
  const canRequeue = a.requeue;
  const why = !a.enabled ? a.reason : a.requeue_reason;
  const key = JSON.stringify([letters, total, canRequeue, why, sec.busy === true, q.dead_letters_read]);
  if (sec.deadKey === key) return;
  sec.deadKey = key;
  const all = h("button", { class: "btn secondary small", type: "button", disabled: !canRequeue || total === 0 || sec.busy === true,
    title: canRequeue ? null : why, onclick: () => doRequeue(q.name, [], total, sec) }, "Requeue all");
  sec.deadHead.replaceChildren(...[all, !canRequeue ? h("span", { class: "note" }, why) : null].filter(Boolean));
  if (!letters.length) {
    sec.dead.replaceChildren(h("p", { class: "empty", "data-empty": "dead-letters" },
      total > 0 ? `${fmtNum(total)} dead letters; they could not be read.` : "No dead letters."));
    return;
  }
  const rows = letters.map((d) => h("tr", { "data-dead-letter": d.id },
    td("Id", h("span", { class: "mono" }, d.id)),
    td("Message", d.message_id ? h("span", { class: "mono" }, d.message_id) : h("span", { class: "muted" }, "–")),
    td("Function", d.function || "–"),
    td("Reason", [h("span", { class: "reason" }, d.reason),
      h("details", {}, h("summary", {}, "payload (" + d.flavour + ")"), h("pre", { class: "payload" }, d.payload))]),
    td("", h("button", { class: "btn secondary small", type: "button", disabled: !canRequeue || sec.busy === true,
      title: canRequeue ? null : why, "aria-label": "Requeue dead letter " + d.id,
      onclick: () => doRequeue(q.name, [d.id], 1, sec) }, "Requeue"))));
  const shown = letters.length < total ? h("p", { class: "note" }, `The latest ${letters.length} of the first ${fmtNum(q.dead_letters_read)} read (${fmtNum(total)} in all).`) : null;
  // Keep open payloads open across refreshes.
  const open = new Set(Array.from(sec.dead.querySelectorAll("tr[data-dead-letter] details[open]")).map((d) => d.closest("tr").dataset.deadLetter));
  const table = h("table", { class: "stack" },
    h("thead", {}, h("tr", {}, ["Id", "Message", "Function", "Reason", ""].map((c) => h("th", { scope: "col" }, c || h("span", { class: "visually-hidden" }, "Action"))))),
    h("tbody", {}, rows));
  for (const tr of table.querySelectorAll("tr[data-dead-letter]")) if (open.has(tr.dataset.deadLetter)) tr.querySelector("details").open = true;
  sec.dead.replaceChildren(...[table, shown].filter(Boolean));
}

// ---- actions -------------------------------------------------------------------------------

async function doRequeue(queue, ids, count, sec) {
  const what = ids.length ? `dead letter ${ids[0]}` : `all ${count} dead letter${count === 1 ? "" : "s"}`;
  if (!window.confirm(`Requeue ${what} of queue ${queue}? Servers will run ${ids.length === 1 ? "it" : "them"} again.`)) return;
  sec.busy = true;
  try {
    const r = await api("/api/requeue", ids.length ? { queue, ids } : { queue, all: true });
    if (r.status === 200) {
      const nf = r.data.not_found || [];
      showBanner(`Requeued ${r.data.requeued} dead letter${r.data.requeued === 1 ? "" : "s"} of ${queue}` +
        (nf.length ? `; not found: ${nf.join(", ")}` : "") + ".", true);
    } else {
      showBanner(`Requeue failed: ${(r.data && r.data.error) || "HTTP " + r.status}`);
    }
  } catch (e) {
    showBanner("Requeue failed: " + (e.message || e));
  } finally {
    sec.busy = false;
  }
}

async function doCall(queue, sec) {
  const fn = sec.fn.value.trim();
  if (!fn) { sec.fn.focus(); return; }
  sec.busy = true;
  sec.callBtn.disabled = true;
  sec.result.className = "result";
  sec.result.textContent = `Calling ${fn}…`;
  try {
    const timeout = parseFloat(sec.timeout.value) || 30;
    const r = await api("/api/call", { queue, function: fn, args: sec.args.value, kwargs: sec.kwargs.value, timeout_s: timeout });
    const d = r.data || {};
    if (r.status !== 200) {
      sec.result.className = "result bad";
      sec.result.textContent = d.error || "HTTP " + r.status;
    } else if (d.ok) {
      sec.result.className = "result ok";
      sec.result.textContent = d.result + "\n" + timing(d);
    } else {
      sec.result.className = "result bad";
      sec.result.textContent = d.error + (d.traceback ? "\n" + d.traceback : "") + "\n" + timing(d);
    }
  } catch (e) {
    sec.result.className = "result bad";
    sec.result.textContent = "The call could not be sent: " + (e.message || e);
  } finally {
    sec.busy = false;
    sec.callBtn.disabled = !(state.actions && state.actions.enabled);
  }
}

function timing(d) {
  const parts = [];
  if (d.server) parts.push("server " + d.server);
  if (d.time_queued !== null && d.time_queued !== undefined) parts.push("queued " + fmtMs(d.time_queued * 1000));
  if (d.time_executing !== null && d.time_executing !== undefined) parts.push("executing " + fmtMs(d.time_executing * 1000));
  parts.push("round trip " + fmtMs(d.round_trip_ms));
  return "— " + parts.join(" · ");
}

tick();
