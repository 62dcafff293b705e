// Compare view: the same file through two models (two jobs), side by side, with metrics and — given a
// reference transcript — each one's word error rate and its differences highlighted.

import { getJSON } from "./api.js";
import { errorText } from "./jobs.js";
import { $, announce, duration, el, showError, speed } from "./ui.js";
import { submitFile } from "./upload.js";
import { align } from "./wer.js";

export function setupCompare(jobs) {
  const form = $("#compare-form");
  const results = $("#compare-results");
  const reference = $("#cmp-reference");
  const stateEl = $("#cmp-state");
  let sides = [];

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = $("#cmp-file").files[0];
    if (!file) {
      stateEl.textContent = "Choose an audio file first.";
      $("#cmp-file").focus();
      return;
    }
    const models = [$("#cmp-model-a").value, $("#cmp-model-b").value];
    const language = $("#cmp-language").value;
    stateEl.textContent = "Uploading…";
    const uploads = el("ul", { class: "uploads" });
    results.replaceChildren(uploads);
    sides = [];
    const submitted = await Promise.all(
      models.map((model) => submitFile(file, { model, ...(language ? { language } : {}) }, uploads)),
    );
    if (submitted.some((list) => !list.length)) {
      stateEl.textContent = "Could not start the comparison.";
      return;
    }
    stateEl.textContent = "Running both models…";
    const grid = el("div", { class: "compare-grid" });
    results.replaceChildren(grid);
    sides = submitted.map(([job], index) => {
      jobs.upsert(job);
      const side = makeSide(job, index === 0 ? "A" : "B");
      grid.append(side.root);
      return side;
    });
    jobs.schedule();
  });

  jobs.addEventListener("change", (event) => {
    const side = sides.find((s) => s.job.id === event.detail.id);
    if (!side) return;
    side.job = event.detail;
    renderSide(side);
    if (event.detail.status === "succeeded" && side.text === null) loadText(side);
    if (sides.every((s) => s.job.status === "succeeded" || s.job.status === "failed")) stateEl.textContent = "";
  });

  reference.addEventListener("input", () => sides.forEach(renderScore));

  async function loadText(side) {
    side.text = "";
    try {
      const result = await getJSON(`/v1/jobs/${side.job.id}/result?format=json`);
      side.text = result.text || "";
      renderScore(side);
      announce(`Model ${side.label} finished`);
    } catch (err) {
      showError(err, `Could not load the result of model ${side.label}`);
    }
  }

  function renderScore(side) {
    if (side.text === null) return;
    const ref = reference.value.trim();
    if (!ref) {
      side.score.textContent = "";
      side.body.replaceChildren(side.text || "(no speech)");
      return;
    }
    const { ops, errors, words, wer } = align(ref, side.text);
    side.score.replaceChildren(
      el("strong", {}, `WER ${(wer * 100).toFixed(1)}%`),
      el("span", { class: "muted" }, ` · ${errors} error${errors === 1 ? "" : "s"} in ${words} words`),
    );
    side.body.replaceChildren(...diffNodes(ops));
  }
}

function makeSide(job, label) {
  const bar = el("span");
  const side = {
    job,
    label,
    text: null,
    bar,
    title: el("h3", {}),
    status: el("span", { class: "badge" }),
    metrics: el("dl", { class: "metrics compact" }),
    score: el("p", { class: "score", "aria-live": "polite" }),
    body: el("p", { class: "compare-text" }),
  };
  side.progress = el("div", { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-label": `Model ${label} progress` }, bar);
  side.root = el(
    "section",
    { class: "card compare-side", "aria-label": `Model ${label}` },
    el("header", { class: "row spread" }, side.title, side.status),
    side.progress,
    side.metrics,
    side.score,
    side.body,
  );
  renderSide(side);
  return side;
}

function renderSide(side) {
  const job = side.job;
  const pct = Math.round(job.status === "succeeded" ? 100 : job.progress || 0);
  side.title.textContent = `${side.label}: ${job.model || "default model"}`;
  side.status.textContent = job.status;
  side.status.className = `badge ${job.status}`;
  side.bar.style.width = `${pct}%`;
  side.progress.setAttribute("aria-valuenow", String(pct));
  side.progress.hidden = job.status === "succeeded";
  const { rtf, times } = speed(job);
  side.metrics.replaceChildren(
    ...[
      ["Processing", duration(job.processing_seconds)],
      ["RTF", rtf],
      ["Speed", times],
      ["First segment", duration(job.first_segment_seconds)],
    ].map(([name, value]) => el("div", {}, el("dt", {}, name), el("dd", {}, value))),
  );
  if (job.status === "failed") side.body.textContent = `Failed: ${errorText(job.error)}`;
}

/** Hypothesis words with substitutions, insertions and deletions marked (and titled for screen readers). */
function diffNodes(ops) {
  const nodes = [];
  for (const { op, ref, hyp } of ops) {
    if (op === "ok") nodes.push(`${hyp} `);
    else if (op === "sub") {
      nodes.push(el("mark", { class: "sub", title: `said “${ref}”` }, hyp), el("del", { class: "sub-ref" }, ref), " ");
    } else if (op === "ins") nodes.push(el("ins", { title: "inserted" }, hyp), " ");
    else nodes.push(el("del", { title: "missed" }, ref), " ");
  }
  return nodes;
}
