// The tracker's page: shows the MJPEG stream on a canvas; a click adds a positive point to the selected object,
// shift-click or right-click a negative one, a drag draws a box; each prompt names the frame it was given on (the
// X-Frame-Index of the picture shown). Shows each object's state, in its colour, and lets the user remove one.
"use strict";

const RETRY_MS = 1000;
const MIN_BOX_PX = 2;
const HEADER_END = [13, 10, 13, 10]; // \r\n\r\n
const POSITIVE = 1;
const NEGATIVE = 0;
const RIGHT_BUTTON = 2;
const PALETTE_BITS = 8;
const CLICK_RADIUS_SHARE = 0.012; // a click's marker, as a share of the picture's width

const canvas = document.getElementById("view");
const context = canvas.getContext("2d");
// What the page has shown, for anyone watching it (and the browser tests).
// `answers`: what the server made of each prompt sent (POST /api/prompts echoes the parsed commands).
const viewer = (window.viewer = { frames: 0, shown: -1, answers: [] });
let picture = null;
let drag = null;
// The clicks given on one frame to one object, drawn on the picture; Undo takes back the last.
let clicks = { frame: -1, id: 0, points: [], labels: [] };

// An object's colour: its DAVIS palette entry, as the server draws its mask (app/media/outputs.py davis_palette).
function colourOf(id) {
  const rgb = [0, 0, 0];
  let value = id;
  for (let shift = PALETTE_BITS - 1; shift >= 0; shift--) {
    for (let channel = 0; channel < 3; channel++) rgb[channel] |= ((value >> channel) & 1) << shift;
    value >>= 3;
  }
  return `rgb(${rgb.join(", ")})`;
}

// The token came in the address; the server has put it in a cookie, so take it off the screen.
if (new URLSearchParams(location.search).has("token")) history.replaceState(null, "", location.pathname);

function say(text) { document.getElementById("message").textContent = text; }

// Every request that changes the run is JSON: the server refuses any other type (a forged cross-site form).
function sendJson(path, method, body = {}) {
  return fetch(path, { method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

function draw() {
  if (picture) context.drawImage(picture, 0, 0);
  const radius = Math.max(3, canvas.width * CLICK_RADIUS_SHARE);
  clicks.points.forEach(([x, y], i) => {
    context.beginPath();
    context.arc(x, y, radius, 0, 2 * Math.PI);
    context.fillStyle = clicks.labels[i] === POSITIVE ? colourOf(clicks.id) : "#000";
    context.strokeStyle = clicks.labels[i] === POSITIVE ? "#fff" : colourOf(clicks.id);
    context.lineWidth = 2;
    context.fill();
    context.stroke();
  });
  if (drag) {
    const [x, y, w, h] = dragBox();
    context.lineWidth = Math.max(2, canvas.width / 320);
    context.strokeStyle = "#ffd400";
    context.setLineDash([8, 6]);
    context.strokeRect(x, y, w, h);
    context.setLineDash([]);
  }
}

function indexOf(bytes, pattern, from) {
  outer: for (let i = from; i <= bytes.length - pattern.length; i++) {
    for (let j = 0; j < pattern.length; j++) if (bytes[i + j] !== pattern[j]) continue outer;
    return i;
  }
  return -1;
}

async function show(jpeg, frameIndex) {
  const bitmap = await createImageBitmap(new Blob([jpeg], { type: "image/jpeg" }));
  if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
  }
  if (picture) picture.close();
  picture = bitmap;
  viewer.frames += 1;
  viewer.shown = frameIndex;
  document.getElementById("placeholder").hidden = true;
  draw();
}

// MJPEG parts: boundary and headers (Content-Length, X-Frame-Index), a blank line, the JPEG.
async function stream() {
  for (;;) {
    try {
      const response = await fetch("api/stream", { cache: "no-store" });
      if (!response.ok) throw new Error(`stream answered ${response.status}`);
      const reader = response.body.getReader();
      let buffer = new Uint8Array(0);
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const joined = new Uint8Array(buffer.length + value.length);
        joined.set(buffer);
        joined.set(value, buffer.length);
        buffer = joined;
        for (;;) {
          const end = indexOf(buffer, HEADER_END, 0);
          if (end < 0) break;
          const head = new TextDecoder().decode(buffer.subarray(0, end));
          const length = Number(/content-length:\s*(\d+)/i.exec(head)[1]);
          const frameIndex = Number((/x-frame-index:\s*(-?\d+)/i.exec(head) || [0, -1])[1]);
          const start = end + HEADER_END.length;
          if (buffer.length < start + length) break;
          await show(buffer.slice(start, start + length), frameIndex);
          buffer = buffer.slice(start + length);
        }
      }
    } catch (error) {
      say(`video: ${error.message}; retrying`);
    }
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}

function fmt(value, digits, unit = "") {
  return value === null || value === undefined ? "–" : `${Number(value).toFixed(digits)}${unit}`;
}

function showStatus(status) {
  const badge = document.getElementById("state");
  badge.textContent = status.state;
  badge.className = `state ${status.state}`;
  document.getElementById("fps").textContent = fmt(status.fps, 1);
  // A live source's latency is what a viewer waits; a file is read ahead, so the tracker's step time is shown.
  document.getElementById("latency-label").textContent = status.live ? "Latency" : "Step time";
  document.getElementById("latency").textContent = fmt(status.live ? status.latency_ms : status.step_ms, 0, " ms");
  document.getElementById("dropped").textContent = status.dropped;
  document.getElementById("score").textContent = fmt(status.object_score, 2);
  document.getElementById("frame").textContent = status.frame;
  document.getElementById("box").textContent = status.box ? status.box.join(", ") : "–";
  showObjects(status.objects || {});
}

// The server pushes a status event after every tracked frame (Server-Sent Events); the browser reconnects by itself.
function listen() {
  const gone = "the tracker does not answer (has it stopped?)";
  const events = new EventSource("api/events");
  events.addEventListener("status", (event) => showStatus(JSON.parse(event.data)));
  events.addEventListener("open", () => {
    if (document.getElementById("message").textContent === gone) say("");
  });
  events.addEventListener("error", () => say(gone));
  // A prompt the server took that the loop refused when it came to apply it (its frame fell out of the history).
  events.addEventListener("refused", (event) => say(JSON.parse(event.data).error));
}

const objectInput = document.getElementById("object-id");
let knownIds = [];

// Rows are kept per object and updated in place, so that a Drop button never moves under the mouse.
function showObjects(objects) {
  const body = document.querySelector("#objects tbody");
  const ids = Object.keys(objects).map(Number).sort((a, b) => a - b);
  knownIds = ids;
  for (const row of [...body.children]) if (!ids.includes(Number(row.dataset.id))) row.remove();
  for (const id of ids) {
    let row = body.querySelector(`tr[data-id="${id}"]`);
    if (!row) {
      row = document.createElement("tr");
      row.dataset.id = id;
      for (let i = 0; i < 4; i++) row.appendChild(document.createElement("td"));
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Remove";
      button.addEventListener("click", () => dropObject(id));
      row.appendChild(document.createElement("td")).appendChild(button);
      const next = [...body.children].find((other) => Number(other.dataset.id) > id);
      body.insertBefore(row, next || null);
    }
    const object = objects[id];
    const cells = [id, object.state, fmt(object.object_score, 2), object.box ? object.box.join(", ") : "–"];
    cells.forEach((text, i) => { row.children[i].textContent = text; });
    row.children[0].style.borderLeft = `0.6em solid ${colourOf(id)}`;
    row.children[1].className = `state ${object.state}`;
  }
}

// Every prompt goes to POST /api/prompts, the schema every door shares (docs/service.md).
async function sendPrompt(command) {
  const response = await sendJson("api/prompts", "POST", command);
  const answer = await response.json();
  if (response.ok) viewer.answers.push(...answer.prompts);
  say(response.ok ? "" : answer.error);
  return response.ok;
}

async function dropObject(id) {
  if (await sendPrompt({ id, remove: true })) say(`object ${id} removed`);
}

function selected() { return Number(objectInput.value) || 1; }

document.getElementById("new-object").addEventListener("click", () => {
  let id = 1;
  while (knownIds.includes(id) || id === Number(objectInput.value)) id += 1;
  objectInput.value = id;
  clicks = { frame: -1, id, points: [], labels: [] };
  draw();
  say(`click on object ${id} or drag a box around it`);
});

// Undo takes back the last click on the frame clicked: the tracker restores the object as it was before it.
document.getElementById("undo").addEventListener("click", async () => {
  if (!clicks.points.length) return say("no click to undo on this frame");
  if (await sendPrompt({ frame: clicks.frame, id: clicks.id, undo: true })) {
    clicks.points.pop();
    clicks.labels.pop();
    draw();
  }
});

function sourcePoint(event) {
  const rect = canvas.getBoundingClientRect();
  const x = ((event.clientX - rect.left) * canvas.width) / rect.width;
  const y = ((event.clientY - rect.top) * canvas.height) / rect.height;
  return [Math.min(Math.max(x, 0), canvas.width), Math.min(Math.max(y, 0), canvas.height)];
}

function dragBox() {
  const [x0, y0] = drag.from;
  const [x1, y1] = drag.to;
  return [Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0)].map(Math.round);
}

canvas.addEventListener("contextmenu", (event) => event.preventDefault());

canvas.addEventListener("pointerdown", (event) => {
  if (!picture) return;
  canvas.setPointerCapture(event.pointerId);
  const point = sourcePoint(event);
  const negative = event.shiftKey || event.button === RIGHT_BUTTON;
  drag = { from: point, to: point, frame: viewer.shown, label: negative ? NEGATIVE : POSITIVE };
});

canvas.addEventListener("pointermove", (event) => {
  if (!drag) return;
  drag.to = sourcePoint(event);
  draw();
});

canvas.addEventListener("pointerup", async (event) => {
  if (!drag) return;
  drag.to = sourcePoint(event);
  const box = dragBox();
  const { frame, label } = drag;
  drag = null;
  draw();
  const id = selected();
  if (box[2] < MIN_BOX_PX && box[3] < MIN_BOX_PX) {
    // A click: one more point on this frame for this object (the tracker keeps the frame's earlier clicks).
    // It is drawn once the server took it: a refused click leaves no dot, and Undo takes back the last one taken.
    const [x, y] = sourcePoint(event).map((v, axis) => Math.min(Math.round(v), (axis ? canvas.height : canvas.width) - 1));
    if (!(await sendPrompt({ frame, id, points: [[x, y]], labels: [label] }))) return;
    if (clicks.frame !== frame || clicks.id !== id) clicks = { frame, id, points: [], labels: [] };
    clicks.points.push([x, y]);
    clicks.labels.push(label);
    draw();
    return;
  }
  if (box[2] < MIN_BOX_PX || box[3] < MIN_BOX_PX) return;
  clicks = { frame, id, points: [], labels: [] };
  draw();
  const reset = document.getElementById("reset-box").checked;
  await sendPrompt({ frame, id, box, ...(reset ? { reset: true } : {}) });
});

document.getElementById("stop").addEventListener("click", async () => {
  await sendJson("api/stop", "POST");
  say("stopped; the outputs are complete");
});

stream();
listen();
