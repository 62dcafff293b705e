// Small DOM and formatting helpers shared by the views.

export const $ = (selector, root = document) => root.querySelector(selector);

/** Create an element: el("button", {class: "x", onclick}, "text", child…). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/** Tell screen readers (polite live region). */
export function announce(message) {
  const region = $("#status");
  region.textContent = "";
  // A fresh text node each time, so the same message is announced twice.
  requestAnimationFrame(() => (region.textContent = message));
}

/** Show a visible message; errors stay until dismissed, others fade after a few seconds. */
export function toast(message, kind = "info") {
  const box = $("#toasts");
  const close = el("button", { class: "toast-close", type: "button", "aria-label": "Dismiss" }, "×");
  const node = el("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, el("span", {}, message), close);
  close.addEventListener("click", () => node.remove());
  box.append(node);
  while (box.children.length > 4) box.firstElementChild.remove();
  if (kind !== "error") setTimeout(() => node.remove(), 4000);
  return node;
}

export function showError(err, prefix = "") {
  const message = err && err.message ? err.message : String(err);
  toast(prefix ? `${prefix}: ${message}` : message, "error");
}

/** 0:07, 1:02:03.4 style clock for timestamps. */
export function clock(seconds, decimals = 0) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  const sign = seconds < 0 ? "-" : "";
  let s = Math.abs(seconds);
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const sec = decimals ? s.toFixed(decimals).padStart(3 + decimals, "0") : String(Math.floor(s)).padStart(2, "0");
  return h ? `${sign}${h}:${String(m).padStart(2, "0")}:${sec}` : `${sign}${m}:${sec}`;
}

/** A duration for people: 850 ms, 4.2 s, 3 min 10 s. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  return `${m} min ${Math.round(seconds - m * 60)} s`;
}

export function bytes(n) {
  if (!n) return "";
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

const PALETTE = 8;
const speakerIndex = new Map();

/** A stable colour class per speaker label (speaker-0 … speaker-7). */
export function speakerClass(label) {
  if (!label) return "";
  if (!speakerIndex.has(label)) {
    const digits = /\d+/.exec(label);
    speakerIndex.set(label, digits ? Number(digits[0]) % PALETTE : speakerIndex.size % PALETTE);
  }
  return `speaker-${speakerIndex.get(label)}`;
}

const languageNames = typeof Intl.DisplayNames === "function" ? new Intl.DisplayNames(["en"], { type: "language" }) : null;

export function languageName(code) {
  try {
    return (languageNames && languageNames.of(code)) || code;
  } catch {
    return code;
  }
}

/**
 * Speed of a job. The server's `real_time_factor` is audio seconds per processing second (higher is faster);
 * the conventional RTF is the inverse (processing / audio, lower is faster). Show both, clearly named.
 */
export function speed(job) {
  const audio = job.audio_seconds;
  const processing = job.processing_seconds;
  const ratio = audio && processing ? audio / processing : job.real_time_factor;
  if (!ratio) return { rtf: "–", times: "–" };
  return { rtf: (1 / ratio).toFixed(3), times: `${ratio.toFixed(1)}× real time` };
}
