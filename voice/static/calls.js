"use strict";
// Call list: search, filters, sort and pages, all server-side through GET /api/calls. The filters live in
// the page's URL, so a search can be bookmarked and the back button works.
const {el, getJSON} = cc;
const form = document.getElementById("filters");
const PAGE = 25;
let offset = 0;

function fromURL() {
  const query = new URLSearchParams(location.search);
  for (const field of form.elements) {
    if (field.name && query.has(field.name)) field.value = query.get(field.name);
  }
  offset = Math.max(0, parseInt(query.get("offset") || "0", 10) || 0);
}

function params() {
  const p = new URLSearchParams();
  for (const [k, v] of new FormData(form)) if (v) p.set(k, v);
  // Dates are whole days: "to" includes that day.
  if (p.has("until")) {
    const day = new Date(p.get("until") + "T00:00:00Z");
    day.setUTCDate(day.getUTCDate() + 1);
    p.set("until", day.toISOString().slice(0, 10));
  }
  return p;
}

function outcomeCell(call) {
  const d = call.outcome && call.outcome.disposition;
  if (!d) return el("span", "muted", "—");
  return el("span", "outcome " + d, d.replace("_", " ") + (call.outcome.source === "inferred" ? " (inferred)" : ""));
}

async function load() {
  const p = params();
  p.set("limit", PAGE);
  p.set("offset", offset);
  const shown = new URLSearchParams();
  for (const [k, v] of new FormData(form)) if (v) shown.set(k, v);
  if (offset) shown.set("offset", offset);
  const token = new URLSearchParams(location.search).get("token");
  if (token) shown.set("token", token);
  history.replaceState(null, "", "/calls" + (shown.toString() ? "?" + shown : ""));
  const body = await getJSON("/api/calls?" + p);
  const rows = document.querySelector("#calls tbody");
  rows.replaceChildren();
  for (const call of body.calls || []) {
    const tr = el("tr", call.status);
    const link = el("a", "", call.call_sid);
    link.href = cc.withToken("/calls/" + encodeURIComponent(call.call_sid));
    const phases = [...new Set((call.phases || []).map((x) => x.phase))];
    const phaseCell = el("span");
    for (const ph of phases) phaseCell.append(el("span", "phase " + ph, ph), " ");
    const started = (call.started_at || "").replace("T", " ").replace("Z", "");
    const cells = [started, link, call.from || "", call.agent || "", el("span", "status " + call.status, call.status),
      call.duration == null ? "" : cc.clock(call.duration), phaseCell, outcomeCell(call)];
    for (const value of cells) {
      const td = el("td");
      td.append(value ?? "");
      tr.append(td);
    }
    rows.append(tr);
  }
  if (!(body.calls || []).length) {
    const tr = el("tr");
    const td = el("td", "muted", "No calls match.");
    td.colSpan = 8;
    tr.append(td);
    rows.append(tr);
  }
  const total = body.total ?? (body.calls || []).length;
  document.getElementById("range").textContent = total
    ? (offset + 1) + "–" + (offset + (body.calls || []).length) + " of " + total : "";
  document.getElementById("prev").disabled = offset === 0;
  document.getElementById("next").disabled = offset + PAGE >= total;
}

form.addEventListener("submit", (e) => { e.preventDefault(); offset = 0; load(); });
form.addEventListener("change", () => { offset = 0; load(); });
document.getElementById("prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); load(); });
document.getElementById("next").addEventListener("click", () => { offset += PAGE; load(); });
fromURL();
load();
