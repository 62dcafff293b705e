// The transcript of one job: metrics, audio player, segments with clickable words, current-word highlight,
// downloads and copy.

import { apiKey, download, getJSON, request } from "./api.js";
import { errorText, isTerminal } from "./jobs.js";
import { $, announce, clock, duration, el, languageName, showError, speakerClass, speed, toast } from "./ui.js";

const EXTENSIONS = { text: "txt", srt: "srt", vtt: "vtt", json: "json" };

export class TranscriptView {
  constructor(root) {
    this.root = root;
    this.player = $("#player", root);
    this.segmentsEl = $("#segments", root);
    this.job = null;
    this.result = null;
    this.words = [];
    this.segmentIds = new Set();
    this.current = null;
    this.blobUrl = null;
    this.audioFor = null;
    this.loading = null;

    this.segmentsEl.addEventListener("click", (event) => {
      const target = event.target.closest("[data-start]");
      if (target) this.playFrom(Number(target.dataset.start));
    });
    for (const button of root.querySelectorAll("[data-download]")) {
      button.addEventListener("click", () => this.download(button.dataset.download));
    }
    $("#copy-button", root).addEventListener("click", () => this.copy());
    this.player.addEventListener("play", () => this.follow());
    this.player.addEventListener("seeked", () => this.highlight());
    this.player.addEventListener("error", () => {
      $("#t-audio-note", root).hidden = !this.player.getAttribute("src") || this.job?.status === "failed";
    });
  }

  /** Show a job (null hides the view). */
  show(job) {
    const changed = !this.job || !job || this.job.id !== job.id;
    $("#t-empty").hidden = Boolean(job);
    if (!job) {
      this.root.hidden = true;
      this.job = null;
      this.clearAudio();
      return;
    }
    this.root.hidden = false;
    if (changed) {
      this.job = job;
      this.result = null;
      this.segmentsEl.replaceChildren();
      this.segmentIds.clear();
      this.words = [];
      this.current = null;
      if (job.status !== "failed") this.loadAudio(job);
      else this.clearAudio();
    }
    this.update(job);
  }

  /** Refresh header, metrics and state for a (possibly newer) copy of the shown job. */
  update(job) {
    if (!this.job || job.id !== this.job.id) return;
    const wasDone = this.job.status === "succeeded" && this.result;
    this.job = job;
    $("#t-title", this.root).textContent = job.filename || job.id;
    const language = this.result?.language || job.options?.language;
    $("#t-sub", this.root).textContent = [
      job.status,
      language ? languageName(language) : null,
      job.options?.task === "translate" ? "translated" : null,
    ]
      .filter(Boolean)
      .join(" · ");
    this.renderMetrics(job);
    this.player.hidden = job.status === "failed";
    if (job.status === "failed") $("#t-audio-note", this.root).hidden = true;
    const progress = $("#t-progress", this.root);
    progress.hidden = isTerminal(job);
    progress.firstElementChild.style.width = `${job.progress || 0}%`;
    const message = $("#t-message", this.root);
    message.classList.toggle("error", job.status === "failed");
    if (job.status === "failed") message.textContent = `This job failed: ${errorText(job.error)}`;
    else if (job.status === "cancelled") message.textContent = "This job was cancelled.";
    else if (job.status === "queued") message.textContent = "Waiting for a worker…";
    else if (job.status === "running" && !this.segmentIds.size) message.textContent = `Working (${job.stage || "starting"})…`;
    else message.textContent = "";
    for (const button of this.root.querySelectorAll("[data-download], #copy-button")) {
      button.disabled = job.status !== "succeeded";
    }
    if (job.status === "succeeded" && !wasDone) this.loadResult(job);
  }

  renderMetrics(job) {
    const { rtf, times } = speed(job);
    const items = [
      ["Audio", duration(job.audio_seconds)],
      ["Processing", duration(job.processing_seconds)],
      ["Real-time factor", rtf],
      ["Speed", times],
      ["First segment", duration(job.first_segment_seconds)],
      ["Model", job.model || "default"],
    ];
    $("#t-metrics", this.root).replaceChildren(
      ...items.map(([name, value]) => el("div", {}, el("dt", {}, name), el("dd", {}, value))),
    );
  }

  async loadResult(job) {
    const id = job.id;
    try {
      const result = await getJSON(`/v1/jobs/${id}/result?format=json`);
      if (!this.job || this.job.id !== id) return;
      this.result = result;
      this.segmentsEl.replaceChildren();
      this.segmentIds.clear();
      this.words = [];
      for (const segment of result.segments) this.addSegment(segment);
      if (!result.segments.length) $("#t-message", this.root).textContent = "No speech was found in this file.";
      this.update(this.job);
      announce(`Transcript of ${job.filename || id} ready`);
    } catch (err) {
      showError(err, "Could not load the transcript");
    }
  }

  /** Append one segment (from the event stream while running, or from the result). */
  addSegment(segment) {
    if (this.segmentIds.has(segment.id)) return;
    this.segmentIds.add(segment.id);
    const speaker = segment.speaker || null;
    const text = el("p", { class: "seg-text" });
    if (segment.words && segment.words.length) {
      for (const [i, word] of segment.words.entries()) {
        // Whisper words carry their leading space: keep it outside the span so the highlight hugs the word.
        if (i > 0 && /^\s/.test(word.word)) text.append(" ");
        const span = el("span", { class: "word", dataset: { start: word.start, end: word.end } }, word.word.trim());
        if (word.probability !== undefined && word.probability < 0.5) {
          span.classList.add("unsure");
          span.title = `low confidence (${Math.round(word.probability * 100)}%)`;
        }
        text.append(span);
        this.words.push({ start: word.start, end: word.end, node: span });
      }
    } else {
      text.dataset.start = segment.start;
      text.append(segment.text.trim());
    }
    const time = el(
      "button",
      {
        class: "ts",
        type: "button",
        dataset: { start: segment.start },
        "aria-label": `Play from ${clock(segment.start)}`,
      },
      clock(segment.start),
    );
    const row = el(
      "div",
      { class: `segment ${speakerClass(speaker)}`, dataset: { id: segment.id } },
      time,
      speaker ? el("span", { class: "speaker" }, speaker.replace(/^SPEAKER_0?/, "Speaker ")) : null,
      text,
    );
    this.segmentsEl.append(row);
    this.words.sort((a, b) => a.start - b.start);
    $("#t-message", this.root).textContent = "";
  }

  // -- audio ----------------------------------------------------------------------------------------------------

  clearAudio() {
    this.player.pause();
    this.player.removeAttribute("src");
    this.player.load();
    if (this.blobUrl) URL.revokeObjectURL(this.blobUrl);
    this.blobUrl = null;
    this.audioFor = null;
  }

  async loadAudio(job) {
    this.clearAudio();
    $("#t-audio-note", this.root).hidden = true;
    this.audioFor = job.id;
    const path = `/v1/jobs/${job.id}/audio`;
    if (!apiKey()) {
      this.player.src = path;
      return;
    }
    // <audio> cannot send an Authorization header: fetch the file and play it from a blob.
    try {
      const blob = await (await request(path)).blob();
      if (this.audioFor !== job.id) return;
      this.blobUrl = URL.createObjectURL(blob);
      this.player.src = this.blobUrl;
    } catch (err) {
      showError(err, "Could not load the audio");
    }
  }

  playFrom(seconds) {
    const seek = () => {
      this.player.currentTime = seconds;
      this.highlight();
      this.player.play().catch((err) => {
        if (err.name !== "AbortError") toast(`Playback failed: ${err.message}`, "error");
      });
    };
    if (this.player.readyState >= 1) seek();
    else this.player.addEventListener("loadedmetadata", seek, { once: true });
  }

  follow() {
    const step = () => {
      this.highlight();
      if (!this.player.paused && !this.player.ended) requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  }

  /** Mark the word under the play head (binary search over word starts). */
  highlight() {
    const t = this.player.currentTime;
    let lo = 0;
    let hi = this.words.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.words[mid].start <= t + 0.01) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    const word = found >= 0 && t <= this.words[found].end + 0.3 ? this.words[found] : null;
    if (word === this.current) return;
    this.current?.node.classList.remove("current");
    this.current = word;
    if (word) {
      word.node.classList.add("current");
      const box = word.node.getBoundingClientRect();
      if (box.top < 0 || box.bottom > window.innerHeight) word.node.scrollIntoView({ block: "center", behavior: "smooth" });
    }
  }

  // -- export ---------------------------------------------------------------------------------------------------

  async download(format) {
    if (!this.job) return;
    const stem = (this.job.filename || this.job.id).replace(/\.[^.]+$/, "");
    try {
      await download(`/v1/jobs/${this.job.id}/result?format=${format}`, `${stem}.${EXTENSIONS[format]}`);
      announce(`Downloaded ${format.toUpperCase()}`);
    } catch (err) {
      showError(err, "Download failed");
    }
  }

  async copy() {
    if (!this.result) return;
    const text = this.result.segments
      .map((s) => (s.speaker ? `${s.speaker}: ${s.text.trim()}` : s.text.trim()))
      .join("\n");
    try {
      if (navigator.clipboard && window.isSecureContext) await navigator.clipboard.writeText(text);
      else copyFallback(text);
      toast("Transcript copied to the clipboard");
    } catch (err) {
      showError(err, "Copy failed");
    }
  }
}

function copyFallback(text) {
  const area = el("textarea", { class: "visually-hidden", readonly: true });
  area.value = text;
  document.body.append(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  if (!ok) throw new Error("the browser refused to copy");
}
