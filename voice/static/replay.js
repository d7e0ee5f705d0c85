"use strict";
// Replay: stereo recording synchronised with the transcript; click a line to seek, the playing line is highlighted.
const token = new URLSearchParams(location.search).get("token");
const withToken = (url) => token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url;
const root = document.getElementById("replay");
const sid = encodeURIComponent(root.dataset.callSid);
const audio = document.getElementById("audio");

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

async function load() {
  const response = await fetch(withToken("/api/calls/" + sid));
  if (!response.ok) { document.getElementById("summary").textContent = "Call not found."; return; }
  const call = await response.json();
  const summary = document.getElementById("summary");
  summary.append(el("strong", "", call.status), " · " + (call.duration || 0).toFixed(1) + " s · from " +
    (call.from || "unknown") + " · agent " + (call.agent || "unknown") + " · outcome " +
    (call.outcome.disposition || "not set"));
  audio.src = withToken("/api/calls/" + sid + "/recording.wav");
  const duration = call.duration || 1;
  const timeline = document.getElementById("timeline");
  for (const p of call.phases || []) {
    const band = el("div", "band " + p.phase);
    band.style.left = (100 * p.start / duration) + "%";
    band.style.width = (100 * (p.end - p.start) / duration) + "%";
    band.title = p.phase;
    timeline.append(band);
  }
  const colours = {opening: "#c9d3dd", venting: "#e4572e", question: "#2e86de", resolution: "#3aa76d",
    closing: "#8e7cc3"};
  const legend = document.getElementById("legend");
  for (const phase of new Set((call.phases || []).map((p) => p.phase))) {
    const item = el("span", "", phase);
    item.style.setProperty("--c", colours[phase] || "#b8c0c8");
    legend.append(item);
  }
  const prompts = document.getElementById("prompts");
  for (const p of call.prompts || []) {
    const marker = el("div", "marker");
    marker.style.left = (100 * p.at / duration) + "%";
    marker.title = p.id;
    timeline.append(marker);
    const adhered = p.adhered === true ? " · followed" : p.adhered === false ? " · not followed" : "";
    const li = el("li", "", p.at.toFixed(1) + " s — " + p.text + (p.whispered ? " (whispered)" : "") + adhered);
    li.addEventListener("click", () => { audio.currentTime = p.at; });
    prompts.append(li);
  }
  if (!(call.prompts || []).length) prompts.append(el("li", "muted", "No prompts on this call."));
  const list = document.getElementById("transcript");
  const items = [];
  for (const u of call.utterances) {
    const li = el("li", u.speaker);
    li.dataset.start = u.start;
    li.dataset.end = u.end;
    li.append(el("span", "muted", u.start.toFixed(1) + " s"), el("span", "", u.speaker),
      el("span", "phase " + u.phase, u.phase), el("span", "", u.text));
    li.addEventListener("click", () => { audio.currentTime = u.start; audio.play().catch(() => {}); });
    list.append(li);
    items.push(li);
  }
  audio.addEventListener("timeupdate", () => {
    const t = audio.currentTime;
    for (const li of items) li.classList.toggle("current", t >= +li.dataset.start && t <= +li.dataset.end + 0.3);
  });
}
load();
