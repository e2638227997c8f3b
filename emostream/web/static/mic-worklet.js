// AudioWorklet: the microphone at the context's own rate (`sampleRate`, never assumed) -> 20 ms
// frames of 16 kHz mono s16le, posted to the page as transferable buffers.
import { Downsampler } from '/downsample.js';

class Mic16k extends AudioWorkletProcessor {
  constructor() {
    super();
    this.running = true;
    this.downsampler = new Downsampler(sampleRate, (frame) => this.port.postMessage(frame.buffer, [frame.buffer]));
    this.port.onmessage = (event) => { if (event.data === 'stop') this.running = false; };
  }

  process(inputs) {
    if (!this.running) return false;
    const input = inputs[0];
    if (input && input.length) this.downsampler.push(input);
    return true;
  }
}

registerProcessor('mic-16k', Mic16k);
