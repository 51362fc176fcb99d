// The chat: send a message, watch the turn (tool calls, live progress, streamed text) as server-sent events (polling
// the transcript only where EventSource fails), cancel it, and reopen any thread after a reload.
// Structure ids link to their 3D view, artifact:// to the file.
const $ = (id) => document.getElementById(id);
const thread = document.querySelector(".chat").dataset.thread;
const api = `/web/api/chat/${encodeURIComponent(thread)}`;
let timer = null;
let source = null;  // the EventSource following the running turn
let polling = !("EventSource" in window);  // true once EventSource has failed: poll instead

const LINKABLE = /(s-[0-9a-f]{16}|artifact:\/\/[^\s)"',]+)/g;

function linkify(text) {
  // Text nodes and links only (never innerHTML), so a message cannot inject markup.
  const frag = document.createDocumentFragment();
  let last = 0;
  for (const m of text.matchAll(LINKABLE)) {
    frag.append(text.slice(last, m.index));
    const a = document.createElement("a");
    const token = m[0];
    a.href = token.startsWith("s-") ? `/web/structure/${token}`
      : `/web/artifact/${token.slice("artifact://".length).split("/").map(encodeURIComponent).join("/")}`;
    a.textContent = token;
    frag.append(a);
    last = m.index + token.length;
  }
  frag.append(text.slice(last));
  return frag;
}

function render(data) {
  const list = $("transcript");
  list.replaceChildren();
  for (const ev of data.events) {
    const li = document.createElement("li");
    li.className = `ev ev-${ev.kind}`;
    if (ev.kind === "tool_call") {
      const head = document.createElement("div");
      head.textContent = `tool ${ev.name} ${JSON.stringify(ev.args).slice(0, 300)}`;
      li.append(head);
      if (ev.total !== undefined || ev.progress !== undefined) {
        const bar = document.createElement("progress");
        if (ev.total) { bar.max = ev.total; bar.value = Math.min(ev.progress || 0, ev.total); }
        bar.setAttribute("aria-label", `progress of ${ev.name}`);
        li.append(bar, ` ${ev.message || ""}`);
      }
    } else if (ev.kind === "tool_result") {
      const det = document.createElement("details"), sum = document.createElement("summary");
      sum.textContent = `result of ${ev.name}`;
      const pre = document.createElement("pre");
      pre.append(linkify(ev.text));
      det.append(sum, pre);
      li.append(det);
    } else {
      const who = { user: "you", answer: "matsearch", text: "matsearch (writing)", error: "error",
                    cancelled: "cancelled" }[ev.kind] || ev.kind;
      const label = document.createElement("strong");
      label.textContent = `${who}: `;
      const body = document.createElement("div");
      body.className = "msg";
      body.append(linkify(ev.text || ""));
      li.append(label, body);
    }
    list.append(li);
  }
  $("chat-cancel").hidden = !data.running;
  $("chat-send").disabled = data.running;
  $("chat-status").textContent = data.running ? "working..." : "";
}

function showError(err) {
  $("chat-status").textContent = err.message;
  $("chat-status").className = "error";
}

async function load() {
  // The transcript once; follow it while a turn runs.
  if (polling) return poll();
  try {
    const response = await fetch(api);
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
    render(data);
    if (data.running) follow();
  } catch (err) {
    showError(err);
  }
}

function follow() {
  // Stream the running turn's transcript; on `done` the stream ends. Fall back to polling if EventSource fails.
  if (polling) return poll();
  if (source) return;
  source = new EventSource(`${api}/events`);
  const stop = () => { source.close(); source = null; };
  source.addEventListener("transcript", (msg) => render(JSON.parse(msg.data)));
  source.addEventListener("done", (msg) => { stop(); render(JSON.parse(msg.data)); listThreads(); });
  source.onerror = () => { stop(); polling = true; poll(); };
}

async function poll() {
  try {
    const response = await fetch(api);
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
    render(data);
    clearTimeout(timer);
    timer = setTimeout(poll, data.running ? 500 : 5000);
  } catch (err) {
    showError(err);
    timer = setTimeout(poll, 3000);
  }
}

async function send(ev) {
  ev.preventDefault();
  const message = $("chat-message").value.trim();
  if (!message) return;
  $("chat-status").className = "";
  try {
    const response = await fetch(api, { method: "POST", headers: { "content-type": "application/json" },
                                        body: JSON.stringify({ message }) });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
    $("chat-message").value = "";
  } catch (err) {
    showError(err);
  }
  load();
  listThreads();
}

async function cancel() {
  await fetch(`${api}/cancel`, { method: "POST" });
  if (!source) load();  // an open stream brings the cancelled turn's end itself
}

async function listThreads() {
  try {
    const response = await fetch("/web/api/chat");
    const data = await response.json();
    const ul = $("threads");
    ul.replaceChildren();
    for (const t of data.threads) {
      const li = document.createElement("li"), a = document.createElement("a");
      a.href = `/web/chat/${encodeURIComponent(t.thread)}`;
      a.textContent = t.first_message || t.thread;
      if (t.thread === thread) a.setAttribute("aria-current", "page");
      li.append(a);
      ul.append(li);
    }
  } catch { /* the list is a convenience; the transcript still works */ }
}

$("chat-form").addEventListener("submit", send);
$("chat-message").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey) send(ev);  // Enter sends, Shift+Enter starts a new line
});
$("chat-cancel").addEventListener("click", cancel);
load();
listThreads();
