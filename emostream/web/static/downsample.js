// Mono 16 kHz signed 16-bit frames of 20 ms from float blocks at any rate: each output sample is the
// mean of the input samples it covers (a box low-pass before decimation), channels averaged.
export const TARGET_RATE = 16000;
export const FRAME_SAMPLES = 320; // 20 ms

export class Downsampler {
  constructor(inputRate, onFrame) {
    this.step = inputRate / TARGET_RATE; // input samples per output sample (2.75625 at 44.1 kHz)
    this.onFrame = onFrame;
    this.next = this.step; // input position where the current output sample ends
    this.position = 0;
    this.sum = 0;
    this.count = 0;
    this.frame = new Int16Array(FRAME_SAMPLES);
    this.filled = 0;
  }

  push(channels) {
    const n = channels.length ? channels[0].length : 0;
    const k = channels.length;
    for (let i = 0; i < n; i++) {
      let v = 0;
      for (let c = 0; c < k; c++) v += channels[c][i];
      this.sum += v / k;
      this.count += 1;
      this.position += 1;
      if (this.position >= this.next) {
        this.emit(this.sum / this.count);
        this.sum = 0;
        this.count = 0;
        this.next += this.step;
      }
    }
  }

  emit(v) {
    const s = Math.max(-1, Math.min(1, v));
    this.frame[this.filled++] = s < 0 ? Math.round(s * 32768) : Math.round(s * 32767);
    if (this.filled === FRAME_SAMPLES) {
      this.onFrame(this.frame);
      this.frame = new Int16Array(FRAME_SAMPLES);
      this.filled = 0;
    }
  }
}
