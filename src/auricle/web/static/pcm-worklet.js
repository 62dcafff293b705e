// AudioWorklet: microphone samples at the context rate → 16 kHz mono s16le frames of 200 ms (3200 samples).
// Downsampling averages the input over each output sample's span (a box low-pass) and interpolates the fraction.

const TARGET_RATE = 16000;
const FRAME = 3200;

class PcmDownsampler extends AudioWorkletProcessor {
  constructor() {
    super();
    this.ratio = sampleRate / TARGET_RATE;
    this.position = 0; // fractional input position of the next output sample, relative to the current block
    this.carry = new Float32Array(0);
    this.frame = new Int16Array(FRAME);
    this.filled = 0;
    this.peak = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || !channels.length) return true;
    const length = channels[0].length;
    // Mix to mono, prepending what was left over from the previous block.
    const mono = new Float32Array(this.carry.length + length);
    mono.set(this.carry);
    for (const channel of channels) {
      for (let i = 0; i < length; i += 1) mono[this.carry.length + i] += channel[i] / channels.length;
    }
    const span = this.ratio;
    let pos = this.position;
    while (pos + span <= mono.length) {
      const start = Math.floor(pos);
      const end = Math.min(mono.length, Math.ceil(pos + span));
      let sum = 0;
      for (let i = start; i < end; i += 1) sum += mono[i];
      const value = Math.max(-1, Math.min(1, sum / (end - start)));
      this.peak = Math.max(this.peak, Math.abs(value));
      this.frame[this.filled] = value < 0 ? value * 0x8000 : value * 0x7fff;
      this.filled += 1;
      if (this.filled === FRAME) {
        const out = this.frame;
        this.port.postMessage({ pcm: out.buffer, peak: this.peak }, [out.buffer]);
        this.frame = new Int16Array(FRAME);
        this.filled = 0;
        this.peak = 0;
      }
      pos += span;
    }
    const keep = Math.floor(pos);
    this.carry = mono.slice(keep);
    this.position = pos - keep;
    return true;
  }
}

registerProcessor("pcm-downsampler", PcmDownsampler);
