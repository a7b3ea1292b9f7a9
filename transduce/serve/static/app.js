// transduce web page: send the text box to POST /translate?attention=true and draw, per input,
// the output (with n-best: the list of hypotheses and their scores) and an attention heatmap
// (rows: target tokens, columns: source tokens); for an image model, send an image to POST
// /caption and draw each word's attention over it. Hovering a target token (in the output or
// the heatmap) highlights its row and aligned source. The address's #fragment is a permalink:
// #text=...&beam_size=...&n_best=... fills the form and translates (a fragment never reaches
// the server or its logs).
"use strict";

const $ = (id) => document.getElementById(id);
const SETTINGS = ["beam_size", "n_best", "max_len", "temperature", "top_k", "top_p"];

// A server started with a token (transduce serve --token, or TRANSDUCE_TOKEN) is opened as
// http://HOST:PORT/#token=TOKEN: the token is kept for this tab and taken out of the address bar,
// then sent with every request.
const fragment = new URLSearchParams(location.hash.slice(1));
const token = (() => {
  if (fragment.has("token")) {
    sessionStorage.setItem("transduce-token", fragment.get("token"));
    fragment.delete("token");
    const rest = fragment.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  }
  return sessionStorage.getItem("transduce-token");
})();
const auth = (headers = {}) => (token ? { ...headers, Authorization: `Bearer ${token}` } : headers);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);  // strings become text nodes: no HTML injection
  return node;
}

function settings() {
  const body = { beam_size: Number($("beam_size").value) || 1 };
  if (!$("sampling").checked && Number($("n_best").value) > 1) body.n_best = Number($("n_best").value);
  if ($("max_len").value) body.max_len = Number($("max_len").value);
  if ($("sampling").checked) {
    body.sampling = true;
    body.temperature = Number($("temperature").value) || 1;
    body.top_k = Number($("top_k").value) || 0;
    body.top_p = Number($("top_p").value) || 1;
  }
  return body;
}

function showError(err) {
  $("error").textContent = `Error: ${err.message}`;
  $("error").hidden = false;
  $("status").textContent = "";
}

async function translate(event) {
  event.preventDefault();
  if (imageModel) return caption();
  const lines = $("text").value.split("\n").map((s) => s.trim()).filter((s) => s);
  if (!lines.length) return;
  $("translate").disabled = true;
  $("error").hidden = true;
  $("status").textContent = "translating…";
  const started = performance.now();
  try {
    const response = await fetch("/translate?attention=true", {
      method: "POST",
      headers: auth({ "Content-Type": "application/json" }),
      body: JSON.stringify({ text: lines, ...settings() }),
    });
    const data = await response.json();
    if (!response.ok) throw new Error(data.message || response.statusText);
    $("results").replaceChildren(...lines.map((src, i) =>
      result(data.attention[i], data.translations[i], data.n_best && data.n_best[i])));
    $("status").textContent = `${lines.length} input(s) in ${Math.round(performance.now() - started)} ms`;
    permalink(lines);
  } catch (err) {
    showError(err);
  } finally {
    $("translate").disabled = false;
  }
}

// The address of this page with these inputs and settings (in the fragment: see the top).
function permalink(lines) {
  const params = new URLSearchParams({ text: lines.join("\n") });
  for (const [k, v] of Object.entries(settings())) params.set(k, v);
  $("permalink").href = `#${params}`;
  $("permalink").hidden = false;
  history.replaceState(null, "", `#${params}`);
}

// A permalink's fragment into the form; true if it holds a text to translate.
function fromFragment() {
  if (!fragment.has("text")) return false;
  $("text").value = fragment.get("text");
  for (const k of SETTINGS) if (fragment.has(k)) $(k).value = fragment.get(k);
  $("sampling").checked = fragment.get("sampling") === "true";
  toggleSampling();
  return true;
}

// One input: source tokens, output tokens and the heatmap, linked by hovering; with n-best, the
// hypotheses best first with their scores (the heatmap is the best one's).
function result(att, text, nbest) {
  const src = el("div", { class: "tokens" }, el("span", { class: "label" }, "source"));
  const out = el("div", { class: "tokens output" }, el("span", { class: "label" }, "output"));
  const srcSpans = att.src_tokens.map((t) => el("span", {}, t));
  src.append(...srcSpans);
  const card = el("div", { class: "result" }, src, out);
  if (nbest) {
    card.append(el("ol", { class: "nbest" }, ...nbest.map((h) => el("li", {},
      el("span", { class: "hyp" }, h.text || "(empty)"),
      el("span", { class: "score", title: "log-probability (length-normalized as in beam search)" },
         h.score === null ? "−∞" : h.score.toFixed(3))))));
  }
  if (!text) out.append(el("span", { class: "empty" }, "(empty)"));
  if (!att.matrix.length) {  // no attention (empty input, or a model without it): plain text
    if (text) out.append(el("span", {}, text));
    return card;
  }

  const table = el("table", { class: "heatmap" });
  const cols = att.src_tokens.map((t) => el("th", { scope: "col" }, t));
  const copy = att.copy || null;  // copy models: probability each output token was copied
  const head = copy ? [...cols, el("th", { scope: "col", class: "copy" }, "copy")] : cols;
  table.append(el("thead", {}, el("tr", {}, el("th"), ...head)));
  const body = el("tbody");
  const outSpans = [];
  att.matrix.forEach((row, r) => {
    const tgt = att.tgt_tokens[r];
    const tr = el("tr", {}, el("th", { scope: "row" }, tgt));
    row.forEach((w, c) => {
      const td = el("td", { title: `${tgt} → ${att.src_tokens[c]}: ${w.toFixed(2)}` });
      td.style.background = `rgba(var(--accent), ${w.toFixed(3)})`;  // CSSOM: allowed by the CSP
      tr.append(td);
    });
    if (copy) {
      const p = copy[r] || 0;
      const td = el("td", { class: "copy", title: `${tgt}: copied with p = ${p.toFixed(2)}` });
      td.style.background = `rgba(230, 120, 20, ${p.toFixed(3)})`;
      tr.append(td);
    }
    body.append(tr);
    const best = Math.max(...row);
    const on = (flag) => {
      tr.classList.toggle("hl", flag);
      if (outSpans[r]) outSpans[r].classList.toggle("hl", flag);
      row.forEach((w, c) => {  // the source tokens this target token attends to most
        const aligned = flag && w >= 0.5 * best;
        cols[c].classList.toggle("aligned", aligned);
        srcSpans[c].classList.toggle("hl", aligned);
      });
    };
    tr.addEventListener("mouseenter", () => on(true));
    tr.addEventListener("mouseleave", () => on(false));
    if (tgt !== "</s>") {
      const span = el("span", {}, tgt);
      span.addEventListener("mouseenter", () => on(true));
      span.addEventListener("mouseleave", () => on(false));
      outSpans[r] = span;
      out.append(span);
    }
  });
  table.append(body);
  card.append(table);
  return card;
}

// An image model (data.src_type: image): one image, picked or dropped, is sent as the body of
// POST /caption; the caption comes back with each word's attention over the grid of cells,
// drawn over the image the way the model saw it (fitted into a white square).
let imageModel = false;
let imageFile = null;
const SIDE = 128;  // pixels of each drawn copy of the image

function pickImage(file) {
  imageFile = file || null;
  $("image-name").textContent = imageFile ? imageFile.name : "";
}

async function caption() {
  if (!imageFile) return;
  $("translate").disabled = true;
  $("error").hidden = true;
  $("status").textContent = "captioning…";
  const started = performance.now();
  try {
    const beam = Number($("beam_size").value) || 1;
    const response = await fetch(`/caption?attention=true&beam_size=${beam}`, {
      method: "POST",
      headers: auth({ "Content-Type": imageFile.type || "image/png" }),
      body: imageFile,
    });
    const data = await response.json();
    if (!response.ok) throw new Error(data.message || response.statusText);
    const picture = await loadImage(imageFile);
    $("results").replaceChildren(imageResult(picture, data.caption, data.attention));
    $("status").textContent = `captioned in ${Math.round(performance.now() - started)} ms`;
  } catch (err) {
    showError(err);
  } finally {
    $("translate").disabled = false;
  }
}

function loadImage(file) {  // a data: URL (the page's CSP allows data: images, not blob:)
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error("the browser cannot show this image"));
      img.src = reader.result;
    };
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function drawFitted(ctx, img) {  // as the server does: fit inside the square, centred on white
  const scale = SIDE / Math.max(img.width, img.height);
  const w = img.width * scale, h = img.height * scale;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, SIDE, SIDE);
  ctx.drawImage(img, (SIDE - w) / 2, (SIDE - h) / 2, w, h);
}

// The caption, then the image once per word (and </s>) under that word's attention: the grid
// of weights is drawn small and scaled up smoothly, dark where the word did not look.
function imageResult(img, text, att) {
  const out = el("div", { class: "tokens output" }, el("span", { class: "label" }, "caption"),
                 text ? el("span", {}, text) : el("span", { class: "empty" }, "(empty)"));
  const words = el("div", { class: "words" });
  const [rows, cols] = att.grid;
  att.matrix.forEach((weights, r) => {
    const canvas = el("canvas", { width: SIDE, height: SIDE, title: att.tgt_tokens[r] });
    const ctx = canvas.getContext("2d");
    drawFitted(ctx, img);
    const grid = document.createElement("canvas");
    grid.width = cols;
    grid.height = rows;
    const cells = grid.getContext("2d").createImageData(cols, rows);
    const top = Math.max(...weights) || 1;
    weights.forEach((w, i) => { cells.data[4 * i + 3] = Math.round(200 * (1 - w / top)); });
    grid.getContext("2d").putImageData(cells, 0, 0);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(grid, 0, 0, SIDE, SIDE);
    words.append(el("figure", {}, canvas, el("figcaption", {}, att.tgt_tokens[r])));
  });
  return el("div", { class: "result" }, out, words);
}

async function showModel() {
  try {
    const health = await (await fetch("/health", { headers: auth() })).json();
    const m = health.model;
    $("model").textContent = `${m.name} · ${m.cell.toUpperCase()} · ${m.attention} attention · ` +
      `${(m.parameters / 1e6).toFixed(2)}M parameters · ${m.device}`;
    const lim = health.limits;
    $("beam_size").value = health.decoding.beam_size;
    $("beam_size").max = $("n_best").max = lim.max_beam_size;
    $("max_len").max = lim.max_len;
    $("limits").textContent = `this server allows: beam size and n-best up to ${lim.max_beam_size}` +
      ` (n-best at most the beam size), outputs up to ${lim.max_len} tokens, ${lim.max_inputs}` +
      ` inputs of up to ${lim.max_chars} characters a request`;
    imageModel = m.src_type === "image";
    $("text-input").hidden = imageModel;
    $("image-input").hidden = !imageModel;
    if (imageModel) $("translate").textContent = "Caption";
  } catch (err) {
    $("model").textContent = "model info unavailable";
  }
}

function toggleSampling() {  // sampling settings only count (and are only checked) when sampling
  const off = !$("sampling").checked;
  $("settings").classList.toggle("greedy", off);
  for (const id of ["temperature", "top_k", "top_p"]) $(id).disabled = off;
}

$("form").addEventListener("submit", translate);
$("text").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("form").requestSubmit();
});
$("sampling").addEventListener("change", toggleSampling);
$("image").addEventListener("change", (e) => pickImage(e.target.files[0]));
$("drop").addEventListener("dragover", (e) => { e.preventDefault(); $("drop").classList.add("over"); });
$("drop").addEventListener("dragleave", () => $("drop").classList.remove("over"));
$("drop").addEventListener("drop", (e) => {
  e.preventDefault();
  $("drop").classList.remove("over");
  pickImage(e.dataTransfer.files[0]);
});
toggleSampling();
showModel().then(() => { if (fromFragment() && !imageModel) $("form").requestSubmit(); });
