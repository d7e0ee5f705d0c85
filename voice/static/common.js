"use strict";
// Shared by every page: API URLs (a ?token= in the page's URL is passed on; a signed-in visitor's cookie
// rides along by itself), element building, time formatting, and live sockets that reconnect with backoff.
const cc = (() => {
  const token = new URLSearchParams(location.search).get("token");
  const withToken = (url) => token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  async function getJSON(url) {
    const response = await fetch(withToken(url), {credentials: "same-origin"});
    if (response.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); }
    if (!response.ok) throw new Error(url + ": HTTP " + response.status);
    return response.json();
  }

  async function sendJSON(method, url, body) {
    const response = await fetch(withToken(url), {method, credentials: "same-origin",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    if (!response.ok) throw new Error((await response.json().catch(() => ({}))).error || "HTTP " + response.status);
    return response.json();
  }

  const clock = (seconds) => {
    const s = Math.max(0, Math.floor(seconds || 0));
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  };

  // A live socket that comes back after a drop: 1 s, 2 s, 4 s … up to 15 s between attempts.
  // `onOpen` runs on every (re)connection, so a page can reload what it missed while away.
  function live(path, {onEvent, onOpen, onStatus}) {
    let delay = 1000;
    let socket = null;
    let stopped = false;
    function connect() {
      const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + withToken(path);
      socket = new WebSocket(url);
      onStatus("connecting");
      socket.onopen = () => { delay = 1000; onStatus("live"); if (onOpen) onOpen(); };
      socket.onmessage = (message) => {
        let event;
        try { event = JSON.parse(message.data); } catch { return; }
        onEvent(event);
      };
      socket.onclose = () => {
        if (stopped) return;
        onStatus("reconnecting", delay);
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 15000);
      };
    }
    connect();
    const handle = {close() { stopped = true; if (socket) socket.close(); }, get socket() { return socket; }};
    active.push(handle);
    return handle;
  }
  // The page's live connections, for diagnosis from the browser's console (and the tests).
  const active = [];

  function showStatus(node, state, delay) {
    node.className = "conn " + state;
    node.textContent = state === "live" ? "● live" : state === "connecting" ? "connecting…"
      : "reconnecting in " + Math.round(delay / 1000) + " s";
  }

  const sentimentClass = (s) => s <= -0.3 ? "neg" : s >= 0.3 ? "pos" : "neutral";

  return {withToken, el, getJSON, sendJSON, clock, live, showStatus, sentimentClass, active};
})();
