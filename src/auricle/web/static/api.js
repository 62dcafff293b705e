// The HTTP side of the UI: API key, error messages, JSON calls, uploads with progress, and SSE over fetch.
// EventSource cannot send an Authorization header, so every event stream goes through fetch() + a small parser.

const KEY_STORE = "auricle.apiKey";
const SESSION_STORE = "auricle.session";

export function apiKey() {
  return localStorage.getItem(KEY_STORE) || "";
}

export function setApiKey(key) {
  if (key) localStorage.setItem(KEY_STORE, key.trim());
  else localStorage.removeItem(KEY_STORE);
}

export function authHeaders(extra = {}) {
  const key = apiKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : { ...extra };
}

function randomId() {
  // crypto.randomUUID exists only in secure contexts; getRandomValues works on plain http too.
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A per-browser tag sent with every job, so the job list survives a reload. */
export function sessionTag() {
  let tag = localStorage.getItem(SESSION_STORE);
  if (!tag) {
    tag = `web-${randomId()}`;
    localStorage.setItem(SESSION_STORE, tag);
  }
  return tag;
}

/** An error carrying the HTTP status and the message the server gave. */
export class ApiError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

/** The human message of an error body: `{"error":{"message"}}` (/v1) or `{"detail"}` (elsewhere). */
export function messageFromBody(text, status, statusText = "") {
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  if (body && typeof body === "object") {
    if (body.error && typeof body.error === "object" && body.error.message) return String(body.error.message);
    if (typeof body.error === "string") return body.error;
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) {
      return body.detail.map((d) => `${(d.loc || []).slice(1).join(".") || "request"}: ${d.msg}`).join("; ");
    }
    if (body.message) return String(body.message);
  }
  if (status === 0) return "The server could not be reached. Is it running?";
  const snippet = (text || "").trim().slice(0, 200);
  return `HTTP ${status}${statusText ? ` ${statusText}` : ""}${snippet ? `: ${snippet}` : ""}`;
}

async function ensureOk(response) {
  if (response.ok) return response;
  const text = await response.text();
  throw new ApiError(messageFromBody(text, response.status, response.statusText), response.status);
}

/** fetch() with the API key, turning network failures and error statuses into ApiError. */
export async function request(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, headers: authHeaders(options.headers || {}) });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError("The server could not be reached. Is it running?", 0);
  }
  return ensureOk(response);
}

export async function getJSON(path, options = {}) {
  const response = await request(path, options);
  return response.status === 204 ? null : response.json();
}

export async function postJSON(path) {
  return getJSON(path, { method: "POST" });
}

/**
 * POST a multipart form with XMLHttpRequest so upload progress can be shown.
 * @returns {{promise: Promise<any>, abort: () => void}}
 */
export function uploadForm(path, form, onProgress) {
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve, reject) => {
    xhr.open("POST", path);
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        try {
          resolve(JSON.parse(xhr.responseText));
        } catch {
          reject(new ApiError("The server sent an unreadable answer.", xhr.status));
        }
      } else {
        reject(new ApiError(messageFromBody(xhr.responseText, xhr.status, xhr.statusText), xhr.status));
      }
    });
    xhr.addEventListener("error", () => reject(new ApiError("The upload failed: the server could not be reached.")));
    xhr.addEventListener("abort", () => reject(new ApiError("The upload was cancelled.")));
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
}

/** Split an SSE byte stream into `{event, data}` messages (data parsed as JSON when it is JSON). */
export function createSseParser(onMessage) {
  let buffer = "";
  let event = "message";
  let data = [];
  const dispatch = () => {
    if (data.length) {
      const raw = data.join("\n");
      let parsed = raw;
      try {
        parsed = JSON.parse(raw);
      } catch {
        parsed = raw;
      }
      onMessage({ event, data: parsed });
    }
    event = "message";
    data = [];
  };
  return (chunk) => {
    buffer += chunk;
    const lines = buffer.split(/\r\n|\r|\n/);
    buffer = lines.pop();
    for (const line of lines) {
      if (line === "") dispatch();
      else if (line.startsWith(":")) continue;
      else {
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let value = colon === -1 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") event = value;
        else if (field === "data") data.push(value);
      }
    }
  };
}

/**
 * Follow a server-sent event stream with fetch (so the API key can be sent).
 * Resolves when the stream ends; rejects with ApiError on an error status.
 */
export async function followEvents(path, onMessage, signal) {
  const response = await request(path, { signal, headers: { Accept: "text/event-stream" } });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const feed = createSseParser(onMessage);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      feed(value);
    }
    feed("\n\n");
  } finally {
    reader.releaseLock();
  }
}

/** Fetch a URL with the API key and save the body as a file (anchor + blob URL). */
export async function download(path, fallbackName) {
  const response = await request(path);
  const disposition = response.headers.get("Content-Disposition") || "";
  const match = /filename="?([^";]+)"?/i.exec(disposition);
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = match ? match[1] : fallbackName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
