// The page of `pianocomposer serve`: it speaks to the server's JSON API only (no other site, no library).
"use strict";

const $ = (id) => document.getElementById(id);
const TONICS = ["C", "G", "D", "A", "E", "B", "F#", "F", "Bb", "Eb", "Ab", "Db"];
let bundles = [];
let limits = {};

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function api(url, options) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (error) {
    throw new Error("the server cannot be reached; is `pianocomposer serve` still running?");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(data.error || `the server answered ${response.status}`);
  }
  return data;
}

function fill(select, names) {
  select.replaceChildren(...names.map((name) => new Option(name, name)));
  select.disabled = names.length === 0;
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function describe(result) {
  const s = result.settings || {};
  const parts = [`model ${result.bundle}`];
  if (result.name) parts.push(result.name);
  for (const [key, label] of [["key", "key"], ["metre", "metre"], ["bars", "bars"], ["length", "tokens"],
    ["temperature", "temperature"], ["top_p", "top-p"], ["figuration", "figuration"], ["seed", "seed"]]) {
    if (s[key] !== undefined && s[key] !== null) parts.push(`${label} ${s[key]}`);
  }
  return parts.join(" · ");
}

function card(result) {
  const titles = {compose: "Composed", harmonize: "Harmonised", continue: "Continued", infill: "Rewritten"};
  const files = result.files;
  const section = el("section", {class: "card", "data-id": result.id},
    el("h2", {}, `${titles[result.kind]} ${result.id}`), el("p", {class: "meta"}, describe(result)));
  if (result.error) section.append(el("p", {class: "error"}, `This piece does not play: ${result.error}`));
  if (result.kind === "infill") section.append(...compared(result));
  if (files.ogg) section.append(el("audio", {controls: "", preload: "metadata", src: files.ogg}));
  if (files.png) section.append(el("img", {class: "roll", src: files.png, alt: `piano roll of ${result.id}`}));
  if (files.svg) {
    section.append(el("div", {class: "sheet"}, el("img", {src: files.svg, alt: `score of ${result.id}`})));
  }
  const names = {midi: "MIDI", continuation: "continuation alone (MIDI)", musicxml: "MusicXML", abc: "abc",
    svg: "sheet (SVG)", ogg: "audio (OGG)"};
  const links = el("p", {class: "links"});
  for (const [kind, label] of Object.entries(names)) {
    if (!files[kind]) continue;
    if (links.childNodes.length) links.append(" · ");
    links.append(el("a", {href: files[kind], download: ""}, label));
  }
  section.append(links);
  if (files.midi && bundles.some((b) => b.infills)) section.append(rewriteForm(result));
  return section;
}

// An infill's card: bars rewritten, the piece before them to hear beside it, and which to keep.
function compared(result) {
  const [first, last] = result.bars;
  const parts = [el("p", {class: "meta"}, `Bars ${first}-${last} rewritten (${result.replaced} notes as ` +
    `${result.written}; ${result.kept} kept as they were).`)];
  if (!result.source) return parts;
  const original = document.querySelector(`section[data-id="${result.source}"]`);
  parts.push(el("p", {class: "meta"}, "Before:"),
    el("audio", {controls: "", preload: "metadata", src: `/results/${result.source}/ogg`}),
    el("p", {class: "meta"}, "After:"));
  if (original) {
    const keepNew = el("button", {type: "button", class: "keep"}, "Keep the rewrite");
    const keepOld = el("button", {type: "button", class: "keep"}, "Keep the original");
    keepNew.addEventListener("click", () => { original.remove(); keepNew.parentNode.remove(); });
    keepOld.addEventListener("click", () => { keepOld.closest("section").remove(); });
    parts.push(el("p", {}, keepNew, " ", keepOld));
  }
  return parts;
}

// Under a result with MIDI: rewrite a range of its bars with a model that can.
function rewriteForm(result) {
  const able = bundles.filter((b) => b.infills);
  const model = el("select", {"aria-label": "model to rewrite with"}, ...able.map((b) => new Option(b.name, b.name)));
  if (able.some((b) => b.name === result.bundle)) model.value = result.bundle;
  const first = el("input", {type: "number", min: "1", step: "1", value: "1", "aria-label": "first bar"});
  const last = el("input", {type: "number", min: "1", step: "1", value: "2", "aria-label": "last bar"});
  const melody = el("input", {type: "checkbox"});
  const melodyLabel = el("label", {class: "inline"}, melody, " keep the melody");
  const button = el("button", {type: "button"}, "Rewrite bars");
  const update = () => {
    melodyLabel.hidden = !bundles.find((b) => b.name === model.value && b.harmonizes);
  };
  model.addEventListener("change", update);
  update();
  button.addEventListener("click", () => run(button, "Rewriting bars", () => {
    const query = new URLSearchParams(seeded({bundle: model.value, from: result.id, first: first.value,
      last: last.value}));
    if (melody.checked && !melodyLabel.hidden) query.set("keep_melody", "1");
    return api(`/api/infill?${query}`, {method: "POST"});
  }));
  return el("p", {class: "rewrite"}, "Rewrite bars ", first, " to ", last, " with ", model, " ", melodyLabel, " ",
    button);
}

async function run(button, what, request) {
  const buttons = document.querySelectorAll("button");
  buttons.forEach((b) => { b.disabled = true; });
  status(`${what}…`);
  try {
    const result = await request();
    $("results").prepend(card(result));
    status(`${what}: done in ${result.seconds.toFixed(1)} s.`);
  } catch (error) {
    status(`${what} failed: ${error.message}`, true);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
    updateUpload();
  }
}

function number(id) {
  const text = $(id).value.trim();
  return text === "" ? undefined : Number(text);
}

function composeSettings() {
  const settings = {bundle: $("bundle").value, temperature: number("temperature"), top_p: number("top-p"),
    seed: number("seed")};
  if (number("length") !== undefined) settings[$("unit").value] = number("length");
  if ($("key").value.trim()) settings.key = $("key").value.trim();
  const bundle = bundles.find((b) => b.name === settings.bundle);
  if (bundle && bundle.metre && $("metre").value.trim()) settings.metre = $("metre").value.trim();
  return settings;
}

function uploadQuery(bundle, extra) {
  const file = $("melody").files[0];
  const query = new URLSearchParams({bundle, name: file.name, ...extra});
  return query.toString();
}

function checkedFile() {
  const file = $("melody").files[0];
  if (!file) throw new Error("choose a melody file first");
  if (file.size > limits.max_upload_bytes) {
    throw new Error(`the file is larger than the limit of ${limits.max_upload_bytes / 2 ** 20} MB`);
  }
  return file;
}

function seeded(settings) {
  return number("seed") === undefined ? settings : {...settings, seed: number("seed")};
}

function updateUpload() {
  const none = !$("melody").files.length;
  $("harmonize").disabled = none || $("harmony-bundle").disabled;
  $("continue").disabled = none || $("continue-bundle").disabled;
  $("infill").disabled = none || $("infill-bundle").disabled;
}

function updateBundle() {
  const bundle = bundles.find((b) => b.name === $("bundle").value);
  $("metre-label").hidden = !(bundle && bundle.metre);
  $("length").placeholder = bundle ? `${bundle.default_length}` : "model's";
}

async function start() {
  const keys = TONICS.flatMap((t) => [`${t} major`, `${t} minor`]);
  $("keys").replaceChildren(...keys.map((k) => new Option(k)));
  try {
    const data = await api("/api/bundles");
    bundles = data.bundles;
    limits = data;
  } catch (error) {
    status(`The models cannot be listed: ${error.message}`, true);
    return;
  }
  fill($("bundle"), bundles.map((b) => b.name));
  fill($("harmony-bundle"), bundles.filter((b) => b.harmonizes).map((b) => b.name));
  fill($("continue-bundle"), bundles.filter((b) => b.continues).map((b) => b.name));
  fill($("infill-bundle"), bundles.filter((b) => b.infills).map((b) => b.name));
  updateBundle();
  updateUpload();
  $("bundle").addEventListener("change", updateBundle);
  $("melody").addEventListener("change", updateUpload);
  $("compose-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run($("compose"), "Composing", () => api("/api/compose", {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(composeSettings())}));
  });
  $("harmonize").addEventListener("click", () => run($("harmonize"), "Harmonising", async () => {
    const file = checkedFile();
    const figuration = $("figuration").value ? {figuration: $("figuration").value} : {};
    return api(`/api/harmonize?${uploadQuery($("harmony-bundle").value, seeded(figuration))}`, {
      method: "POST", headers: {"Content-Type": "application/octet-stream"}, body: file});
  }));
  $("continue").addEventListener("click", () => run($("continue"), "Continuing", async () => {
    const file = checkedFile();
    const more = seeded({temperature: number("temperature"), top_p: number("top-p")});
    Object.keys(more).forEach((key) => { if (more[key] === undefined) delete more[key]; });
    if ($("unit").value === "length" && number("length") !== undefined) more.length = number("length");
    return api(`/api/continue?${uploadQuery($("continue-bundle").value, more)}`, {
      method: "POST", headers: {"Content-Type": "application/octet-stream"}, body: file});
  }));
  $("infill").addEventListener("click", () => run($("infill"), "Rewriting bars", async () => {
    const file = checkedFile();
    const bars = seeded({first: $("first-bar").value, last: $("last-bar").value});
    return api(`/api/infill?${uploadQuery($("infill-bundle").value, bars)}`, {
      method: "POST", headers: {"Content-Type": "application/octet-stream"}, body: file});
  }));
  status("Ready.");
}

start();
