"use strict";
// Supervisors' live board: every live call (phase, customer sentiment, elapsed time, last prompt) and alerts:
// long venting, no empathy (the coach's `no_empathy` card), a hostile call just ended (its
// `hostile_call_ended` card: check on the agent) and the same complaint on several calls at once.
// Click a call to monitor it in the console.
const {el, getJSON, clock, live, showStatus, sentimentClass} = cc;
const board = document.getElementById("board");
const LONG_VENTING = +board.dataset.venting;
const rows = document.querySelector("#live tbody");
const alerts = document.getElementById("alerts");
const count = document.getElementById("count");
const calls = new Map();
// complaint keyword -> call ids whose customer used it while venting
const complaints = new Map();
const alerted = new Set();
// What a complaint is about, by the words that name it: one topic on two or more calls looks systemic.
const TOPICS = {
  billing: "bill bills billing billed charge charged charges overcharged invoice payment payments fee fees price",
  refund: "refund refunds refunded money back",
  delivery: "delivery delivered deliver package parcel order shipping shipment courier late",
  connection: "internet outage connection wifi signal network router broadband speed down",
  account: "password login account locked access app website",
  contract: "contract cancel cancelling cancellation renewal plan upgrade subscription",
  repair: "engineer repair broken damaged faulty warranty appointment technician",
};
const TOPIC_OF = new Map();
for (const [topic, words] of Object.entries(TOPICS)) for (const w of words.split(" ")) TOPIC_OF.set(w, topic);

function callTime(c) { return c.at + (Date.now() - c.seenAt) / 1000; }

function alert(key, kind, sidForLink, text, linkTo = "/console?call=", label = "monitor") {
  if (alerted.has(key)) return;
  alerted.add(key);
  const none = alerts.querySelector(".none");
  if (none) none.remove();
  const li = el("li", "alert " + kind);
  li.append(el("span", "time", new Date().toTimeString().slice(0, 8)), el("span", "text", text));
  if (sidForLink) {
    const a = el("a", "", label);
    a.href = cc.withToken(linkTo + encodeURIComponent(sidForLink));
    li.append(a);
  }
  alerts.prepend(li);
}

function track(sid, fields) {
  let c = calls.get(sid);
  if (!c) {
    c = {sid, agent: "", from: "", startedAt: Date.now(), at: 0, seenAt: Date.now(), phase: null, phaseAt: 0,
      sentiment: null, prompt: "", ended: false};
    calls.set(sid, c);
  }
  Object.assign(c, fields);
  return c;
}

function render() {
  rows.replaceChildren();
  const live = [...calls.values()].sort((a, b) => a.startedAt - b.startedAt);
  for (const c of live) {
    const tr = el("tr", c.ended ? "ended" : "");
    tr.dataset.sid = c.sid;
    const link = el("a", "", c.sid.slice(0, 14) + (c.sid.length > 14 ? "…" : ""));
    link.href = cc.withToken("/console?call=" + encodeURIComponent(c.sid));
    link.title = c.sid;
    const phase = el("span", c.phase ? "phase " + c.phase : "muted", c.phase || "—");
    const venting = c.phase === "venting" && !c.ended ? " " + clock(callTime(c) - c.phaseAt) : "";
    const sentiment = c.sentiment === null ? el("span", "muted", "—")
      : el("span", "sentiment " + sentimentClass(c.sentiment), c.sentiment.toFixed(2));
    const elapsed = Math.max((Date.now() - c.startedAt) / 1000, callTime(c));
    const cells = [link, c.agent || "—", c.ended ? "ended" : clock(elapsed),
      phase, sentiment, c.prompt || ""];
    for (const value of cells) {
      const td = el("td");
      td.append(value);
      tr.append(td);
    }
    if (venting) tr.children[3].append(el("span", "muted", venting));
    tr.addEventListener("click", (e) => { if (e.target.tagName !== "A") location.href = link.href; });
    rows.append(tr);
  }
  const n = live.filter((c) => !c.ended).length;
  count.textContent = n + (n === 1 ? " live call" : " live calls");
  if (!live.length) {
    const tr = el("tr");
    const td = el("td", "muted", "No live calls right now.");
    td.colSpan = 6;
    tr.append(td);
    rows.append(tr);
  }
}

function checkVenting() {
  for (const c of calls.values()) {
    if (c.ended || c.phase !== "venting") continue;
    const seconds = callTime(c) - c.phaseAt;
    if (seconds > LONG_VENTING) {
      alert("venting:" + c.sid + ":" + c.phaseAt, "venting", c.sid,
        "Long venting: " + (c.agent || c.sid) + "'s caller has vented for " + Math.round(seconds) + " s");
    }
  }
}

function noteComplaint(sid, text) {
  const topics = new Set(text.toLowerCase().split(/[^a-z]+/).map((w) => TOPIC_OF.get(w)).filter(Boolean));
  for (const topic of topics) {
    const set = complaints.get(topic) || new Set();
    set.add(sid);
    complaints.set(topic, set);
    if (set.size >= 2) {
      alert("complaint:" + topic + ":" + set.size, "systemic", null,
        "Repeated complaint: " + topic + " on " + set.size + " calls at once, possibly systemic");
    }
  }
}

function onEvent(e) {
  // An ended call's row is dropped after a minute; its late events (the agent's outcome) must not bring
  // it back as a live call that never ends.
  if (!calls.has(e.call_sid) && (e.type === "outcome" || e.type === "call_ended")) return;
  const c = track(e.call_sid, {at: Math.max(e.at || 0, calls.has(e.call_sid) ? calls.get(e.call_sid).at : 0),
    seenAt: Date.now()});
  switch (e.type) {
    case "call_started":
      Object.assign(c, {agent: e.agent || "", from: e.from || "", startedAt: Date.now(), ended: false});
      break;
    case "phase": Object.assign(c, {phase: e.phase, phaseAt: e.at}); break;
    case "utterance":
      if (e.speaker === "customer") {
        if (typeof e.sentiment === "number") c.sentiment = e.sentiment;
        if (e.phase === "venting") noteComplaint(e.call_sid, e.text);
      }
      break;
    case "prompt":
      c.prompt = e.text;
      if (e.trigger === "no_empathy") {
        alert("empathy:" + e.call_sid, "empathy", e.call_sid,
          "No empathy yet: " + (c.agent || e.call_sid) + " hasn't acknowledged the complaint (" + clock(e.at) + ")");
      }
      if (e.trigger === "hostile_call_ended") {
        alert("hostile:" + e.call_sid, "hostile", e.call_sid,
          "Hostile call just ended: check on " + (c.agent || "the agent"), "/calls/", "replay");
      }
      break;
    case "call_ended":
      c.ended = true;
      // "Repeated complaint" counts calls that are live together, not every call seen since the page opened.
      for (const sids of complaints.values()) sids.delete(e.call_sid);
      setTimeout(() => { calls.delete(e.call_sid); render(); }, 60000);
      break;
  }
  render();
}

async function seed() {
  try {
    const current = (await getJSON("/api/calls?status=live&limit=200")).calls;
    // Calls that ended while the socket was down.
    const still = new Set(current.map((call) => call.call_sid));
    for (const c of calls.values()) {
      if (!c.ended && !still.has(c.sid)) {
        c.ended = true;
        setTimeout(() => { calls.delete(c.sid); render(); }, 60000);
      }
    }
    for (const call of current) {
      const phases = call.phases || [];
      const last = phases[phases.length - 1];
      const prompts = call.prompts || [];
      const seenAt = Date.now();
      const startedAt = Date.parse(call.started_at) || seenAt;
      track(call.call_sid, {agent: call.agent || "", from: call.from || "", startedAt,
        at: last ? last.end : 0, seenAt, phase: last ? last.phase : null, phaseAt: last ? last.start : 0,
        prompt: prompts.length ? prompts[prompts.length - 1].text : ""});
    }
  } catch { /* the socket's events fill the board anyway */ }
  render();
}

render();
const conn = document.getElementById("conn");
live("/api/live", {onEvent, onOpen: seed, onStatus: (state, delay) => showStatus(conn, state, delay)});
setInterval(() => { checkVenting(); render(); }, 1000);
