// Submitting files as jobs: drag and drop, file picker, microphone recording; one request per file so each
// has its own upload progress, a few at a time with the rest in a visible queue.

import { sessionTag, uploadForm } from "./api.js";
import { $, announce, bytes, el, showError, toast } from "./ui.js";

/** The transcription options of the Transcribe form, as POST /v1/jobs fields. */
export function formOptions() {
  const options = {
    model: $("#opt-model").value,
    language: $("#opt-language").value,
    task: $("#opt-task").value,
    word_timestamps: $("#opt-words").checked ? "true" : "false",
    diarize: $("#opt-diarize").checked ? "true" : "false",
    initial_prompt: $("#opt-prompt").value.trim(),
  };
  if ($("#opt-diarize").checked) {
    options.num_speakers = $("#opt-num").value;
    options.min_speakers = $("#opt-min").value;
    options.max_speakers = $("#opt-max").value;
  }
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== ""));
}

/** How many files upload at once; the rest wait in a visible queue. */
export const UPLOAD_CONCURRENCY = 3;
/** Tries of one file while the server's job queue is full (503), waiting longer each time. */
const FULL_QUEUE_TRIES = 8;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A row of the uploads list: name, size, progress bar and state; `set(pct, text)` updates it. */
function uploadRow(file, list, stateText = "0%") {
  const bar = el("span");
  const progress = el(
    "div",
    { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-label": `Upload of ${file.name}` },
    bar,
  );
  const state = el("span", { class: "mono small" }, stateText);
  const message = el("p", { class: "upload-error", hidden: true });
  const row = el(
    "li",
    { class: "upload" },
    el("div", { class: "upload-head" }, el("span", { class: "job-name" }, file.name), el("span", { class: "muted small" }, bytes(file.size))),
    el("div", { class: "job-progress" }, progress, state),
    message,
  );
  list.append(row);
  const set = (pct, text = `${pct}%`) => {
    bar.style.width = `${pct}%`;
    progress.setAttribute("aria-valuenow", String(pct));
    state.textContent = text;
  };
  return { row, state, message, set };
}

/** POST one file through its row; resolves with the created jobs, rejects with the ApiError. */
async function sendFile(file, options, ui) {
  const form = new FormData();
  form.append("file", file, file.name);
  for (const [name, value] of Object.entries({ ...options, session: sessionTag() })) form.append(name, value);
  const { promise } = uploadForm("/v1/jobs", form, (fraction) => ui.set(Math.round(fraction * 100)));
  const body = await promise;
  ui.state.textContent = "sent";
  setTimeout(() => ui.row.remove(), 1500);
  return body.jobs;
}

function showFailure(file, ui, err) {
  ui.row.classList.add("failed");
  ui.state.textContent = "failed";
  ui.message.hidden = false;
  ui.message.textContent = err.message;
  ui.message.setAttribute("role", "alert");
  ui.row.append(el("button", { class: "small", type: "button", onclick: () => ui.row.remove() }, "Dismiss"));
  showError(err, `Upload of ${file.name} failed`);
}

/**
 * Upload one file as a job; shows a row with its progress and returns the created jobs.
 * @returns {Promise<object[]>}
 */
export async function submitFile(file, options, list = $("#uploads")) {
  const ui = uploadRow(file, list);
  list.prepend(ui.row);
  try {
    return await sendFile(file, options, ui);
  } catch (err) {
    showFailure(file, ui, err);
    return [];
  }
}

/**
 * Upload many files (one job each) at most `concurrency` at a time, the others waiting in a visible queue; a file
 * the server refuses because its job queue is full (503) waits and is sent again, so 200 dropped files do not
 * become 200 errors. Returns the created jobs.
 * @returns {Promise<object[]>}
 */
export async function submitMany(files, options, { list = $("#uploads"), concurrency = UPLOAD_CONCURRENCY } = {}) {
  const summary = el("li", { class: "upload-queue muted small", role: "status" });
  list.prepend(summary);
  const rows = files.map((file) => uploadRow(file, list, "waiting"));
  const created = [];
  let next = 0;
  let done = 0;
  let failed = 0;
  const show = () => {
    const active = next - done;
    summary.textContent =
      `${done} of ${files.length} sent` +
      (files.length - next > 0 ? `, ${files.length - next} waiting` : "") +
      (active > 0 ? `, ${active} uploading` : "") +
      (failed ? `, ${failed} failed` : "");
  };
  const lane = async () => {
    while (next < files.length) {
      const index = next++;
      show();
      const file = files[index];
      const ui = rows[index];
      for (let attempt = 1; ; attempt++) {
        try {
          created.push(...(await sendFile(file, options, ui)));
          break;
        } catch (err) {
          if (err.status === 503 && attempt < FULL_QUEUE_TRIES) {
            const wait = Math.min(30, 2 ** attempt);
            ui.set(0, `queue full; again in ${wait}s`);
            await sleep(wait * 1000);
            continue;
          }
          failed++;
          showFailure(file, ui, err);
          break;
        }
      }
      done++;
      show();
    }
  };
  show();
  await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, lane));
  setTimeout(() => summary.remove(), 3000);
  return created;
}

/** Wire the drop zone and the file input to `onFiles(File[])`. */
export function setupDropzone(onFiles) {
  const zone = $("#dropzone");
  const input = $("#file-input");
  input.addEventListener("change", () => {
    if (input.files.length) onFiles([...input.files]);
    input.value = "";
  });
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      if (name === "dragleave" && zone.contains(event.relatedTarget)) return;
      zone.classList.remove("over");
    });
  }
  zone.addEventListener("drop", (event) => {
    const files = [...(event.dataTransfer?.files || [])];
    if (files.length) onFiles(files);
  });
  // A file dropped outside the zone must not navigate away from the app.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
}

/** The Record button: MediaRecorder → a File handed to `onFile`. */
export function setupRecorder(onFile) {
  const button = $("#record-button");
  const status = $("#record-status");
  let recorder = null;
  let started = 0;
  let timer = 0;

  button.addEventListener("click", async () => {
    if (recorder) {
      recorder.stop();
      return;
    }
    if (!navigator.mediaDevices?.getUserMedia || typeof MediaRecorder === "undefined") {
      toast("Recording needs a secure page (https or localhost) and a browser with MediaRecorder.", "error");
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      showError(err, "Microphone unavailable");
      return;
    }
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.addEventListener("dataavailable", (event) => event.data.size && chunks.push(event.data));
    recorder.addEventListener("stop", () => {
      stream.getTracks().forEach((track) => track.stop());
      clearInterval(timer);
      const type = recorder.mimeType || "audio/webm";
      const ext = type.includes("ogg") ? "ogg" : type.includes("mp4") ? "m4a" : "webm";
      const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
      recorder = null;
      button.classList.remove("recording");
      button.setAttribute("aria-pressed", "false");
      $(".label", button).textContent = "Record";
      status.textContent = "";
      if (chunks.length) onFile(new File(chunks, `recording-${stamp}.${ext}`, { type }));
    });
    recorder.start(1000);
    started = Date.now();
    button.classList.add("recording");
    button.setAttribute("aria-pressed", "true");
    $(".label", button).textContent = "Stop recording";
    announce("Recording started");
    timer = setInterval(() => (status.textContent = `Recording… ${Math.floor((Date.now() - started) / 1000)} s`), 500);
  });
}
