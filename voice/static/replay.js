"use strict";
// Replay: the stereo recording synchronised with the transcript (click a line or the timeline to seek; the
// line being played is highlighted), phase bands and prompt markers, outcome, metrics, prompt adherence and
// export links. A call without a recording still shows everything else.
const {el, getJSON, clock} = cc;
const root = document.getElementById("replay");
const sid = encodeURIComponent(root.dataset.callSid);
const audio = document.getElementById("audio");
const timeline = document.getElementById("timeline");
const playhead = document.getElementById("playhead");
const COLOURS = {opening: "#c9d3dd", venting: "#e4572e", question: "#2e86de", resolution: "#3aa76d",
  closing: "#8e7cc3", other: "#b8c0c8"};
let duration = 1;

function seek(t) {
  if (!audio.hidden) {
    audio.currentTime = t;
    audio.play().catch(() => {});
  }
  highlight(t);
}

function highlight(t) {
  playhead.style.left = (100 * Math.min(t / duration, 1)) + "%";
  for (const li of document.querySelectorAll("#transcript li")) {
    li.classList.toggle("current", t >= +li.dataset.start && t <= +li.dataset.end + 0.3);
  }
}

function noRecording() {
  audio.hidden = true;
  audio.removeAttribute("src");
  document.getElementById("no-recording").hidden = false;
}

function metric(dl, name, value) {
  dl.append(el("dt", "", name), el("dd", "", value));
}

const signed = (x) => (x > 0 ? "+" : "") + x.toFixed(2);

async function load() {
  let call;
  try {
    call = await getJSON("/api/calls/" + sid);
  } catch {
    document.getElementById("summary").textContent = "Call not found.";
    noRecording();
    document.getElementById("no-recording").hidden = true;
    return;
  }
  duration = call.duration || Math.max(1, ...call.utterances.map((u) => u.end));
  const summary = document.getElementById("summary");
  summary.append(el("strong", "status " + call.status, call.status), " · " + clock(duration) + " · from " +
    (call.from || "unknown") + " · agent " + (call.agent || "unknown") + " · started " +
    (call.started_at || "").replace("T", " ").replace("Z", " UTC"));
  if (call.status === "live") {
    const watch = el("a", "", "watch it live");
    watch.href = cc.withToken("/console?call=" + sid);
    summary.append(" · ", watch);
  }
  if (call.has_recording || call.status === "live") {
    audio.src = cc.withToken("/api/calls/" + sid + "/recording.wav");
    audio.addEventListener("error", noRecording);
  } else {
    noRecording();
  }

  for (const p of call.phases || []) {
    const band = el("div", "band " + p.phase);
    band.style.left = (100 * p.start / duration) + "%";
    band.style.width = Math.max(0.3, 100 * (p.end - p.start) / duration) + "%";
    band.title = p.phase + " " + clock(p.start) + "–" + clock(p.end);
    timeline.append(band);
  }
  timeline.addEventListener("click", (e) => {
    const box = timeline.getBoundingClientRect();
    seek(duration * (e.clientX - box.left) / box.width);
  });
  const legend = document.getElementById("legend");
  for (const phase of new Set((call.phases || []).map((p) => p.phase))) {
    const item = el("span", "", phase);
    item.style.setProperty("--c", COLOURS[phase] || "#b8c0c8");
    legend.append(item);
  }
  if ((call.prompts || []).length) {
    const item = el("span", "marker-key", "prompt");
    legend.append(item);
  }

  const outcome = document.getElementById("outcome");
  const d = call.outcome && call.outcome.disposition;
  outcome.append(el("strong", d ? "outcome " + d : "muted", d ? d.replace("_", " ") : "not set"));
  if (d) outcome.append(" (" + (call.outcome.source === "agent" ? "set by the agent" : "inferred") + ")");
  if (call.outcome && call.outcome.note) outcome.append(el("div", "muted", call.outcome.note));

  const m = call.metrics || {};
  const dl = document.getElementById("metrics");
  if (typeof m.talk_ratio === "number") {
    metric(dl, "Talk ratio (agent)", Math.round(100 * m.talk_ratio) + " %");
  }
  if (typeof m.interruptions === "number") metric(dl, "Interruptions", String(m.interruptions));
  metric(dl, "Time to empathy", typeof m.time_to_empathy === "number" ? m.time_to_empathy.toFixed(1) + " s" : "—");
  if (typeof m.sentiment_start === "number" && typeof m.sentiment_end === "number") {
    metric(dl, "Customer sentiment", signed(m.sentiment_start) + " → " + signed(m.sentiment_end));
  }
  if (!dl.children.length) dl.append(el("dd", "muted", "No metrics yet."));

  const prompts = document.getElementById("prompts");
  let judged = 0;
  let followed = 0;
  for (const p of call.prompts || []) {
    const marker = el("div", "marker");
    marker.style.left = (100 * p.at / duration) + "%";
    marker.title = clock(p.at) + " " + p.id;
    timeline.append(marker);
    if (p.adhered === true || p.adhered === false) judged += 1;
    if (p.adhered === true) followed += 1;
    const state = p.adhered === true ? ["followed", "✓ followed"] : p.adhered === false ? ["missed", "✗ not followed"]
      : ["", ""];
    const li = el("li", state[0]);
    li.append(el("span", "time", clock(p.at)), el("span", "text", p.text + (p.whispered ? " (whispered)" : "")));
    if (state[1]) li.append(el("span", "adherence", state[1]));
    li.addEventListener("click", () => seek(p.at));
    prompts.append(li);
  }
  if (!(call.prompts || []).length) prompts.append(el("li", "muted", "No prompts on this call."));
  document.getElementById("adherence").textContent = judged ? followed + " of " + judged + " followed" : "";

  const exports = document.getElementById("exports");
  for (const [fmt, label] of [["json", "JSON"], ["vtt", "WebVTT"]]) {
    const a = el("a", "button", label);
    a.href = cc.withToken("/api/calls/" + sid + "/export?format=" + fmt);
    exports.append(a, " ");
  }

  const list = document.getElementById("transcript");
  for (const u of call.utterances) {
    const li = el("li", u.speaker);
    li.dataset.start = u.start;
    li.dataset.end = u.end;
    li.append(el("span", "time", clock(u.start)), el("span", "speaker", u.speaker),
      el("span", "phase " + u.phase, u.phase), el("span", "text", u.text));
    li.addEventListener("click", () => seek(u.start));
    list.append(li);
  }
  if (!call.utterances.length) list.append(el("li", "muted", "No speech was transcribed on this call."));
  audio.addEventListener("timeupdate", () => highlight(audio.currentTime));
}
load();
