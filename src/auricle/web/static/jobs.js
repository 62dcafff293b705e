// The jobs sidebar: this browser's jobs (GET /v1/jobs?session=…), followed live through their event streams.
// Browsers allow ~6 connections per host over HTTP/1.1, so at most MAX_STREAMS jobs are streamed at once;
// the rest are refreshed by polling the list.

import { followEvents, getJSON, postJSON, request, sessionTag } from "./api.js";
import { announce, clock, el, showError } from "./ui.js";

const MAX_STREAMS = 3;
const POLL_MS = 3000;
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const STATUS_LABEL = {
  queued: "Queued",
  running: "Running",
  succeeded: "Done",
  failed: "Failed",
  cancelled: "Cancelled",
};

export const isTerminal = (job) => TERMINAL.has(job.status);

/** Seconds a job has taken so far (or took). */
export function elapsed(job, now = Date.now() / 1000) {
  const start = job.started_at || job.created_at;
  if (!start) return null;
  const end = job.finished_at || (job.status === "running" || job.status === "queued" ? now : null);
  return end ? Math.max(0, end - start) : null;
}

export class JobList extends EventTarget {
  constructor(listEl, emptyEl) {
    super();
    this.listEl = listEl;
    this.emptyEl = emptyEl;
    this.jobs = new Map();
    this.items = new Map();
    this.streams = new Map();
    this.selected = null;
    setInterval(() => this.tick(), 1000);
    setInterval(() => this.poll(), POLL_MS);
  }

  /** Load this browser's jobs from the server (after a reload, too). */
  async load() {
    const data = await getJSON(`/v1/jobs?session=${encodeURIComponent(sessionTag())}&limit=200`);
    const seen = new Set();
    for (const job of data.jobs) {
      seen.add(job.id);
      this.upsert(job);
    }
    for (const id of [...this.jobs.keys()]) if (!seen.has(id)) this.remove(id);
    this.schedule();
  }

  upsert(job) {
    const previous = this.jobs.get(job.id);
    // Events may arrive out of order with a poll: never step progress back within one run.
    if (previous && previous.status === job.status && previous.attempts === job.attempts) {
      job = { ...job, progress: Math.max(job.progress || 0, previous.progress || 0) };
    }
    this.jobs.set(job.id, job);
    this.render(job);
    this.dispatchEvent(new CustomEvent("change", { detail: job }));
    if (previous && previous.status !== job.status) {
      announce(`${job.filename || job.id}: ${STATUS_LABEL[job.status] || job.status}`);
      if (isTerminal(job)) this.dispatchEvent(new CustomEvent("finished", { detail: job }));
    }
    return job;
  }

  remove(id) {
    this.stop(id);
    this.jobs.delete(id);
    this.items.get(id)?.li.remove();
    this.items.delete(id);
    this.emptyEl.hidden = this.jobs.size > 0;
    if (this.selected === id) this.select(null);
  }

  select(id) {
    this.selected = id;
    for (const [jobId, item] of this.items) {
      item.li.classList.toggle("selected", jobId === id);
      item.open.setAttribute("aria-current", jobId === id ? "true" : "false");
    }
    this.dispatchEvent(new CustomEvent("select", { detail: id ? this.jobs.get(id) : null }));
    if (id) this.schedule();
  }

  // -- rendering ------------------------------------------------------------------------------------------------

  render(job) {
    let item = this.items.get(job.id);
    if (!item) {
      item = this.build(job);
      this.items.set(job.id, item);
      const after = [...this.items.values()].find(
        (other) => other !== item && (this.jobs.get(other.id)?.created_at || 0) < (job.created_at || 0),
      );
      this.listEl.insertBefore(item.li, after ? after.li : null);
    }
    this.emptyEl.hidden = true;
    const pct = Math.round(job.status === "succeeded" ? 100 : job.progress || 0);
    item.li.dataset.status = job.status;
    item.name.textContent = job.filename || job.id;
    item.status.textContent = STATUS_LABEL[job.status] || job.status;
    item.status.className = `badge ${job.status}`;
    item.model.textContent = job.model || "";
    item.bar.style.width = `${pct}%`;
    item.progress.setAttribute("aria-valuenow", String(pct));
    item.progress.setAttribute("aria-valuetext", `${pct}%`);
    item.pct.textContent = isTerminal(job) && job.status !== "succeeded" ? "" : `${pct}%`;
    item.time.textContent = clock(elapsed(job));
    item.error.textContent = job.status === "failed" && job.error ? errorText(job.error) : "";
    item.error.hidden = !item.error.textContent;
    item.retry.hidden = !(job.status === "failed" || job.status === "cancelled");
    item.cancel.hidden = isTerminal(job);
  }

  build(job) {
    const id = job.id;
    const name = el("span", { class: "job-name" });
    const status = el("span", { class: "badge" });
    const model = el("span", { class: "muted" });
    const time = el("span", { class: "muted mono", title: "Elapsed" });
    const pct = el("span", { class: "mono small" });
    const bar = el("span");
    const progress = el(
      "div",
      { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-label": "Progress" },
      bar,
    );
    const error = el("p", { class: "job-error", hidden: true });
    const open = el(
      "button",
      { class: "job-open", type: "button", onclick: () => this.select(id) },
      name,
      el("span", { class: "job-meta" }, status, model, time),
    );
    const retry = el("button", { class: "small", type: "button", onclick: () => this.retry(id) }, "Retry");
    const cancel = el("button", { class: "small", type: "button", onclick: () => this.cancel(id) }, "Cancel");
    const remove = el("button", { class: "small danger", type: "button", onclick: () => this.delete(id) }, "Delete");
    for (const button of [retry, cancel, remove]) {
      button.setAttribute("aria-label", `${button.textContent} ${job.filename || id}`);
    }
    const li = el(
      "li",
      { class: "job", dataset: { id } },
      open,
      el("div", { class: "job-progress" }, progress, pct),
      error,
      el("div", { class: "job-actions" }, retry, cancel, remove),
    );
    return { id, li, open, name, status, model, time, pct, bar, progress, error, retry, cancel };
  }

  tick() {
    const now = Date.now() / 1000;
    for (const job of this.jobs.values()) {
      if (!isTerminal(job)) this.items.get(job.id).time.textContent = clock(elapsed(job, now));
    }
  }

  // -- actions --------------------------------------------------------------------------------------------------

  async retry(id) {
    try {
      this.upsert(await postJSON(`/v1/jobs/${id}/retry`));
      this.schedule();
    } catch (err) {
      showError(err, "Retry failed");
    }
  }

  async cancel(id) {
    try {
      this.upsert(await postJSON(`/v1/jobs/${id}/cancel`));
    } catch (err) {
      showError(err, "Cancel failed");
    }
  }

  async delete(id) {
    const job = this.jobs.get(id);
    try {
      await request(`/v1/jobs/${id}`, { method: "DELETE" });
      this.remove(id);
      announce(`Deleted ${job?.filename || id}`);
    } catch (err) {
      if (err.status === 404) this.remove(id);
      else showError(err, "Delete failed");
    }
  }

  // -- live updates ---------------------------------------------------------------------------------------------

  /** Stream the most interesting unfinished jobs: the selected one, then running, then oldest queued. */
  schedule() {
    const open = [...this.jobs.values()].filter((job) => !isTerminal(job));
    const rank = (job) => (job.id === this.selected ? 0 : job.status === "running" ? 1 : 2);
    open.sort((a, b) => rank(a) - rank(b) || (a.created_at || 0) - (b.created_at || 0));
    for (const job of open) {
      if (this.streams.size >= MAX_STREAMS) break;
      if (!this.streams.has(job.id)) this.follow(job.id);
    }
  }

  stop(id) {
    this.streams.get(id)?.abort();
    this.streams.delete(id);
  }

  async follow(id) {
    const controller = new AbortController();
    this.streams.set(id, controller);
    try {
      await followEvents(`/v1/jobs/${id}/events`, (message) => this.onEvent(id, message), controller.signal);
    } catch (err) {
      if (err.name !== "AbortError" && err.status !== 404) console.warn("event stream", id, err.message);
      if (err.status === 404) this.remove(id);
    } finally {
      if (this.streams.get(id) === controller) this.streams.delete(id);
    }
    if (!controller.signal.aborted) setTimeout(() => this.schedule(), 500);
  }

  onEvent(id, { event, data }) {
    const job = this.jobs.get(id);
    if (!job || !data || typeof data !== "object") return;
    // A stream starts with the current state, then replays the job's event log from its start: once a job is
    // shown as finished, older snapshots and progress from that replay must not move it back.
    const replayed = isTerminal(job) && (!data.job || (!isTerminal(data.job) && (data.job.attempts || 0) <= (job.attempts || 0)));
    if (event === "deleted") {
      this.remove(id);
      return;
    } else if (data.job) {
      if (!replayed) this.upsert(data.job);
    } else if (typeof data.progress === "number" && !replayed) {
      this.upsert({ ...job, status: job.status === "queued" ? "running" : job.status, stage: data.stage, progress: data.progress });
    }
    if (event === "segment" && data.segment) {
      this.dispatchEvent(new CustomEvent("segment", { detail: { id, segment: data.segment } }));
    }
    if (event === "language" && data.language) {
      this.dispatchEvent(new CustomEvent("language", { detail: { id, language: data.language } }));
    }
  }

  async poll() {
    const waiting = [...this.jobs.values()].some((job) => !isTerminal(job) && !this.streams.has(job.id));
    if (!waiting || document.hidden) return;
    try {
      await this.load();
    } catch (err) {
      console.warn("job list refresh failed:", err.message);
    }
  }
}

/** The message of a job's `error` (a string or `{message, code}`). */
export function errorText(error) {
  if (!error) return "";
  if (typeof error === "string") return error;
  return error.message || error.detail || JSON.stringify(error);
}
