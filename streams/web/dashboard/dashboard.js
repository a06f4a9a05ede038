// Tocsin dashboard: incident tables, one incident's timeline, and SVG charts
// of the response metrics API. No outside libraries.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const COLORS = ["#2f6fdf", "#d35400", "#27ae60", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d"];
const WINDOWS = ["hourly", "daily", "weekly"];
const CHART = { width: 640, height: 240, left: 48, right: 12, top: 12, bottom: 36 };

function chosenWindow() {
  const requested = new URLSearchParams(window.location.search).get("window");
  return WINDOWS.includes(requested) ? requested : "hourly";
}

async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) {
    throw new Error(`${path} returned ${response.status}`);
  }
  return response.json();
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) {
    td.className = className;
  }
  row.appendChild(td);
}

function fillIncidents(tableId, incidents) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren();
  for (const incident of incidents) {
    const row = document.createElement("tr");
    row.dataset.incidentId = incident.incident_id;
    cell(row, incident.incident_id);
    cell(row, incident.severity, `sev-${incident.severity}`);
    cell(row, incident.service);
    cell(row, incident.title);
    cell(row, incident.opened_at);
    cell(row, incident.state);
    row.addEventListener("click", () => showTimeline(incident.incident_id));
    body.appendChild(row);
  }
}

async function showTimeline(incidentId) {
  const incident = await getJson(`/incidents/${encodeURIComponent(incidentId)}`);
  document.getElementById("timeline-id").textContent = incidentId;
  document.getElementById("postmortem-link").href =
    `/incidents/${encodeURIComponent(incidentId)}/postmortem`;
  const list = document.getElementById("timeline");
  list.replaceChildren();
  for (const event of incident.timeline || []) {
    const item = document.createElement("li");
    item.className = "event";
    item.textContent = `${event.at}  ${event.kind}  by ${event.actor}`;
    list.appendChild(item);
  }
  document.getElementById("timeline-panel").hidden = false;
}

function svgElement(name, attributes) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) {
    element.setAttribute(key, String(value));
  }
  return element;
}

function formatTime(seconds, windowName) {
  const iso = new Date(seconds * 1000).toISOString();
  return windowName === "hourly" ? iso.slice(5, 13).replace("T", " ") + "h" : iso.slice(0, 10);
}

// Seconds between the starts of two consecutive windows of each kind.
const WINDOW_STEP_S = { hourly: 3600, daily: 86400, weekly: 86400 };
// At most this many empty windows are filled in, so a long gap stays cheap.
const MAX_FILLED_WINDOWS = 2000;

// Split sorted points into runs of consecutive windows, so a line breaks
// where a window is missing or has a null value instead of joining across it.
function segments(points, windowName) {
  const step = WINDOW_STEP_S[windowName];
  const runs = [];
  let run = [];
  let previous = null;
  for (const p of points) {
    const gap = previous !== null && p.x - previous.x > step;
    if (p.y === null || gap) {
      if (run.length > 0) {
        runs.push(run);
      }
      run = [];
    }
    if (p.y !== null) {
      run.push(p);
    }
    previous = p;
  }
  if (run.length > 0) {
    runs.push(run);
  }
  return runs;
}

// Add a zero point for each window without a row between the first and the
// last, for counts, where an empty window means none.
function zeroFilled(points, windowName) {
  const step = WINDOW_STEP_S[windowName];
  const sorted = [...points].sort((a, b) => a.x - b.x);
  const filled = [];
  for (const p of sorted) {
    const previous = filled.length > 0 ? filled[filled.length - 1].x : null;
    for (let x = previous === null ? p.x : previous + step, added = 0; x < p.x && added < MAX_FILLED_WINDOWS; x += step, added += 1) {
      filled.push({ x, y: 0 });
    }
    filled.push(p);
  }
  return filled;
}

// Draw series of {x, y} points (x in Unix seconds) as lines with one circle
// per point. Points with a null y are left out, and lines break there.
function lineChart(svgId, series, windowName) {
  const svg = document.getElementById(svgId);
  svg.replaceChildren();
  const points = series.flatMap((s) => s.points.filter((p) => p.y !== null));
  if (points.length === 0) {
    const text = svgElement("text", { x: CHART.width / 2, y: CHART.height / 2, "text-anchor": "middle", class: "empty" });
    text.textContent = "no data in this window";
    svg.appendChild(text);
    svg.dataset.points = "0";
    return;
  }
  const xs = points.map((p) => p.x);
  const ys = points.map((p) => p.y);
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs);
  const yMax = Math.max(...ys, 0) || 1;
  const plotWidth = CHART.width - CHART.left - CHART.right;
  const plotHeight = CHART.height - CHART.top - CHART.bottom;
  const xAt = (x) => CHART.left + (xMax === xMin ? plotWidth / 2 : ((x - xMin) / (xMax - xMin)) * plotWidth);
  const yAt = (y) => CHART.top + plotHeight - (y / yMax) * plotHeight;

  for (let step = 0; step <= 4; step += 1) {
    const value = (yMax * step) / 4;
    const y = yAt(value);
    svg.appendChild(svgElement("line", { x1: CHART.left, x2: CHART.width - CHART.right, y1: y, y2: y, class: "grid" }));
    const label = svgElement("text", { x: CHART.left - 4, y: y + 3, "text-anchor": "end" });
    label.textContent = value >= 10 ? value.toFixed(0) : value.toFixed(2);
    svg.appendChild(label);
  }
  const bottom = CHART.height - CHART.bottom;
  svg.appendChild(svgElement("line", { x1: CHART.left, x2: CHART.width - CHART.right, y1: bottom, y2: bottom, class: "axis" }));
  const ends = xMax === xMin ? [[xMin, "middle"]] : [[xMin, "start"], [xMax, "end"]];
  for (const [x, anchor] of ends) {
    const label = svgElement("text", { x: xAt(x), y: bottom + 14, "text-anchor": anchor });
    label.textContent = formatTime(x, windowName);
    svg.appendChild(label);
  }

  let drawn = 0;
  let legendX = CHART.left + 8;
  series.forEach((s, index) => {
    const color = COLORS[index % COLORS.length];
    const visible = s.points.filter((p) => p.y !== null).sort((a, b) => a.x - b.x);
    if (visible.length === 0) {
      return;
    }
    const sorted = [...s.points].sort((a, b) => a.x - b.x);
    for (const run of segments(sorted, windowName)) {
      const path = run.map((p, i) => `${i === 0 ? "M" : "L"}${xAt(p.x).toFixed(1)},${yAt(p.y).toFixed(1)}`).join(" ");
      svg.appendChild(svgElement("path", { d: path, class: "line", stroke: color }));
    }
    for (const p of visible) {
      const dot = svgElement("circle", { cx: xAt(p.x), cy: yAt(p.y), r: 3.5, fill: color, class: "point" });
      dot.dataset.series = s.name;
      const title = svgElement("title", {});
      title.textContent = `${s.name} ${formatTime(p.x, windowName)}: ${p.y}`;
      dot.appendChild(title);
      svg.appendChild(dot);
      drawn += 1;
    }
    const legend = svgElement("text", { x: legendX, y: CHART.height - 6, fill: color });
    legend.textContent = s.name;
    svg.appendChild(legend);
    // An estimate of the text width: about 6 px a character at the 10 px font.
    legendX += s.name.length * 6 + 16;
  });
  svg.dataset.points = String(drawn);
}

function minutes(seconds) {
  return seconds === null || seconds === undefined ? null : Math.round((seconds / 60) * 100) / 100;
}

function perService(rows, pick) {
  const byService = new Map();
  for (const row of rows) {
    if (!byService.has(row.service)) {
      byService.set(row.service, []);
    }
    byService.get(row.service).push({ x: row.window_start, y: pick(row) });
  }
  return [...byService.entries()].sort().map(([name, points]) => ({ name, points }));
}

async function load() {
  const windowName = chosenWindow();
  for (const link of document.querySelectorAll("#windows a")) {
    link.classList.toggle("current", link.dataset.window === windowName);
  }
  const status = document.getElementById("status");
  try {
    const [open, recent, services, overall] = await Promise.all([
      getJson("/incidents?state=open&limit=100"),
      getJson("/incidents?limit=50"),
      getJson(`/api/metrics/${windowName}?kind=service`),
      getJson(`/api/metrics/${windowName}/all`),
    ]);
    fillIncidents("open-incidents", open.incidents);
    document.getElementById("open-count").textContent = `(${open.total})`;
    fillIncidents("incidents", recent.incidents);
    lineChart("chart-mtta", perService(services.rows, (r) => minutes(r.mtta_s)), windowName);
    lineChart("chart-mttr", perService(services.rows, (r) => minutes(r.mttr_s)), windowName);
    const totals = overall.rows;
    const opened = zeroFilled(totals.map((r) => ({ x: r.window_start, y: r.opened })), windowName);
    lineChart("chart-volume", [{ name: "opened", points: opened }], windowName);
    lineChart(
      "chart-sla",
      [
        { name: "acknowledged in time", points: totals.map((r) => ({ x: r.window_start, y: r.sla.tta })) },
        { name: "resolved in time", points: totals.map((r) => ({ x: r.window_start, y: r.sla.ttr })) },
      ],
      windowName,
    );
    status.textContent = `${windowName} windows, ${recent.total} incidents`;
  } catch (error) {
    status.textContent = `failed to load: ${error.message}`;
  }
  document.body.dataset.ready = "true";
}

load();
