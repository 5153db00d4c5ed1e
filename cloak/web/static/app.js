// The page of `cloak serve`: upload photos, start a protection run, poll its progress and show
// the results. Plain JavaScript, no library; all text from the server is set as textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const STAGES = {
  "waiting for another run to finish": "Waiting for another run to finish",
  "starting": "Starting: loading the models",
  "finding faces": "Finding the faces",
  "learning mask": "Learning the mask",
  "writing": "Writing the protected photos",
  "loading recognizers": "Checking: loading the recognizers",
  "reading references": "Checking: reading the originals",
  "checking photos": "Checking the protected photos with the recognizers",
  "done": "Done",
  "failed": "Failed",
  "stopped": "Stopped",
};
const ACTIVE = new Set(["waiting", "running"]);
const POLL_MS = 700;
let shownResults = "";

async function api(method, path, body) {
  const response = await fetch(path, { method, body, credentials: "same-origin" });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(data.error || `the server answered ${response.status}`);
  }
  return data;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function showError(message) {
  $("job-error").textContent = message;
  $("job-error").hidden = !message;
}

// The check's verdicts of one protected photo (result.check: {line, recognizers: [{name,
// fooled}]}, null when there are none): the line and the per-recognizer list.
function renderCheck(result, verdict) {
  verdict.replaceChildren();
  if (!result.check) return;
  verdict.append(element("p", "check-line", result.check.line));
  const list = element("ul", "check-recognizers");
  for (const r of result.check.recognizers) {
    list.append(element("li", r.fooled ? "fooled" : "matched",
                        `${r.name}: ${r.fooled ? "fooled" : "still recognizes the person"}`));
  }
  verdict.append(list);
}

// The run's check (state.check: {summary, note}, null until checked).
function renderCheckSummary(check) {
  $("check-results").hidden = !check;
  $("check-summary").textContent = check ? check.summary : "";
  $("check-note").textContent = check ? check.note : "";
}

function figure(caption, src, missing) {
  const fig = element("figure");
  if (src) {
    const img = element("img");
    img.src = src;
    img.alt = caption;
    fig.append(img);
  } else {
    fig.append(element("div", "missing", missing));
  }
  fig.append(element("figcaption", "", caption));
  return fig;
}

function renderResults(results) {
  const key = JSON.stringify(results);
  if (key === shownResults) return;
  shownResults = key;
  const pairs = $("pairs");
  pairs.replaceChildren();
  for (const result of results) {
    const pair = element("div", "pair");
    pair.dataset.photoId = result.id;
    pair.append(element("h3", "", result.name));
    pair.append(element("p", `status status-${result.status}`, result.message));
    const images = element("div", "images");
    images.append(figure("before", `/api/photos/${result.id}/before`));
    images.append(figure("after", result.after ? `/api/photos/${result.id}/after` : null,
                         "no protected copy"));
    pair.append(images);
    const verdict = element("div", "check-verdict");
    verdict.dataset.photoId = result.id;
    pair.append(verdict);
    renderCheck(result, verdict);
    pairs.append(pair);
  }
  $("results").hidden = results.length === 0;
}

function render(state) {
  const job = state.job;
  const active = job !== null && ACTIVE.has(job.state);
  $("limits").textContent = `Up to ${state.limits.max_file_mb} MB per photo and ` +
    `${state.limits.max_total_mb} MB in all. JPEG, PNG, WebP, TIFF and most other formats.`;
  const count = state.photos.length;
  $("photo-count").textContent = count ? `${count} photo${count === 1 ? "" : "s"} ready.` : "";
  $("protect").disabled = active || count === 0;
  $("photos").disabled = active;
  $("progress").hidden = job === null;
  if (job !== null) {
    let stage = STAGES[job.stage] || job.stage;
    if (active && job.total > 0) stage += ` (${job.done} of ${job.total})`;
    $("stage").textContent = stage;
    $("bar").max = job.state === "done" ? 1 : Math.max(job.total, 1);
    $("bar").value = job.state === "done" ? 1 : job.done;
    showError(job.error ? `Protection failed: ${job.error}` : "");
    $("notes").replaceChildren(...job.notes.map((n) => element("li", "hint", n)));
  } else {
    showError("");
    $("notes").replaceChildren();
  }
  renderResults(state.results);
  renderCheckSummary(state.check);
  $("downloads").hidden = !(state.downloads.zip || state.downloads.mask);
  $("download-zip").hidden = !state.downloads.zip;
  $("download-mask").hidden = !state.downloads.mask;
  return active;
}

async function poll() {
  try {
    if (render(await api("GET", "/api/state"))) setTimeout(poll, POLL_MS);
  } catch (err) {
    showError(err.message);
  }
}

async function upload() {
  const input = $("photos");
  if (!input.files.length) return;
  const form = new FormData();
  for (const file of input.files) form.append("photos", file, file.name);
  input.value = "";
  const messages = $("upload-messages");
  messages.replaceChildren(element("li", "hint", "Uploading and checking the photos..."));
  try {
    const answer = await api("POST", "/api/photos", form);
    messages.replaceChildren(...answer.outcomes.map((o) =>
      element("li", o.accepted ? "accepted" : "refused", o.message)));
    render(answer.state);
  } catch (err) {
    messages.replaceChildren(element("li", "refused", `Upload refused: ${err.message}`));
  }
}

async function protect() {
  showError("");
  try {
    render(await api("POST", "/api/protect"));
    setTimeout(poll, POLL_MS);
  } catch (err) {
    showError(err.message);
  }
}

async function reset() {
  try {
    render(await api("POST", "/api/reset"));
    $("upload-messages").replaceChildren();
  } catch (err) {
    showError(err.message);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("photos").addEventListener("change", upload);
  $("protect").addEventListener("click", protect);
  $("reset").addEventListener("click", reset);
  poll();
});
