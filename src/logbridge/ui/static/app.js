// The logbridge viewer: a small hand-written front end over the read-only JSON API.
// Every piece of text from the record goes into the page through textContent (h() below),
// never parsed as HTML, so a log message or a tag holding markup shows as text.
"use strict";

(() => {
  const POLL_MS = 1500;
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2",
    "#db2777", "#65a30d", "#4f46e5", "#b45309"];
  const LEVELS = [["", "all levels"], ["10", "DEBUG+"], ["20", "INFO+"], ["30", "WARNING+"],
    ["40", "ERROR+"], ["50", "CRITICAL"]];
  const main = document.getElementById("main");
  let view = null; // the current view's cleanup state

  // -- small helpers -------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  async function api(path, params) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params || {})) {
      if (Array.isArray(value)) value.forEach((v) => query.append(key, v));
      else if (value !== null && value !== undefined && value !== "") query.set(key, value);
    }
    const url = "api/" + path + (query.toString() ? "?" + query : "");
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    const body = await response.json().catch(() => ({ error: response.statusText }));
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  function runPath(id) { return "runs/" + encodeURIComponent(id); }
  function fileUrl(runId, name, download) {
    const q = new URLSearchParams({ name });
    if (download) q.set("download", "1");
    return "api/" + runPath(runId) + "/file?" + q;
  }
  function pad(n) { return String(n).padStart(2, "0"); }
  function fmtTime(ts) {
    if (ts === null || ts === undefined || typeof ts !== "number") return "";
    const d = new Date(ts * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  function fmtDuration(s) {
    if (typeof s !== "number" || !isFinite(s)) return "";
    s = Math.max(0, Math.round(s));
    const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
    if (hh) return `${hh}h${pad(mm)}m${pad(ss)}s`;
    if (mm) return `${mm}m${pad(ss)}s`;
    return `${ss}s`;
  }
  function fmtValue(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "number") {
      if (Number.isInteger(v)) return String(v);
      const a = Math.abs(v);
      return a !== 0 && (a < 1e-4 || a >= 1e7) ? v.toExponential(4) : String(+v.toPrecision(6));
    }
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }
  function fmtSize(n) {
    if (n < 1024) return n + " B";
    if (n < 1048576) return (n / 1024).toFixed(1) + " KiB";
    return (n / 1048576).toFixed(1) + " MiB";
  }
  function badge(status) { return h("span", { class: "badge status-" + status }, status); }
  function errorBox(err) { return h("p", { class: "error" }, String(err.message || err)); }
  function kvTable(obj, empty) {
    const keys = Object.keys(obj || {});
    if (!keys.length) return h("p", { class: "muted" }, empty);
    return h("table", { class: "kv" },
      keys.map((k) => h("tr", {}, h("th", {}, k), h("td", {}, fmtValue(obj[k])))));
  }
  function tagList(tags) {
    return h("span", { class: "tags" }, Object.entries(tags || {}).map(([k, v]) =>
      h("span", { class: "tag" }, v === null ? k : `${k}=${v}`)));
  }
  function section(title, ...content) {
    return h("section", { class: "panel" }, h("h2", {}, title), ...content);
  }

  function leave() {
    if (!view) return;
    view.stopped = true;
    clearTimeout(view.timer);
    clearTimeout(view.logTimer);
    if (view.observer) view.observer.disconnect();
    for (const chart of view.charts || []) chart.destroy();
    view = null;
  }

  function newView() {
    leave();
    view = { stopped: false, charts: new Set(), timer: 0, logTimer: 0, observer: null };
    main.replaceChildren();
    return view;
  }

  // -- routing -------------------------------------------------------------------------------

  function route() {
    const hash = location.hash.replace(/^#/, "") || "/";
    const [path, query] = hash.split("?");
    const params = new URLSearchParams(query || "");
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    if (parts[0] === "run" && parts[1]) return showRun(parts[1]);
    if (parts[0] === "compare" && parts[1]) return showCompare(parts[1].split(","), params);
    return showRuns(params.get("experiment") || "");
  }

  // -- runs ----------------------------------------------------------------------------------

  async function showRuns(experiment) {
    const v = newView();
    const state = { filter: "", status: "", sort: "start", desc: true, selected: new Set(), data: null };
    const side = h("aside", { class: "experiments" });
    const filter = h("input", { type: "search", placeholder: "filter by name, id, tag…", id: "run-filter" });
    const status = h("select", { id: "status-filter" },
      ["", "Running", "Completed", "Failed", "Canceled"].map((s) => h("option", { value: s }, s || "any status")));
    const compare = h("button", { id: "compare", disabled: true }, "Compare selected");
    const table = h("div", { class: "table-wrap" });
    const heading = h("h1", {}, experiment ? `Experiment ${experiment}` : "All runs");
    main.append(h("div", { class: "layout" }, side,
      h("div", { class: "content" }, heading, h("div", { class: "toolbar" }, filter, status, compare), table)));

    filter.addEventListener("input", () => { state.filter = filter.value.toLowerCase(); draw(); });
    status.addEventListener("change", () => { state.status = status.value; draw(); });
    compare.addEventListener("click", () => {
      location.hash = "#/compare/" + [...state.selected].map(encodeURIComponent).join(",");
    });

    try {
      const ex = await api("experiments");
      document.getElementById("store").textContent = ex.store || "";
      side.append(h("h2", {}, "Experiments"),
        h("a", { href: "#/", class: experiment ? "" : "active" }, "All runs"),
        ex.experiments.map((name) => h("a", {
          href: "#/?experiment=" + encodeURIComponent(name),
          class: name === experiment ? "active" : "",
        }, name)));
    } catch (err) { side.append(errorBox(err)); }

    function sortValue(run, key) {
      if (key.startsWith("m:")) {
        const value = run.metrics[key.slice(2)];
        return typeof value === "number" ? value : -Infinity;
      }
      if (key === "tags") return JSON.stringify(run.tags);
      return run[key] ?? "";
    }

    function draw() {
      if (!state.data) return;
      const { runs, metrics } = state.data;
      const shown = runs.filter((run) => {
        if (state.status && run.status !== state.status) return false;
        if (!state.filter) return true;
        const text = [run.name, run.id, run.experiment, run.status,
          ...Object.entries(run.tags).map(([k, v]) => (v === null ? k : `${k}=${v}`))].join(" ").toLowerCase();
        return text.includes(state.filter);
      });
      shown.sort((a, b) => {
        const x = sortValue(a, state.sort), y = sortValue(b, state.sort);
        const c = x < y ? -1 : x > y ? 1 : 0;
        return state.desc ? -c : c;
      });
      const header = (label, key) => h("th", {
        class: "sortable" + (state.sort === key ? (state.desc ? " desc" : " asc") : ""),
        onclick: () => { state.desc = state.sort === key ? !state.desc : key !== "name"; state.sort = key; draw(); },
      }, label);
      const rows = shown.map((run) => h("tr", { "data-run": run.id },
        h("td", {}, h("input", {
          type: "checkbox", "aria-label": "select for comparison", checked: state.selected.has(run.id),
          onchange: (e) => {
            if (e.target.checked) state.selected.add(run.id); else state.selected.delete(run.id);
            compare.disabled = state.selected.size < 2;
          },
        })),
        h("td", {}, h("a", { href: "#/run/" + encodeURIComponent(run.id) }, run.name),
          run.parent ? h("span", { class: "muted small" }, " (child)") : null),
        h("td", {}, badge(run.status)),
        h("td", {}, fmtTime(run.start)),
        h("td", {}, fmtDuration(run.duration)),
        h("td", {}, tagList(run.tags)),
        metrics.map((m) => h("td", { class: "num" }, fmtValue(run.metrics[m])))));
      table.replaceChildren(h("table", { class: "runs", id: "runs-table" },
        h("thead", {}, h("tr", {}, h("th", {}, ""), header("Name", "name"), header("Status", "status"),
          header("Started", "start"), header("Duration", "duration"), header("Tags", "tags"),
          metrics.map((m) => header(m, "m:" + m)))),
        h("tbody", {}, rows)),
        shown.length ? null : h("p", { class: "muted" }, runs.length ? "No run matches." : "No runs recorded yet."));
      compare.disabled = state.selected.size < 2;
    }

    async function load() {
      try {
        state.data = await api("runs", { experiment });
        if (v.stopped) return;
        draw();
      } catch (err) { table.replaceChildren(errorBox(err)); }
      if (!v.stopped) {
        const live = state.data && state.data.runs.some((r) => r.running);
        v.timer = setTimeout(load, live ? POLL_MS * 2 : 10000);
      }
    }
    load();
  }

  // -- charts --------------------------------------------------------------------------------

  function chartWidth(el) { return Math.max(280, (el.clientWidth || 560) - 4); }

  function makeChart(v, el, { xs, ys, labels, xLabel, time, onZoom }) {
    const opts = {
      width: chartWidth(el),
      height: 220,
      scales: { x: { time: !!time } },
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      series: [{ label: xLabel }].concat(labels.map((label, i) => ({
        label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true, points: { show: false },
      }))),
      hooks: onZoom ? { setScale: [(u, key) => { if (key === "x") onZoom(u); }] } : {},
    };
    const chart = new uPlot(opts, [xs, ...ys], el);
    v.charts.add(chart);
    return chart;
  }

  function resizeCharts() {
    if (!view) return;
    for (const chart of view.charts) {
      const el = chart.root.parentElement;
      if (el) chart.setSize({ width: chartWidth(el), height: 220 });
    }
  }
  window.addEventListener("resize", () => { clearTimeout(resizeCharts.t); resizeCharts.t = setTimeout(resizeCharts, 150); });

  // One card per metric; it loads when it scrolls into view and reloads when the metric grows.
  function metricCard(v, runId, metric) {
    const body = h("div", { class: "chart-body" });
    const note = h("span", { class: "muted small note" });
    const controls = h("span", { class: "controls" });
    const card = h("div", {
      class: "card", "data-metric": metric.name, "data-kind": metric.kind, "data-state": "idle",
    }, h("div", { class: "card-head" },
      h("span", { class: "metric-name", title: metric.description || metric.name }, metric.name),
      h("span", { class: "muted small" }, ` ${metric.kind}`), controls), body, note);
    const state = { metric, loaded: false, loading: false, chart: null, x: "auto", cols: [], zoom: null, visible: false };
    card.metricState = state;

    if (metric.kind === "scalar") {
      const xSel = h("select", { class: "x-select", "aria-label": "x axis" },
        ["auto", "step", "index", "time"].map((x) => h("option", { value: x }, x === "auto" ? "x: auto" : `x: ${x}`)));
      xSel.addEventListener("change", () => { state.x = xSel.value; state.zoom = null; load(true); });
      controls.append(xSel);
    }
    if (metric.kind !== "image") {
      controls.append(h("a", {
        class: "small", href: "api/" + runPath(runId) + "/metric.csv?" + new URLSearchParams({ name: metric.name }),
      }, "CSV"));
    }

    function drawLine(data) {
      const time = data.x === "time";
      if (!state.zoom) state.range = data.range;
      const xs = data.xs, ys = [data.ys];
      if (state.chart && state.chartX === data.x && state.chartKind === "line") {
        state.chart.setData([xs, ...ys], !state.zoom);
      } else {
        if (state.chart) { state.chart.destroy(); v.charts.delete(state.chart); }
        body.replaceChildren();
        state.chart = makeChart(v, body, {
          xs, ys, labels: [metric.name], xLabel: data.x, time,
          onZoom: (u) => {
            if (state.ignoreScale) return;
            const { min, max } = u.scales.x;
            const full = state.range;
            const whole = !full || (min <= full[0] && max >= full[1]);
            const zoom = whole ? null : [min, max];
            if (JSON.stringify(zoom) === JSON.stringify(state.zoom)) return;
            state.zoom = zoom;
            if (state.downsampled || state.wasZoomed) {
              state.wasZoomed = !!zoom;
              clearTimeout(state.zoomTimer);
              state.zoomTimer = setTimeout(() => load(true), 120);
            }
          },
        });
        state.chartX = data.x;
        state.chartKind = "line";
      }
      if (!state.zoom) state.downsampled = data.downsampled;
      card.dataset.points = String(xs.length);
      const parts = [`${(data.drawable ?? xs.length).toLocaleString()} points`];
      if (data.downsampled) parts.push(`${xs.length.toLocaleString()} drawn (downsampled)`);
      if (data.skipped) parts.push(`${data.skipped} not drawn (NaN, infinite or text)`);
      if (data.lists > 1) parts.push(`latest of ${data.lists} lists`);
      note.textContent = parts.join(" · ");
    }

    function drawXY(data) {
      const xs = data.xs;
      const key = data.x + "|" + data.y.join(",");
      if (state.chart && state.chartKey === key) {
        state.chart.setData([xs, ...data.ys]);
      } else {
        if (state.chart) { state.chart.destroy(); v.charts.delete(state.chart); }
        body.replaceChildren();
        state.chart = makeChart(v, body, { xs, ys: data.ys, labels: data.y, xLabel: data.x });
        state.chartKey = key;
        state.chartKind = "xy";
      }
      card.dataset.points = String(xs.length);
      controls.querySelectorAll(".col-select").forEach((el) => el.remove());
      const xSel = h("select", { class: "col-select", "aria-label": "x column" },
        data.numeric.map((c) => h("option", { value: c, selected: c === data.x }, `x: ${c}`)));
      const ySel = h("select", { class: "col-select", multiple: true, "aria-label": "y columns", size: Math.min(3, data.numeric.length) },
        data.numeric.filter((c) => c !== data.x).map((c) => h("option", { value: c, selected: data.y.includes(c) }, c)));
      const pick = () => { state.cols = [xSel.value, ...[...ySel.selectedOptions].map((o) => o.value)]; load(true); };
      xSel.addEventListener("change", pick);
      ySel.addEventListener("change", pick);
      controls.prepend(xSel, ySel);
      note.textContent = `${data.length} rows` + (data.downsampled ? ` · ${xs.length} drawn` : "");
    }

    function drawTable(data) {
      if (state.chart) { state.chart.destroy(); v.charts.delete(state.chart); state.chart = null; }
      const rows = data.rows || [];
      body.replaceChildren(h("div", { class: "table-scroll" }, h("table", { class: "values" },
        h("thead", {}, h("tr", {}, (data.columns || []).map((c) => h("th", {}, c)))),
        h("tbody", {}, rows.slice().reverse().map((r) => h("tr", {},
          r.map((c, i) => h("td", {}, data.columns[i] === "time" ? fmtTime(c) : fmtValue(c)))))))));
      card.dataset.points = "0";
      note.textContent = `${(data.length ?? data.count ?? rows.length).toLocaleString()} values` +
        (data.shown && data.shown < (data.length ?? data.count) ? `, the latest ${data.shown} shown (newest first)` : " (newest first)");
    }

    function drawImages(data) {
      body.replaceChildren(h("div", { class: "images" }, data.files.map((name) =>
        h("a", { href: fileUrl(runId, name), target: "_blank", rel: "noopener noreferrer" },
          h("img", { src: fileUrl(runId, name), alt: metric.name, loading: "lazy" })))));
      note.textContent = data.files.length > 1 ? `${data.files.length} images, the latest last` : "";
    }

    async function load(force) {
      if (state.loading || (!force && state.loaded)) return;
      state.loading = true;
      card.dataset.state = state.loaded ? "updating" : "loading";
      try {
        const params = { name: metric.name, x: state.x, col: state.cols, points: Math.min(4000, Math.max(500, 2 * chartWidth(body))) };
        if (state.zoom) { params.lo = state.zoom[0]; params.hi = state.zoom[1]; }
        const data = await api(runPath(runId) + "/metric", params);
        if (v.stopped) return;
        state.ignoreScale = true;
        if (data.chart === "line") drawLine(data);
        else if (data.chart === "xy") drawXY(data);
        else if (data.chart === "image") drawImages(data);
        else drawTable(data);
        state.ignoreScale = false;
        state.loaded = true;
        state.count = metric.count;
        card.dataset.state = "ready";
      } catch (err) {
        body.replaceChildren(errorBox(err));
        card.dataset.state = "error";
      } finally {
        state.loading = false;
        state.ignoreScale = false;
      }
    }
    state.load = load;
    state.update = (metricNow) => {
      const grew = metricNow.count !== state.metric.count;
      state.metric = metricNow;
      metric = metricNow;
      if (grew && state.loaded && state.visible && !state.zoom) load(true);
      else if (grew) state.loaded = false;
    };
    return card;
  }

  // -- one run -------------------------------------------------------------------------------

  async function showRun(runId) {
    const v = newView();
    const header = h("div", { class: "run-head" });
    const metricFilter = h("input", { type: "search", placeholder: "filter metrics…", id: "metric-filter" });
    const grid = h("div", { class: "grid", id: "charts" });
    const details = h("div", { class: "details" });
    const files = h("div", {});
    const children = h("div", {});
    const logs = logPanel(v, runId);
    main.append(header,
      section("Metrics", h("div", { class: "toolbar" }, metricFilter), grid),
      section("Details", details),
      section("Files", files),
      section("Child runs", children),
      logs.panel);

    const cards = new Map();
    v.observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        const state = entry.target.metricState;
        state.visible = entry.isIntersecting;
        if (entry.isIntersecting) state.load(false);
      }
    }, { rootMargin: "300px" });
    metricFilter.addEventListener("input", () => {
      const q = metricFilter.value.toLowerCase();
      for (const [name, card] of cards) card.hidden = !!q && !name.toLowerCase().includes(q);
    });

    function drawHeader(run) {
      document.title = `${run.name} · logbridge`;
      document.body.dataset.runStatus = run.status;
      header.replaceChildren(
        h("div", { class: "crumbs" }, h("a", { href: "#/?experiment=" + encodeURIComponent(run.experiment) }, run.experiment),
          run.parent ? [" / ", h("a", { href: "#/run/" + encodeURIComponent(run.parent) }, "parent run")] : null),
        h("h1", {}, run.name, " ", badge(run.status)),
        h("div", { class: "facts" },
          h("span", {}, "id ", h("code", {}, run.id)),
          h("span", {}, "started ", fmtTime(run.start)),
          h("span", { id: "run-duration" }, (run.running ? "running for " : "took ") + fmtDuration(run.duration)),
          h("span", {}, `${run.host} · pid ${run.pid}`),
          h("span", {}, tagList(run.tags))));
    }

    function drawDetails(run) {
      const blocks = [];
      if (run.error) {
        blocks.push(h("div", { class: "error-box" }, h("h3", {}, "Error"),
          h("p", {}, `${run.error.type || "Error"}: ${run.error.message || ""}`),
          run.error.traceback ? h("pre", {}, run.error.traceback) : null));
      }
      if (Object.keys(run.drops || {}).length) {
        blocks.push(h("div", { class: "warn-box" }, h("h3", {}, "Not recorded"), kvTable(run.drops, "")));
      }
      blocks.push(h("div", { class: "cols" },
        h("div", {}, h("h3", {}, "Tags"), kvTable(run.tags, "No tags.")),
        h("div", {}, h("h3", {}, "Properties"), kvTable(run.properties, "No properties.")),
        h("div", {}, h("h3", {}, "Environment"), kvTable(run.environment, "Not captured."))));
      details.replaceChildren(...blocks);
      files.replaceChildren(run.files.length ? h("table", { class: "files" },
        run.files.map((f) => h("tr", {},
          h("td", {}, h("a", { href: fileUrl(runId, f.name, true), download: "" }, f.name)),
          h("td", { class: "num" }, fmtSize(f.size)), h("td", {}, fmtTime(f.time))))) :
        h("p", { class: "muted" }, "No files."));
      children.replaceChildren(run.children.length ? h("table", { class: "runs" },
        run.children.map((c) => h("tr", {},
          h("td", {}, h("a", { href: "#/run/" + encodeURIComponent(c.id) }, c.name)),
          h("td", {}, badge(c.status)), h("td", {}, fmtDuration(c.duration))))) :
        h("p", { class: "muted" }, "No child runs."));
    }

    function drawMetrics(run) {
      for (const metric of run.metrics) {
        const card = cards.get(metric.name);
        if (card) { card.metricState.update(metric); continue; }
        const fresh = metricCard(v, runId, metric);
        cards.set(metric.name, fresh);
        grid.append(fresh);
        v.observer.observe(fresh);
      }
      if (!run.metrics.length) grid.replaceChildren(h("p", { class: "muted" }, "No metrics."));
      else grid.querySelector(":scope > p.muted")?.remove();
    }

    let wasRunning = false;
    async function refresh() {
      try {
        const run = await api(runPath(runId));
        if (v.stopped) return;
        drawHeader(run);
        drawDetails(run);
        drawMetrics(run);
        logs.setLive(run.running);
        if (run.running || wasRunning) logs.poll();
        wasRunning = run.running;
        document.body.dataset.updated = String(Number(document.body.dataset.updated || 0) + 1);
        if (run.running) v.timer = setTimeout(refresh, POLL_MS);
      } catch (err) {
        if (v.stopped) return;
        header.replaceChildren(errorBox(err));
        v.timer = setTimeout(refresh, POLL_MS * 4);
      }
    }
    await refresh();
    logs.reload();
  }

  // -- logs ----------------------------------------------------------------------------------

  function logPanel(v, runId) {
    const level = h("select", { id: "log-level", "aria-label": "level" }, LEVELS.map(([value, label]) => h("option", { value }, label)));
    const logger = h("input", { type: "search", placeholder: "logger", id: "log-logger" });
    const search = h("input", { type: "search", placeholder: "search messages", id: "log-search" });
    const follow = h("label", { class: "small" }, h("input", { type: "checkbox", id: "log-follow", checked: true }), " follow");
    const body = h("tbody", {});
    const more = h("button", { hidden: true }, "Load more");
    const status = h("span", { class: "muted small", id: "log-status" });
    const panel = section("Logs", h("div", { class: "toolbar" }, level, logger, search, follow, status),
      h("div", { class: "log-scroll" }, h("table", { class: "logs", id: "logs" }, body)), more);
    const state = { last: 0, live: false, busy: false, shown: 0 };
    const LIMIT = 1000, KEEP = 5000;

    function row(r) {
      return h("tr", { class: "lvl-" + String(r.level || "").toLowerCase() },
        h("td", { class: "time" }, fmtTime(r.time)),
        h("td", { class: "level" }, r.level || ""),
        h("td", { class: "logger" }, r.logger || ""),
        h("td", { class: "message" }, r.message || "",
          r.exception ? h("details", {}, h("summary", {}, "traceback"), h("pre", {}, r.exception)) : null));
    }

    async function fetchMore() {
      if (state.busy) return;
      state.busy = true;
      try {
        const data = await api(runPath(runId) + "/logs", {
          after: state.last, level: level.value, logger: logger.value, q: search.value, limit: LIMIT,
        });
        if (v.stopped) return;
        const scroller = body.closest(".log-scroll");
        const atBottom = scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - 8;
        body.append(...data.records.map(row));
        state.shown += data.records.length;
        while (body.children.length > KEEP) body.firstElementChild.remove();
        state.last = data.last;
        more.hidden = data.records.length < LIMIT;
        status.textContent = state.shown ? `${state.shown} records` : "no records";
        if (follow.querySelector("input").checked && atBottom) scroller.scrollTop = scroller.scrollHeight;
      } catch (err) {
        status.textContent = String(err.message || err);
      } finally {
        state.busy = false;
      }
    }

    function reload() {
      state.last = 0;
      state.shown = 0;
      body.replaceChildren();
      fetchMore();
    }

    let debounce = 0;
    const changed = () => { clearTimeout(debounce); debounce = setTimeout(reload, 250); };
    level.addEventListener("change", reload);
    logger.addEventListener("input", changed);
    search.addEventListener("input", changed);
    more.addEventListener("click", fetchMore);

    return {
      panel,
      reload,
      setLive(live) { state.live = live; },
      poll() { if (follow.querySelector("input").checked && state.last >= 0) fetchMore(); },
    };
  }

  // -- compare -------------------------------------------------------------------------------

  async function showCompare(ids, params) {
    const v = newView();
    const pick = h("select", { id: "compare-metric", "aria-label": "metric" });
    const xSel = h("select", { "aria-label": "x axis" }, ["auto", "step", "index", "time"].map((x) => h("option", { value: x }, `x: ${x}`)));
    const chartBox = h("div", { class: "card wide", id: "compare-chart", "data-state": "idle" }, h("div", { class: "chart-body" }));
    const legend = h("div", { class: "legend" });
    main.append(h("h1", {}, `Compare ${ids.length} runs`), h("div", { class: "toolbar" }, pick, xSel), chartBox, legend);
    let runs;
    try {
      runs = await Promise.all(ids.map((id) => api(runPath(id))));
    } catch (err) { main.append(errorBox(err)); return; }
    if (v.stopped) return;
    const counts = new Map();
    for (const run of runs) {
      for (const m of run.metrics) if (m.kind === "scalar" || m.kind === "list") counts.set(m.name, (counts.get(m.name) || 0) + 1);
    }
    const names = [...counts.keys()].sort((a, b) => counts.get(b) - counts.get(a) || a.localeCompare(b));
    if (!names.length) { chartBox.replaceChildren(h("p", { class: "muted" }, "These runs have no numeric metric.")); return; }
    pick.append(...names.map((n) => h("option", { value: n }, `${n} (${counts.get(n)} of ${runs.length})`)));
    if (params.get("metric") && counts.has(params.get("metric"))) pick.value = params.get("metric");
    legend.replaceChildren(...runs.map((run, i) => h("div", {},
      h("span", { class: "swatch", style: null, "data-color": i % COLORS.length }),
      h("a", { href: "#/run/" + encodeURIComponent(run.id) }, run.name), " ", badge(run.status))));
    legend.querySelectorAll(".swatch").forEach((el) => { el.style.background = COLORS[Number(el.dataset.color)]; });

    async function draw() {
      const name = pick.value;
      chartBox.dataset.state = "loading";
      const body = chartBox.querySelector(".chart-body");
      try {
        const has = runs.filter((run) => run.metrics.some((m) => m.name === name));
        const fetchAll = (x) => Promise.all(has.map((run) => api(runPath(run.id) + "/metric", { name, x })));
        let data = await fetchAll(xSel.value);
        // Runs that resolved "auto" differently (steps in one, none in another) meet on the index.
        if (new Set(data.map((d) => d.x)).size > 1) data = await fetchAll("index");
        if (data.some((d) => d.chart !== "line")) throw new Error(`${name} cannot be drawn as a line for every run`);
        if (v.stopped) return;
        for (const chart of v.charts) chart.destroy();
        v.charts.clear();
        body.replaceChildren();
        const aligned = uPlot.join(data.map((d) => [d.xs, d.ys]));
        makeChart(v, body, {
          xs: aligned[0], ys: aligned.slice(1), labels: has.map((r) => r.name), xLabel: data[0].x, time: data[0].x === "time",
        });
        chartBox.dataset.points = String(aligned[0].length);
        chartBox.dataset.series = String(has.length);
        chartBox.dataset.state = "ready";
      } catch (err) {
        body.replaceChildren(errorBox(err));
        chartBox.dataset.state = "error";
      }
    }
    pick.addEventListener("change", draw);
    xSel.addEventListener("change", draw);
    draw();
  }

  window.addEventListener("hashchange", route);
  route();
})();
