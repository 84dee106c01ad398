// The arena in a browser: a plain @colyseus/sdk Client (the browser build, global `Colyseus`) joins the
// room the UDP bots play in. Browsers cannot send UDP, so this page's connection is Colyseus' standard
// WebSocket, served on the same port as matchmaking and the fastnet handshake.
//
// `window.arena` exposes the room and a plain snapshot of the state for the browser tests and devtools.

/** Arena geometry and rules: the same numbers as examples/arena/state.ts. */
const ARENA = { width: 800, height: 600, pickupRadius: 24, maxSpeed: 240 };
/** Moves sent per second while a key is held (the bots send 25). */
const MOVE_HZ = 25;
/** How much of the way to a player's newest position the drawing moves per frame (positions come at 25 Hz). */
const SMOOTHING = 0.35;
const MAX_CHAT_LINES = 60;

const COLORS = { UDP: "#4fd1c5", WebSocket: "#f6ad55", other: "#a0aec0" };

const params = new URLSearchParams(location.search);
const name = (params.get("name") || `web-${Math.random().toString(36).slice(2, 6)}`).slice(0, 24);
// The page's own directory: matchmaking is on the same origin (and under the same prefix behind a proxy).
const endpoint = location.origin + location.pathname.replace(/\/[^/]*$/, "");

const canvas = document.getElementById("arena");
const ctx = canvas.getContext("2d");
const statusEl = document.getElementById("status");
const playersBody = document.querySelector("#players tbody");
const chatLog = document.getElementById("chat-log");
const chatForm = document.getElementById("chat-form");
const chatInput = document.getElementById("chat-input");

/** What the page knows: the room once joined, every chat line received, and a snapshot for tests. */
const view = {
  room: null,
  sessionId: null,
  /** Every chat message received, as the room broadcast it ({ from, sessionId, text }). */
  chats: [],
  /** Moves sent so far. */
  movesSent: 0,
  /** "connecting", "joined", "reconnecting", "left" or "failed". */
  phase: "connecting",
  /** The players as plain objects: { sessionId, name, x, y, path, rtt, score, connected }. */
  players() {
    const out = [];
    view.room?.state?.players?.forEach((p, sessionId) => {
      out.push({ sessionId, name: p.name, x: p.x, y: p.y, path: p.path, rtt: p.rtt, score: p.score, connected: p.connected });
    });
    return out;
  },
};
window.arena = view;

// --- keyboard ---------------------------------------------------------------------------------
const KEYS = {
  ArrowLeft: [-1, 0], KeyA: [-1, 0],
  ArrowRight: [1, 0], KeyD: [1, 0],
  ArrowUp: [0, -1], KeyW: [0, -1],
  ArrowDown: [0, 1], KeyS: [0, 1],
};
const held = new Set();
addEventListener("keydown", (e) => {
  if (e.target === chatInput) return;
  if (e.code === "Enter") {
    chatInput.focus();
    e.preventDefault();
    return;
  }
  if (KEYS[e.code]) {
    held.add(e.code);
    e.preventDefault();
  }
});
addEventListener("keyup", (e) => held.delete(e.code));
// Keys held while the window loses focus never send keyup here.
addEventListener("blur", () => held.clear());

// --- joining ----------------------------------------------------------------------------------
function setStatus(text) {
  statusEl.textContent = text;
}

const client = new Colyseus.Client(endpoint);
let room;
try {
  room = await client.joinOrCreate("arena", { name });
} catch (err) {
  view.phase = "failed";
  setStatus(`could not join the arena at ${endpoint}: ${err?.message ?? err}`);
  throw err;
}
view.room = room;
view.sessionId = room.sessionId;
view.phase = "joined";
setStatus(`playing as ${name} over WebSocket · room ${room.roomId}`);
canvas.focus();

room.onMessage("chat", (message) => {
  view.chats.push(message);
  addChatLine(message);
});
room.onDrop((code) => {
  view.phase = "reconnecting";
  setStatus(`connection lost (${code}), reconnecting…`);
});
room.onReconnect(() => {
  view.phase = "joined";
  setStatus(`playing as ${name} over WebSocket · room ${room.roomId} (reconnected)`);
});
room.onLeave((code, reason) => {
  view.phase = "left";
  setStatus(`left the arena (${code}${reason ? `: ${reason}` : ""}); reload to play again`);
});
room.onError((code, message) => setStatus(`error ${code}: ${message ?? ""}`));

chatForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const text = chatInput.value.trim();
  if (text && room.connection.isOpen) room.send("chat", { text });
  chatInput.value = "";
  canvas.focus();
});

function addChatLine(message) {
  const li = document.createElement("li");
  const from = document.createElement("b");
  from.textContent = message.from;
  const path = room.state.players.get(message.sessionId)?.path;
  if (path === "WebSocket") li.className = "ws";
  li.append(from, `: ${message.text}`);
  chatLog.append(li);
  while (chatLog.children.length > MAX_CHAT_LINES) chatLog.firstElementChild.remove();
  chatLog.scrollTop = chatLog.scrollHeight;
}

// --- moving -----------------------------------------------------------------------------------
/** Where this player wants to be; follows the server where they disagree by much (spawn, reconnection, a clamped move). */
let pos = null;
let seq = 0;
let lastTick = performance.now();
setInterval(() => {
  const now = performance.now();
  const dt = Math.min((now - lastTick) / 1000, 0.25);
  lastTick = now;
  const me = room.state.players?.get(room.sessionId);
  if (!me || !room.connection.isOpen) return;
  if (!pos || Math.hypot(pos.x - me.x, pos.y - me.y) > 60) pos = { x: me.x, y: me.y };
  let dx = 0;
  let dy = 0;
  for (const code of held) {
    dx += KEYS[code][0];
    dy += KEYS[code][1];
  }
  const length = Math.hypot(dx, dy);
  if (length === 0) return;
  const step = ARENA.maxSpeed * 0.9 * dt;
  pos.x = clamp(pos.x + (dx / length) * step, 0, ARENA.width);
  pos.y = clamp(pos.y + (dy / length) * step, 0, ARENA.height);
  // The room reads moves as `@unreliable` input; a WebSocket has no unreliable channel, so this page
  // sends them reliably (sendUnreliable would do the same, with a console warning).
  room.send("move", { x: Math.round(pos.x * 10) / 10, y: Math.round(pos.y * 10) / 10, seq: ++seq });
  view.movesSent++;
}, 1000 / MOVE_HZ);

// --- drawing ----------------------------------------------------------------------------------
/** Drawn positions, easing towards the newest state. */
const drawn = new Map();

function draw() {
  requestAnimationFrame(draw);
  const state = room.state;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  drawGrid();
  if (!state?.players) return;

  const coin = state.coin;
  ctx.beginPath();
  ctx.arc(coin.x, coin.y, 10, 0, Math.PI * 2);
  ctx.fillStyle = "#f6e05e";
  ctx.shadowColor = "#f6e05e";
  ctx.shadowBlur = 16;
  ctx.fill();
  ctx.shadowBlur = 0;

  const seen = new Set();
  state.players.forEach((p, sessionId) => {
    seen.add(sessionId);
    const mine = sessionId === room.sessionId;
    const target = mine && pos ? pos : p;
    let d = drawn.get(sessionId);
    if (!d) drawn.set(sessionId, (d = { x: target.x, y: target.y }));
    d.x += (target.x - d.x) * SMOOTHING;
    d.y += (target.y - d.y) * SMOOTHING;
    const color = COLORS[p.path] ?? COLORS.other;
    ctx.globalAlpha = p.connected ? 1 : 0.35;
    ctx.beginPath();
    ctx.arc(d.x, d.y, 14, 0, Math.PI * 2);
    ctx.fillStyle = color;
    ctx.fill();
    if (mine) {
      ctx.lineWidth = 3;
      ctx.strokeStyle = "#ffffff";
      ctx.stroke();
    }
    ctx.fillStyle = "#d8dee9";
    ctx.font = "12px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.fillText(`${p.name} · ${p.score}`, d.x, d.y - 22);
    ctx.fillStyle = "#8b95a7";
    ctx.font = "10px system-ui, sans-serif";
    ctx.fillText(`${p.path || "?"} ${formatRtt(p.rtt)}`, d.x, d.y + 28);
    ctx.globalAlpha = 1;
  });
  for (const sessionId of drawn.keys()) if (!seen.has(sessionId)) drawn.delete(sessionId);

  ctx.fillStyle = "#8b95a7";
  ctx.font = "12px system-ui, sans-serif";
  ctx.textAlign = "left";
  ctx.fillText(`coins collected: ${state.coinsCollected}`, 12, ARENA.height - 12);
}

function drawGrid() {
  ctx.strokeStyle = "#232a36";
  ctx.lineWidth = 1;
  ctx.beginPath();
  for (let x = 50; x < ARENA.width; x += 50) {
    ctx.moveTo(x + 0.5, 0);
    ctx.lineTo(x + 0.5, ARENA.height);
  }
  for (let y = 50; y < ARENA.height; y += 50) {
    ctx.moveTo(0, y + 0.5);
    ctx.lineTo(ARENA.width, y + 0.5);
  }
  ctx.stroke();
}
requestAnimationFrame(draw);

// --- the players table, a few times a second (the DOM need not follow every patch) --------------
setInterval(() => {
  const rows = view.players().sort((a, b) => b.score - a.score || a.name.localeCompare(b.name));
  playersBody.replaceChildren(
    ...rows.map((p) => {
      const tr = document.createElement("tr");
      if (p.sessionId === room.sessionId) tr.classList.add("me");
      if (!p.connected) tr.classList.add("away");
      const name = document.createElement("td");
      name.textContent = p.name;
      const path = document.createElement("td");
      const tag = document.createElement("span");
      tag.className = `path ${p.path}`;
      tag.textContent = p.path || "?";
      path.append(tag);
      const rtt = document.createElement("td");
      rtt.textContent = formatRtt(p.rtt);
      const score = document.createElement("td");
      score.textContent = String(p.score);
      tr.append(name, path, rtt, score);
      return tr;
    }),
  );
}, 250);

function formatRtt(ms) {
  if (!ms) return "–";
  return `${ms < 10 ? ms.toFixed(2) : ms.toFixed(0)} ms`;
}

function clamp(v, min, max) {
  return v < min ? min : v > max ? max : v;
}
