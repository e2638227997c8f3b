// emostream's page: microphone or file -> 16 kHz s16le frames -> /v1/stream; results back, drawn live.
import { Downsampler, FRAME_SAMPLES, TARGET_RATE } from '/downsample.js';

const LABELS = ['angry', 'disgusted', 'fearful', 'happy', 'neutral', 'sad', 'surprised'];
const COLORS = { angry: '#d93025', disgusted: '#7b8f13', fearful: '#8e44ad', happy: '#f2a600',
  neutral: '#9aa0a6', sad: '#1a73e8', surprised: '#e8710a' };
const LOUD = 10 ** (-45 / 20); // a frame louder than -45 dBFS counts as speech for the felt latency
const CLOSE_WORDS = {
  1000: 'stream ended',
  1001: 'the server is shutting down',
  1006: 'the connection was lost (server unreachable?)',
  1008: 'the server refused the stream',
  1009: 'a frame was too large for the server',
  1011: 'the server hit an internal error',
  1013: 'the server is overloaded; try again later',
};

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

// Everything the page received, for the timeline, the download and tests (window.emostream).
// sent: one entry per 20 ms frame (its end in stream time, when it was captured, loudness), the last MAX_SENT;
// shown: per final, when it arrived and when the frame that draws it was painted (the felt latency).
const session = { finals: [], partials: new Map(), messages: [], latencies: [], summary: null, sent: [], sentDropped: 0,
  shown: [], earlyDropped: 0 };
const MAX_SENT = 90000; // 30 min of frames
window.emostream = session;

let ws = null;
let capture = null; // {stop(): Promise} of the microphone or the file
let early = null; // [frame, captured at] while the microphone's stream connects; null otherwise
const MAX_EARLY = 250; // 5 s of 20 ms frames
let framesSent = 0;

function setState(text, live = false) {
  $('connection').textContent = text;
  $('connection').classList.toggle('live', live);
}

function showError(text) {
  $('error').textContent = text || '';
}

function tokenQuery() {
  const token = $('token').value || params.get('token') || '';
  return token ? `?token=${encodeURIComponent(token)}` : '';
}

function wsUrl(path, extra = '') {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const query = tokenQuery();
  return `${scheme}://${location.host}${path}${query}${extra ? (query ? '&' : '?') + extra : ''}`;
}

// A browser hides why a WebSocket handshake failed; a plain GET of the endpoint tells (401, 403).
async function handshakeProblem(path) {
  try {
    const response = await fetch(path + tokenQuery(), { cache: 'no-store' });
    if (response.status === 401) return 'wrong or missing token: enter the one the server was started with';
    if (response.status === 403) return 'this page\'s origin is not allowed by the server (--allow-origin)';
    return null;
  } catch (err) {
    return 'server unreachable: is `emostream serve` still running?';
  }
}

function setRunning(running) {
  $('start').disabled = running;
  $('file').disabled = running;
  $('watch').disabled = running;
  $('stop').disabled = !running;
}

// --- sending ------------------------------------------------------------------------------------
function sendFrame(frame, capturedAt = performance.now()) {
  if (early !== null) { // the stream is still connecting
    early.push([frame, capturedAt]);
    if (early.length > MAX_EARLY) {
      early.shift();
      session.earlyDropped += 1;
    }
    return;
  }
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  let peak = 0;
  let energy = 0;
  for (let i = 0; i < frame.length; i++) {
    peak = Math.max(peak, Math.abs(frame[i]));
    energy += frame[i] * frame[i];
  }
  const now = capturedAt;
  framesSent += 1;
  if (session.sent.length >= MAX_SENT) session.sentDropped += session.sent.splice(0, MAX_SENT / 10).length;
  session.sent.push({ end_s: (framesSent * FRAME_SAMPLES) / TARGET_RATE, at: now, loud: peak / 32768 > LOUD,
    rms: Math.sqrt(energy / frame.length) / 32768 });
  ws.send(frame.buffer.byteLength === frame.length * 2 ? frame.buffer : frame.slice().buffer);
}

function openStream() {
  return new Promise((resolve, reject) => {
    const streamId = $('stream-id').value || `browser-${Math.random().toString(36).slice(2, 8)}`;
    $('stream-id').value = streamId;
    framesSent = 0;
    session.sent = [];
    session.sentDropped = 0;
    ws = new WebSocket(wsUrl('/v1/stream'));
    ws.binaryType = 'arraybuffer';
    let ready = false;
    ws.onopen = () => {
      setState('connected, starting…');
      ws.send(JSON.stringify({ stream_id: streamId, rate: TARGET_RATE, format: 's16le', channels: 1 }));
    };
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === 'ready') {
        ready = true;
        setState(`live: ${streamId}`, true);
        resolve();
        return;
      }
      receive(message);
    };
    ws.onclose = async (event) => {
      const why = CLOSE_WORDS[event.code] || `closed (${event.code})`;
      const reason = event.reason ? `: ${event.reason}` : '';
      if (!ready) {
        const problem = await handshakeProblem('/v1/stream');
        const text = problem || `${why}${reason}`;
        showError(text);
        setState('not connected');
        reject(new Error(text));
      } else {
        setState(event.code === 1000 ? 'stream ended' : `disconnected: ${why}`);
        if (event.code !== 1000) showError(`${why}${reason}`);
      }
      if (capture) await capture.stop();
      capture = null;
      ws = null;
      setRunning(false);
    };
  });
}

async function startMicrophone() {
  showError('');
  // The browser's voice processing reshapes the loudness and voice quality the SEC branch reads: off
  // unless asked for (echo cancellation helps with loudspeakers and no headset).
  const constraints = { audio: { echoCancellation: $('echo').checked, noiseSuppression: $('noise').checked,
    autoGainControl: $('gain').checked, channelCount: 1 } };
  // The audio graph's slow part (loading the worklet) comes before the microphone opens: a
  // microphone delivers from the moment it is granted, and what it hears meanwhile would be lost.
  const context = new AudioContext();
  try {
    if (context.audioWorklet) await context.audioWorklet.addModule('/mic-worklet.js');
  } catch (err) {
    await context.close();
    showError(`cannot start audio capture: ${err}`);
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia(constraints);
  } catch (err) {
    await context.close();
    const name = err && err.name;
    if (name === 'NotAllowedError' || name === 'SecurityError') {
      showError('microphone access was denied: allow it for this page (and use https:// or localhost)');
    } else if (name === 'NotFoundError' || name === 'OverconstrainedError') {
      showError('no microphone found');
    } else {
      showError(`cannot open the microphone: ${err}`);
    }
    return;
  }
  const track = stream.getAudioTracks()[0];
  const granted = track.getSettings();
  $('granted').textContent = `microphone: ${track.label || 'default'} — ${granted.sampleRate || '?'} Hz, ` +
    `${granted.channelCount || '?'} ch; echo cancellation ${onOff(granted.echoCancellation)}, ` +
    `noise suppression ${onOff(granted.noiseSuppression)}, auto gain ${onOff(granted.autoGainControl)}`;
  session.granted = granted;
  setRunning(true);
  // Capture starts now and its frames wait while the stream connects, so the first words said after
  // Start are not lost to the handshake (MAX_EARLY at most; more are dropped oldest first, counted).
  early = [];
  session.earlyDropped = 0;
  const source = context.createMediaStreamSource(stream);
  const sink = context.createGain();
  sink.gain.value = 0; // pulls the graph without playing the microphone back
  sink.connect(context.destination);
  let node;
  if (context.audioWorklet) {
    node = new AudioWorkletNode(context, 'mic-16k');
    node.port.onmessage = (event) => sendFrame(new Int16Array(event.data));
  } else { // ScriptProcessor: older browsers
    node = context.createScriptProcessor(4096, source.channelCount || 1, 1);
    const downsampler = new Downsampler(context.sampleRate, sendFrame);
    node.onaudioprocess = (event) => {
      const b = event.inputBuffer;
      downsampler.push(Array.from({ length: b.numberOfChannels }, (_, c) => b.getChannelData(c)));
    };
  }
  source.connect(node);
  node.connect(sink);
  session.contextRate = context.sampleRate;
  capture = {
    async stop() {
      if (node.port) node.port.postMessage('stop');
      source.disconnect();
      stream.getTracks().forEach((t) => t.stop());
      await context.close();
    },
  };
  try {
    await openStream();
  } catch (err) {
    early = null; // the failed stream's close stopped the capture
    return;
  }
  const held = early;
  early = null;
  for (const [frame, capturedAt] of held) sendFrame(frame, capturedAt);
  if (session.earlyDropped > 0) { // a loss is said, never silent
    const seconds = (session.earlyDropped * FRAME_SAMPLES) / TARGET_RATE;
    showError(`the stream took long to connect: the first ${seconds.toFixed(1)} s of audio after Start were not sent`);
  }
}

function onOff(value) {
  return value === undefined ? 'unknown' : (value ? 'on' : 'off');
}

async function startFile(file) {
  showError('');
  let audio;
  try {
    const data = await file.arrayBuffer();
    const decoder = new AudioContext();
    const decoded = await decoder.decodeAudioData(data);
    await decoder.close();
    const offline = new OfflineAudioContext(1, Math.ceil(decoded.duration * TARGET_RATE), TARGET_RATE);
    const player = offline.createBufferSource();
    player.buffer = decoded;
    player.connect(offline.destination);
    player.start();
    audio = (await offline.startRendering()).getChannelData(0);
  } catch (err) {
    showError(`cannot read ${file.name}: not an audio file this browser decodes`);
    return;
  }
  $('granted').textContent = `file: ${file.name}, ${(audio.length / TARGET_RATE).toFixed(1)} s, streamed in real time`;
  setRunning(true);
  try {
    await openStream();
  } catch (err) {
    return;
  }
  let stopped = false;
  const t0 = performance.now();
  const frames = Math.ceil(audio.length / FRAME_SAMPLES);
  let index = 0;
  const timer = setInterval(() => { // real-time pace, steered by the clock (timers drift)
    const due = Math.min(frames, Math.floor((performance.now() - t0) / 20) + 1);
    for (; index < due && !stopped; index++) {
      const frame = new Int16Array(FRAME_SAMPLES);
      for (let i = 0; i < FRAME_SAMPLES; i++) {
        const v = Math.max(-1, Math.min(1, audio[index * FRAME_SAMPLES + i] || 0));
        frame[i] = v < 0 ? Math.round(v * 32768) : Math.round(v * 32767);
      }
      sendFrame(frame);
    }
    if (index >= frames && !stopped) {
      stopped = true;
      clearInterval(timer);
      endStream();
    }
  }, 20);
  capture = { async stop() { stopped = true; clearInterval(timer); } };
}

async function endStream() {
  if (capture) {
    const c = capture;
    capture = null;
    await c.stop();
  }
  if (ws && ws.readyState === WebSocket.OPEN) {
    setState('finishing: waiting for the last results…');
    ws.send(JSON.stringify({ type: 'end' }));
  }
  $('stop').disabled = true;
}

function watch(streamId) {
  showError('');
  const socket = new WebSocket(wsUrl('/v1/watch', `stream_id=${encodeURIComponent(streamId)}`));
  ws = socket;
  setRunning(true);
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === 'watching') {
      setState(`watching ${message.stream_id}`, true);
      return;
    }
    receive(message);
  };
  socket.onclose = async (event) => {
    const watched = session.watching;
    session.watching = false; // Stop on a later stream must end it ({"type":"end"}), not just close
    if (!watched) {
      showError((await handshakeProblem('/v1/watch')) || CLOSE_WORDS[event.code] || `closed (${event.code})`);
    } else if (event.code !== 1000) {
      showError(`${CLOSE_WORDS[event.code] || 'closed'}${event.reason ? `: ${event.reason}` : ''}`);
    }
    setState('not connected');
    ws = null;
    setRunning(false);
  };
  socket.onopen = () => { session.watching = true; };
}

// --- receiving ----------------------------------------------------------------------------------
function receive(message) {
  session.messages.push(message);
  $('download').disabled = false;
  if (message.type === 'partial') {
    session.partials.set(key(message), message);
    $('stable').textContent = message.stable || '';
    $('unstable').textContent = message.unstable || '';
    $('now-label').textContent = `${message.label}…`;
    $('now-confidence').textContent = `so far, ${(100 * message.confidence).toFixed(0)} %`;
  } else if (message.type === 'emotion') {
    if (session.finals.some((f) => key(f) === key(message))) return; // a cluster may repeat one
    session.partials.delete(key(message));
    const receivedAt = performance.now();
    message.latency_ms = feltLatency(message);
    if (message.latency_ms !== null) session.latencies.push(message.latency_ms);
    session.finals.push(message);
    session.finals.sort((a, b) => a.utterance.start_s - b.utterance.start_s);
    $('stable').textContent = message.transcript;
    $('unstable').textContent = '';
    $('now-label').textContent = message.label;
    $('now-label').style.color = COLORS[message.label] || '';
    $('now-confidence').textContent = `${(100 * message.confidence).toFixed(0)} % sure`;
    $('latency').textContent = message.latency_ms === null ? '—' : `${Math.round(message.latency_ms)} ms`;
    addRow(message);
    const shown = { seq: message.seq, session: message.session, end_s: message.utterance.end_s,
      received_at: receivedAt, shown_at: null };
    session.shown.push(shown);
    requestAnimationFrame(() => { shown.shown_at = performance.now(); });
  } else if (message.type === 'end') {
    session.summary = message;
    const lost = message.dropped + message.failed + message.missing;
    setState(`stream ended: ${message.finals} result(s)` + (lost ? `, ${lost} utterance(s) without a result` : ''));
  }
  draw();
}

function key(message) {
  return `${message.session || ''}/${message.seq}`;
}

// End of speech (the last loud frame sent before the utterance's end) -> now, on this page's clock.
function feltLatency(message) {
  const end = message.utterance && message.utterance.end_s;
  if (end === undefined || !session.sent.length) return null;
  let lastLoud = null;
  for (const frame of session.sent) {
    if (frame.end_s > end + 1e-6) break;
    if (frame.loud) lastLoud = frame;
  }
  return lastLoud ? performance.now() - lastLoud.at : null;
}

function addRow(m) {
  const row = document.createElement('tr');
  const cells = [m.seq, `${m.utterance.start_s.toFixed(1)}–${m.utterance.end_s.toFixed(1)} s`, m.label,
    `${(100 * m.confidence).toFixed(0)} %`, m.valence.toFixed(2), m.arousal.toFixed(2), m.transcript,
    m.latency_ms === null ? '—' : `${Math.round(m.latency_ms)} ms`];
  for (const value of cells) {
    const cell = document.createElement('td');
    cell.textContent = String(value);
    row.appendChild(cell);
  }
  row.cells[2].style.color = COLORS[m.label] || '';
  $('finals').prepend(row);
}

// --- the timeline -------------------------------------------------------------------------------
function draw() {
  const canvas = $('timeline');
  const g = canvas.getContext('2d');
  const W = canvas.width;
  const H = canvas.height;
  const band = { top: 10, height: 150 };
  const lines = { top: 180, height: 70 };
  const items = [...session.finals.map((m) => [m, 1]), ...[...session.partials.values()].map((m) => [m, 0.35])];
  const end = Math.max(10, ...items.map(([m]) => m.utterance.end_s));
  const x = (t) => 40 + (t / end) * (W - 50);
  g.clearRect(0, 0, W, H);
  g.font = '12px system-ui, sans-serif';
  g.fillStyle = '#595959';
  g.fillText('p', 12, band.top + band.height / 2);
  g.fillText('v/a', 8, lines.top + lines.height / 2);
  g.textAlign = 'center';
  for (let t = 0; t <= end; t += end > 60 ? 10 : 5) {
    g.fillText(`${t}s`, Math.min(W - 16, x(t)), H - 2);
  }
  g.textAlign = 'start';
  for (const [m, alpha] of items) { // a stacked band of the seven probabilities per utterance
    let y = band.top + band.height;
    g.globalAlpha = alpha;
    for (const label of LABELS) {
      const h = (m.probs[label] || 0) * band.height;
      g.fillStyle = COLORS[label];
      g.fillRect(x(m.utterance.start_s), y - h, Math.max(1, x(m.utterance.end_s) - x(m.utterance.start_s)), h);
      y -= h;
    }
  }
  g.globalAlpha = 1;
  g.strokeStyle = '#d0d4da';
  g.beginPath();
  g.moveTo(40, lines.top + lines.height / 2);
  g.lineTo(W - 10, lines.top + lines.height / 2);
  g.stroke();
  for (const [dim, color] of [['valence', '#137333'], ['arousal', '#b3261e']]) { // finals only
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    session.finals.forEach((m, i) => {
      const px = x((m.utterance.start_s + m.utterance.end_s) / 2);
      const py = lines.top + lines.height / 2 - (Math.max(-1, Math.min(1, m[dim])) * lines.height) / 2;
      if (i === 0) g.moveTo(px, py); else g.lineTo(px, py);
      g.fillStyle = color;
      g.fillRect(px - 2, py - 2, 4, 4);
    });
    g.stroke();
  }
  g.lineWidth = 1;
  canvas.dataset.finals = String(session.finals.length);
  canvas.dataset.partials = String(session.partials.size);
}

function legend() {
  const list = $('legend');
  for (const label of LABELS) {
    const item = document.createElement('li');
    const swatch = document.createElement('span');
    swatch.style.background = COLORS[label];
    item.append(swatch, label);
    list.appendChild(item);
  }
  for (const [name, color] of [['valence', '#137333'], ['arousal', '#b3261e']]) {
    const item = document.createElement('li');
    const swatch = document.createElement('span');
    swatch.style.background = color;
    item.append(swatch, `${name} (line)`);
    list.appendChild(item);
  }
}

function download() {
  const text = session.messages.map((m) => JSON.stringify(m)).join('\n') + '\n';
  const link = document.createElement('a');
  link.href = URL.createObjectURL(new Blob([text], { type: 'application/x-ndjson' }));
  link.download = `emostream-${$('stream-id').value || 'session'}.jsonl`;
  link.click();
  URL.revokeObjectURL(link.href);
}

// --- wiring -------------------------------------------------------------------------------------
$('start').addEventListener('click', () => startMicrophone());
$('stop').addEventListener('click', () => (session.watching && ws ? ws.close(1000) : endStream()));
$('file').addEventListener('change', (event) => {
  const file = event.target.files[0];
  if (file) startFile(file);
  event.target.value = '';
});
$('watch').addEventListener('click', () => {
  const id = $('watch-id').value.trim();
  if (id) watch(id);
});
$('download').addEventListener('click', download);
if (params.get('token')) $('token').value = params.get('token');
for (const [param, id] of [['ec', 'echo'], ['ns', 'noise'], ['agc', 'gain']]) {
  if (params.has(param)) $(id).checked = params.get(param) === '1';
}
if (params.get('stream_id')) $('stream-id').value = params.get('stream_id');
legend();
draw();
if (params.get('watch')) {
  $('watch-id').value = params.get('watch');
  watch(params.get('watch'));
}
