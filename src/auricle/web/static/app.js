// Auricle web UI entry point: tabs, API key, server state, and the wiring between the views.

import { apiKey, request, setApiKey } from "./api.js";
import { setupCompare } from "./compare.js";
import { JobList, errorText } from "./jobs.js";
import { setupLive } from "./live.js";
import { fillLanguages, fillModels, loadModels } from "./options.js";
import { TranscriptView } from "./transcript.js";
import { $, announce, showError, toast } from "./ui.js";
import { formOptions, setupDropzone, setupRecorder, submitMany } from "./upload.js";

const jobs = new JobList($("#jobs"), $("#jobs-empty"));
const transcript = new TranscriptView($("#transcript"));
const submittedHere = new Set();
const notified = new Set();

// -- tabs ---------------------------------------------------------------------------------------------------------

const tabs = [...document.querySelectorAll('[role="tab"]')];

function showView(name, focus = false) {
  for (const tab of tabs) {
    const on = tab.dataset.view === name;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    $(`#view-${tab.dataset.view}`).hidden = !on;
    if (on && focus) tab.focus();
  }
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
}

for (const tab of tabs) {
  tab.addEventListener("click", () => showView(tab.dataset.view));
  tab.addEventListener("keydown", (event) => {
    const i = tabs.indexOf(tab);
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (step) showView(tabs[(i + step + tabs.length) % tabs.length].dataset.view, true);
  });
}

// -- API key ------------------------------------------------------------------------------------------------------

const dialog = $("#key-dialog");

function openKeyDialog(note = "") {
  $("#key-input").value = apiKey();
  $("#key-note").textContent = note;
  dialog.showModal();
}

$("#key-button").addEventListener("click", () => openKeyDialog());
dialog.addEventListener("close", () => {
  if (dialog.returnValue === "save") setApiKey($("#key-input").value);
  else if (dialog.returnValue === "clear") setApiKey("");
  else return;
  updateKeyButton();
  announce(apiKey() ? "API key saved" : "API key removed");
  start();
});

function updateKeyButton() {
  $("#key-button").textContent = apiKey() ? "API key ✓" : "API key";
}

/** Errors that mean "fix the key" open the key dialog; everything else is shown as it came. */
function handleError(err, prefix) {
  if (err.status === 401) openKeyDialog(`The server said: ${err.message}`);
  else showError(err, prefix);
}

// -- transcribe view ----------------------------------------------------------------------------------------------

async function submitFiles(files) {
  const options = formOptions();
  const created = await submitMany(files, options);
  for (const job of created) {
    submittedHere.add(job.id);
    jobs.upsert(job);
  }
  if (created.length) {
    jobs.select(created[0].id);
    jobs.schedule();
    announce(`${created.length} job${created.length > 1 ? "s" : ""} submitted`);
  }
}

setupDropzone(submitFiles);
setupRecorder((file) => submitFiles([file]));

$("#opt-diarize").addEventListener("change", (event) => ($("#speaker-counts").hidden = !event.target.checked));
$("#upload-form").addEventListener("submit", (event) => event.preventDefault());

jobs.addEventListener("select", (event) => {
  transcript.show(event.detail);
  if (event.detail) showView("transcribe");
});
jobs.addEventListener("change", (event) => transcript.update(event.detail));
jobs.addEventListener("segment", (event) => {
  if (transcript.job && transcript.job.id === event.detail.id && !transcript.result) transcript.addSegment(event.detail.segment);
});
jobs.addEventListener("finished", (event) => {
  const job = event.detail;
  const key = `${job.id}:${job.status}:${job.finished_at}`;
  if (!submittedHere.has(job.id) || notified.has(key)) return;
  notified.add(key);
  if (job.status === "failed") toast(`${job.filename || job.id} failed: ${errorText(job.error)}`, "error");
  else if (job.status === "succeeded") toast(`${job.filename || job.id} is transcribed`, "success");
});
$("#jobs-refresh").addEventListener("click", () => jobs.load().catch((err) => handleError(err, "Could not list jobs")));

// -- start-up -----------------------------------------------------------------------------------------------------

async function checkServer() {
  const pill = $("#server-state");
  try {
    const response = await fetch("/ready");
    pill.textContent = response.ok ? "ready" : "starting";
    pill.className = `pill ${response.ok ? "ok" : "warn"}`;
  } catch {
    pill.textContent = "offline";
    pill.className = "pill bad";
  }
}

// Language lists follow their model pickers (Compare: model A decides).
const pickers = [
  ["#opt-model", "#opt-language"],
  ["#live-model", "#live-language"],
  ["#cmp-model-a", "#cmp-language"],
];
for (const [model, language] of pickers) {
  $(model).addEventListener("change", () => fillLanguages($(language), $(model).value));
}

function fillPickers() {
  for (const [model, language] of pickers) {
    fillModels($(model));
    fillLanguages($(language), $(model).value);
  }
  const a = $("#cmp-model-a").value;
  const other = [...$("#cmp-model-a").options].map((o) => o.value).find((m) => m !== a);
  fillModels($("#cmp-model-b"), $("#cmp-model-b").value || other);
}

setupCompare(jobs);
setupLive();

async function start() {
  updateKeyButton();
  checkServer();
  try {
    await loadModels();
    fillPickers();
  } catch (err) {
    handleError(err, "Could not list models");
    // Without a valid key every other call fails too (and counts towards the server's lock-out).
    if (err.status === 401) return;
  }
  try {
    await jobs.load();
    const wanted = new URLSearchParams(location.search).get("job");
    if (wanted && jobs.jobs.has(wanted)) jobs.select(wanted);
  } catch (err) {
    handleError(err, "Could not list jobs");
  }
}

const initial = location.hash.slice(1);
if (["transcribe", "live", "compare"].includes(initial)) showView(initial);
setInterval(checkServer, 15_000);
start();

// Surface anything unexpected instead of failing silently.
window.addEventListener("unhandledrejection", (event) => showError(event.reason || "Unexpected error"));

export { jobs, request, transcript };
