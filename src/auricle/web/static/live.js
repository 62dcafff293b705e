// Live view: microphone (AudioWorklet) or a file paced in real time, streamed as 16 kHz s16le 200 ms frames
// over the WebSocket /transcribe (STREAMING.md). Hypotheses show in grey, confirmed phrases in black.

import { apiKey } from "./api.js";
import { $, announce, duration, showError, toast } from "./ui.js";

const RATE = 16000;
const FRAME = 3200; // 200 ms at 16 kHz
const FRAME_MS = 200;

/** Unpadded base64url of a string's UTF-8 bytes (a valid subprotocol token). */
function base64url(text) {
  const bytes = new TextEncoder().encode(text);
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** One WebSocket session speaking the streaming protocol. */
class StreamClient {
  constructor({ model, language }, handlers) {
    this.handlers = handlers;
    this.pending = [];
    this.ready = false;
    this.ended = false;
    this.sentMs = 0;
    this.slowDown = false;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    // Browsers cannot send an Authorization header on a WebSocket: the key goes as a subprotocol instead.
    const key = apiKey();
    const protocols = key ? ["auricle", `auricle.bearer.${base64url(key)}`] : [];
    this.ws = new WebSocket(`${scheme}://${location.host}/transcribe`, protocols);
    this.ws.binaryType = "arraybuffer";
    this.ws.addEventListener("open", () => {
      const payload = { language: language || "auto", sample_rate: RATE, encoding: "pcm_s16le" };
      if (model) payload.model_id = model;
      this.ws.send(JSON.stringify({ type: "speech.config", payload }));
    });
    this.ws.addEventListener("message", (event) => this.onMessage(event));
    this.closed = new Promise((resolve) => {
      this.ws.addEventListener("close", (event) => {
        this.handlers.close?.(event, this);
        resolve(event);
      });
    });
  }

  onMessage(event) {
    if (typeof event.data !== "string") return;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    const payload = message.payload || {};
    switch (message.type) {
      case "speech.config.ack":
        this.ready = true;
        this.sessionId = message.session_id || payload.session_id;
        for (const frame of this.pending) this.ws.send(frame);
        this.pending = [];
        this.handlers.ready?.(payload);
        break;
      case "speech.hypothesis":
        this.handlers.hypothesis?.(payload);
        break;
      case "speech.phrase":
        this.handlers.phrase?.(payload);
        break;
      case "speech.backpressure":
        this.slowDown = payload.action === "slow_down";
        this.handlers.backpressure?.(this.slowDown);
        break;
      case "speech.error":
        this.handlers.error?.(payload);
        break;
      default:
        break;
    }
  }

  send(frame) {
    if (this.ended || this.ws.readyState > WebSocket.OPEN) return;
    this.sentMs += ((frame.byteLength / 2) * 1000) / RATE;
    if (this.ready) this.ws.send(frame);
    else this.pending.push(frame);
  }

  /** Ask for the final results; resolves when the server closes (or after a timeout). */
  async end(timeoutMs = 60_000) {
    if (this.ended) return this.closed;
    this.ended = true;
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type: "speech.end", payload: {} }));
    const timer = setTimeout(() => this.ws.close(1000, "client timeout"), timeoutMs);
    await this.closed;
    clearTimeout(timer);
  }

  close() {
    this.ended = true;
    if (this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, "client closed");
  }
}

/** Microphone → AudioWorklet → 200 ms s16le frames. Returns a stop() function. */
async function startMicrophone(onFrame) {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new Error("the microphone needs a secure page (https or localhost)");
  }
  const stream = await navigator.mediaDevices.getUserMedia({
    // Whisper hears raw speech best: noise suppression and gain control clip word ends ("Americans" → "America").
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  const context = new AudioContext();
  try {
    await context.audioWorklet.addModule(new URL("./pcm-worklet.js", import.meta.url));
  } catch (err) {
    stream.getTracks().forEach((track) => track.stop());
    context.close();
    throw err;
  }
  const source = context.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(context, "pcm-downsampler");
  node.port.onmessage = (event) => onFrame(event.data.pcm, event.data.peak);
  source.connect(node);
  return () => {
    node.port.onmessage = null;
    source.disconnect();
    node.disconnect();
    stream.getTracks().forEach((track) => track.stop());
    context.close();
  };
}

/** Decode a file and resample it to 16 kHz mono with an OfflineAudioContext. */
async function decodeTo16k(file) {
  const data = await file.arrayBuffer();
  const probe = new AudioContext();
  let decoded;
  try {
    decoded = await probe.decodeAudioData(data);
  } catch {
    throw new Error(`the browser cannot decode ${file.name}`);
  } finally {
    probe.close();
  }
  const offline = new OfflineAudioContext(1, Math.ceil(decoded.duration * RATE), RATE);
  const source = offline.createBufferSource();
  source.buffer = decoded;
  source.connect(offline.destination);
  source.start();
  return (await offline.startRendering()).getChannelData(0);
}

/** Send a file's samples as 200 ms frames in real time; pauses while the server asks to slow down. */
function paceFile(samples, client, onFrame, onDone) {
  let index = 0;
  let next = performance.now();
  let timer = 0;
  const tick = () => {
    if (client.ended) return;
    if (!client.slowDown && index < samples.length) {
      const chunk = samples.subarray(index, index + FRAME);
      const pcm = new Int16Array(chunk.length);
      let peak = 0;
      for (let i = 0; i < chunk.length; i += 1) {
        const v = Math.max(-1, Math.min(1, chunk[i]));
        peak = Math.max(peak, Math.abs(v));
        pcm[i] = v < 0 ? v * 0x8000 : v * 0x7fff;
      }
      index += FRAME;
      onFrame(pcm.buffer, peak);
    }
    if (index >= samples.length) {
      onDone();
      return;
    }
    next += FRAME_MS;
    timer = setTimeout(tick, Math.max(0, next - performance.now()));
  };
  tick();
  return () => clearTimeout(timer);
}

export function setupLive() {
  const micButton = $("#live-mic");
  const fileInput = $("#live-file");
  const stopButton = $("#live-stop");
  const state = $("#live-state");
  const finalEl = $("#live-final");
  const hypothesisEl = $("#live-hypothesis");
  const level = $("#live-level");
  const stats = $("#live-stats");
  let client = null;
  let stopSource = null;
  let phrases = 0;
  let statsTimer = 0;

  const setState = (text, kind = "") => {
    state.textContent = text;
    state.className = `pill ${kind}`;
  };
  const busy = (on) => {
    micButton.disabled = on;
    fileInput.disabled = on;
    stopButton.disabled = !on;
  };
  const onFrame = (pcm, peak) => {
    client?.send(pcm);
    level.style.width = `${Math.min(100, Math.round(peak * 140))}%`;
  };
  const showStats = () => {
    if (client) stats.textContent = `Streamed ${duration(client.sentMs / 1000)} of audio · ${phrases} confirmed phrase${phrases === 1 ? "" : "s"}`;
  };

  function open() {
    finalEl.textContent = "";
    hypothesisEl.textContent = "";
    phrases = 0;
    setState("connecting…");
    busy(true);
    const current = new StreamClient(
      { model: $("#live-model").value, language: $("#live-language").value },
      {
        ready: () => {
          setState("listening", "ok");
          announce("Live transcription started");
        },
        hypothesis: (p) => (hypothesisEl.textContent = p.text || ""),
        phrase: (p) => {
          if (p.status === "EndOfStream") {
            if (p.text) finalEl.textContent = p.text.trim();
          } else if (p.text && p.text.trim()) {
            finalEl.textContent = `${finalEl.textContent} ${p.text.trim()}`.trim();
            phrases += 1;
            announce(p.text.trim());
          }
          hypothesisEl.textContent = "";
          showStats();
        },
        backpressure: (slow) => setState(slow ? "server busy, slowing down" : "listening", slow ? "warn" : "ok"),
        error: (p) => toast(`Streaming error${p.code ? ` (${p.code})` : ""}: ${p.message || "unknown"}`, "error"),
        close: (event, which) => {
          if (client !== which) return;
          finish();
          if (event.code === 1000 || (which.ended && event.code === 1005)) {
            setState("done");
          } else if (!which.ready && event.code === 1006) {
            setState("refused", "bad");
            toast(
              apiKey()
                ? "The server refused the live connection: check the API key (the API key button)."
                : "The live connection failed: the server could not be reached, or it needs an API key (the API key button).",
              "error",
            );
          } else {
            setState("closed", "bad");
            toast(`The live connection closed: ${event.reason || `code ${event.code}`}`, "error");
          }
        },
      },
    );
    client = current;
    statsTimer = setInterval(showStats, 500);
    return current;
  }

  function finish() {
    stopSource?.();
    stopSource = null;
    clearInterval(statsTimer);
    level.style.width = "0";
    busy(false);
    showStats();
  }

  async function stop() {
    if (!client) return;
    stopSource?.();
    stopSource = null;
    stopButton.disabled = true;
    setState("finishing…");
    await client.end();
  }

  micButton.addEventListener("click", async () => {
    const current = open();
    try {
      stopSource = await startMicrophone(onFrame);
    } catch (err) {
      current.close();
      finish();
      setState("idle");
      showError(err, "Microphone unavailable");
    }
  });

  fileInput.addEventListener("change", async () => {
    const file = fileInput.files[0];
    fileInput.value = "";
    if (!file) return;
    const current = open();
    try {
      const samples = await decodeTo16k(file);
      stopSource = paceFile(samples, current, onFrame, () => stop());
    } catch (err) {
      current.close();
      finish();
      setState("idle");
      showError(err, "Cannot stream this file");
    }
  });

  stopButton.addEventListener("click", () => stop());
}
