// The demo phone page: calls, texts and the reminder control, over /demo/api.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  let currentCall = null;
  let lastRender = "";

  async function api(path, options) {
    const response = await fetch(path, Object.assign({ headers: { "Content-Type": "application/json" } }, options || {}));
    const body = await response.json().catch(() => ({}));
    if (!response.ok) { throw new Error(body.detail ? JSON.stringify(body.detail) : response.statusText); }
    return body;
  }

  function fmt(iso) { return new Date(iso).toLocaleTimeString([], { hour: "numeric", minute: "2-digit", second: "2-digit" }); }

  // A text's words, with its links (the booking page) made tappable. Built as DOM
  // nodes, never as HTML, so a text cannot inject markup.
  function messageBody(text) {
    const span = document.createElement("span");
    span.className = "body";
    let last = 0;
    for (const match of text.matchAll(/https?:\/\/[^\s]+/g)) {
      const url = match[0].replace(/[.,)]+$/, "");
      span.appendChild(document.createTextNode(text.slice(last, match.index)));
      const a = document.createElement("a");
      a.href = url; a.textContent = url; a.target = "_blank"; a.rel = "noopener";
      span.appendChild(a);
      last = match.index + url.length;
    }
    span.appendChild(document.createTextNode(text.slice(last)));
    return span;
  }

  function render(state) {
    const key = JSON.stringify(state);
    if (key === lastRender) { return; }
    lastRender = key;
    const thread = $("thread");
    thread.textContent = "";
    if (!state.texts.length) {
      const p = document.createElement("p"); p.className = "empty"; p.textContent = "No texts yet."; thread.appendChild(p);
    }
    for (const t of state.texts) {
      const div = document.createElement("div");
      div.className = "bubble " + t.direction;
      div.appendChild(messageBody(t.body));
      const meta = document.createElement("div");
      meta.className = "meta";
      meta.textContent = (t.direction === "in" ? "from " + t.other + " · " : "") + fmt(t.at) + " · " + t.status;
      div.appendChild(meta);
      thread.appendChild(div);
    }
    thread.scrollTop = thread.scrollHeight;
    const call = state.calls.length ? state.calls[state.calls.length - 1] : null;
    if (call) {
      currentCall = call.state === "ended" ? null : call.sid;
      const label = { dialing: "Calling…", ringing: "Ringing (" + call.ring_seconds + " s)…", greeting: "Greeting", ended: "Call ended" }[call.state] || call.state;
      $("call-status").textContent = label + (call.detail ? ": " + call.detail : "");
    }
    $("hangup").disabled = !currentCall;
    $("call").disabled = !!currentCall;
  }

  async function poll() {
    try { render(await api("/demo/api/phone/" + encodeURIComponent($("my-number").value))); }
    catch (e) { /* a number being typed is not valid yet */ }
  }

  $("call").addEventListener("click", async () => {
    try {
      const result = await api("/demo/api/calls", { method: "POST", body: JSON.stringify({ caller: $("my-number").value, to: $("location").value }) });
      currentCall = result.sid;
      $("call-status").textContent = "Calling…";
    } catch (e) { $("call-status").textContent = "Could not call: " + e.message; }
  });
  $("hangup").addEventListener("click", async () => {
    if (currentCall) { await api("/demo/api/calls/" + currentCall + "/hangup", { method: "POST" }).catch(() => {}); }
  });
  $("reply").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = $("reply-body").value.trim();
    if (!body) { return; }
    try {
      await api("/demo/api/texts", { method: "POST", body: JSON.stringify({ sender: $("my-number").value, to: $("location").value, body: body }) });
      $("reply-body").value = "";
      poll();
    } catch (e) { $("call-status").textContent = "Could not send: " + e.message; }
  });
  $("remind").addEventListener("click", async () => {
    try {
      const result = await api("/demo/api/reminders", { method: "POST", body: JSON.stringify({ caller: $("my-number").value, to: $("location").value }) });
      $("call-status").textContent = result.status === "sent"
        ? "Booked for " + result.when + ": its reminder is on its way. Reply C, R or X, or \"running late\"."
        : "Booked for " + result.when + ", reminder not sent: " + result.skip_reason.replace(/_/g, " ") + ".";
      poll();
    } catch (e) { $("call-status").textContent = "Could not book: " + e.message; }
  });
  $("refill").addEventListener("click", async () => {
    try {
      const result = await api("/demo/api/waitlist", { method: "POST", body: JSON.stringify({ caller: $("my-number").value, to: $("location").value }) });
      $("call-status").textContent = result.offered
        ? "You're on the waitlist and a slot on " + result.when + " just freed up: reply YES to take it."
        : "A slot on " + result.when + " freed up, offer not sent: " + result.reason + ".";
      poll();
    } catch (e) { $("call-status").textContent = "Could not free a slot: " + e.message; }
  });
  setInterval(poll, 700);
  poll();
})();
