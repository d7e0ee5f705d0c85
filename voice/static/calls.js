"use strict";
// Call list: reads /api/calls with the filter form's values.
const token = new URLSearchParams(location.search).get("token");
const withToken = (url) => token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url;

async function load() {
  const form = new FormData(document.getElementById("filters"));
  const params = new URLSearchParams();
  for (const [k, v] of form) if (v) params.set(k, v);
  const response = await fetch(withToken("/api/calls?" + params));
  const body = await response.json();
  const rows = document.querySelector("#calls tbody");
  rows.replaceChildren();
  for (const call of body.calls || []) {
    const tr = document.createElement("tr");
    const link = document.createElement("a");
    link.href = withToken("/calls/" + encodeURIComponent(call.call_sid));
    link.textContent = call.call_sid;
    const cells = [call.started_at, link, call.from, call.agent, call.status,
      call.duration == null ? "" : call.duration.toFixed(1) + " s", call.outcome.disposition || ""];
    for (const value of cells) {
      const td = document.createElement("td");
      td.append(value ?? "");
      tr.append(td);
    }
    rows.append(tr);
  }
}
document.getElementById("filters").addEventListener("submit", (e) => { e.preventDefault(); load(); });
load();
