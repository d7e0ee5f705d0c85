"use strict";
// Agent console: one call at a time, live. Transcript in two speaker lanes with the in-progress (partial)
// text, the current coaching prompt, phase, customer sentiment trend, outcome buttons and the whisper opt-in.
// With ?call= it watches that call; otherwise it follows the newest live call (of ?agent=, or of the agent
// the token belongs to: the server only sends an agent its own calls).
const {el, getJSON, sendJSON, clock, live, showStatus, sentimentClass} = cc;
const root = document.getElementById("console");
const pinned = root.dataset.call;
const agentFilter = root.dataset.agent;
const lanes = document.getElementById("lanes");
const promptCard = document.getElementById("prompt-card");
const history = document.getElementById("prompt-history");
const trend = document.getElementById("trend");
const phasePill = document.getElementById("phase");
const callInfo = document.getElementById("callinfo");
const whisper = document.getElementById("whisper");
const outcomeStatus = document.getElementById("outcome-status");

let sid = null;
let seen = new Set();
let promptKeys = new Set();
let partials = {};
let whisperAgent = null;

function reset(newSid) {
  sid = newSid;
  seen = new Set();
  promptKeys = new Set();
  partials = {};
  lanes.replaceChildren();
  history.replaceChildren();
  trend.replaceChildren();
  promptCard.className = "prompt-card empty";
  promptCard.replaceChildren(el("div", "prompt-text", "No prompt yet."));
  setPhase(null);
  setOutcome(null);
}

function scrollDown() { lanes.parentElement.scrollTop = lanes.parentElement.scrollHeight; }

function row(speaker, cls) {
  const li = el("li", "row " + speaker + (cls ? " " + cls : ""));
  const left = el("div", "cell");
  const right = el("div", "cell");
  li.append(left, right);
  return [li, speaker === "customer" ? left : right];
}

function showPartial(e) {
  if (!e.text) return;
  let item = partials[e.speaker];
  if (!item) {
    item = row(e.speaker, "partial");
    partials[e.speaker] = item;
    lanes.append(item[0]);
  }
  item[1].replaceChildren(el("span", "time", clock(e.start)), el("span", "text", e.text));
  scrollDown();
}

function addUtterance(u) {
  if (seen.has(u.seq)) return;
  seen.add(u.seq);
  const pending = partials[u.speaker];
  if (pending) { pending[0].remove(); delete partials[u.speaker]; }
  const [li, cell] = row(u.speaker, "final");
  li.dataset.seq = u.seq;
  cell.append(el("span", "time", clock(u.start)), el("span", "text", u.text));
  if (u.phase !== "other") cell.append(el("span", "phase " + u.phase, u.phase));
  // Keep the lanes in call order even when a final overtakes the other speaker's.
  const after = [...lanes.querySelectorAll("li.final")].find((x) => +x.dataset.start > u.start);
  li.dataset.start = u.start;
  if (after) lanes.insertBefore(li, after); else lanes.insertBefore(li, lanes.querySelector("li.partial"));
  if (u.speaker === "customer" && typeof u.sentiment === "number") addTrend(u.sentiment, u.start);
  scrollDown();
}

// One column per customer turn: a bar up from the middle line for positive sentiment, down for negative.
function addTrend(value, at) {
  const column = el("span", "col");
  const up = el("span", "half up");
  const down = el("span", "half down");
  const bar = el("span", "bar " + sentimentClass(value));
  bar.style.height = Math.max(2, Math.abs(value) * 24) + "px";
  (value >= 0 ? up : down).append(bar);
  column.append(up, down);
  column.title = clock(at) + "  sentiment " + (value > 0 ? "+" : "") + value.toFixed(2);
  trend.append(column);
  while (trend.children.length > 40) trend.firstChild.remove();
}

function setPhase(phase) {
  phasePill.textContent = phase || "—";
  phasePill.className = "pill" + (phase ? " phase " + phase : "");
}

function addPrompt(p) {
  const key = p.id + "@" + p.at;
  if (promptKeys.has(key)) return;
  promptKeys.add(key);
  const previous = promptCard.dataset.text;
  if (previous) {
    history.prepend(el("li", "", promptCard.dataset.when + " — " + previous));
  }
  promptCard.className = "prompt-card" + ((p.priority || 0) >= 80 ? " urgent" : "");
  promptCard.dataset.text = p.text;
  promptCard.dataset.when = clock(p.at);
  promptCard.replaceChildren(el("div", "prompt-meta", (p.trigger || p.id).replace(/_/g, " ") + " · " + clock(p.at)),
    el("div", "prompt-text", p.text));
}

function setOutcome(outcome) {
  const chosen = outcome && outcome.disposition;
  for (const b of document.querySelectorAll("#outcome-buttons button")) {
    b.classList.toggle("chosen", b.dataset.disposition === chosen);
    b.disabled = !sid;
  }
  outcomeStatus.textContent = chosen ? chosen.replace("_", " ") + " (" + (outcome.source || "agent") + ")" : "";
}

async function setWhisperAgent(agent) {
  whisperAgent = agent || null;
  whisper.disabled = !whisperAgent;
  if (!whisperAgent) return;
  try {
    whisper.checked = (await getJSON("/api/agents/" + encodeURIComponent(whisperAgent))).whisper;
  } catch { whisper.disabled = true; }
}

function describe(call) {
  callInfo.textContent = call.call_sid + " · " + (call.from || "unknown caller") + " · agent " +
    (call.agent || "unknown") + (call.status && call.status !== "live" ? " · " + call.status : "");
}

async function load(callSid) {
  const call = await getJSON("/api/calls/" + encodeURIComponent(callSid) + "?sentiment=1");
  if (sid !== callSid) reset(callSid);
  describe(call);
  for (const u of call.utterances) addUtterance(u);
  const phases = call.phases || [];
  if (phases.length) setPhase(phases[phases.length - 1].phase);
  for (const p of call.prompts || []) addPrompt(p);
  if (call.outcome && call.outcome.disposition) setOutcome(call.outcome); else setOutcome(null);
  setWhisperAgent(call.agent || agentFilter);
}

function onEvent(e) {
  if (!pinned && e.type === "call_started" && (!agentFilter || e.agent === agentFilter)) {
    reset(e.call_sid);
    describe({call_sid: e.call_sid, from: e.from, agent: e.agent, status: "live"});
    setWhisperAgent(e.agent || agentFilter);
    return;
  }
  if (e.call_sid !== sid) return;
  switch (e.type) {
    case "partial": showPartial(e); break;
    case "utterance": addUtterance(e); break;
    case "phase": setPhase(e.phase); break;
    case "prompt": addPrompt(e); break;
    case "outcome": setOutcome(e); break;
    case "call_ended":
      for (const speaker of Object.keys(partials)) { partials[speaker][0].remove(); delete partials[speaker]; }
      callInfo.textContent += " · call ended (" + clock(e.duration) + ") — choose the outcome";
      break;
  }
}

async function catchUp() {
  try {
    if (pinned) { await load(pinned); return; }
    const query = "/api/calls?status=live&limit=1" + (agentFilter ? "&agent=" + encodeURIComponent(agentFilter) : "");
    const newest = (await getJSON(query)).calls[0];
    if (newest) await load(newest.call_sid);
    else if (sid) await load(sid);
  } catch (error) { callInfo.textContent = String(error.message || error); }
}

document.getElementById("outcome-buttons").addEventListener("click", async (e) => {
  const button = e.target.closest("button");
  if (!button || !sid) return;
  try {
    setOutcome(await sendJSON("POST", "/api/calls/" + encodeURIComponent(sid) + "/outcome",
      {disposition: button.dataset.disposition}));
  } catch (error) { outcomeStatus.textContent = "not saved: " + error.message; }
});

whisper.addEventListener("change", async () => {
  if (!whisperAgent) return;
  try {
    await sendJSON("PUT", "/api/agents/" + encodeURIComponent(whisperAgent) + "/whisper", {enabled: whisper.checked});
  } catch { whisper.checked = !whisper.checked; }
});

reset(pinned || null);
const conn = document.getElementById("conn");
live(pinned ? "/api/calls/" + encodeURIComponent(pinned) + "/live" : "/api/live",
  {onEvent, onOpen: catchUp, onStatus: (state, delay) => showStatus(conn, state, delay)});
