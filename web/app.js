// The operator dashboard, in the browser (served by the cloud at /dashboard; no build step).
//
// Token: read once from the URL fragment (`#token=…`, which browsers never send to a server), then kept in
// sessionStorage and the fragment cleared; without one the page asks for it. Data: the cloud's
// /api/dashboard/events read with fetch() and a stream reader (EventSource cannot send an Authorization
// header), falling back to polling /api/dashboard while the event stream fails. Every string from the
// cloud reaches the DOM through textContent or an attribute, never as HTML. One hls.js player per stream
// card, destroyed when the stream leaves or its URL changes. A module script: strict, and run after
// hls.min.js (module scripts are deferred).
//
// Beside the HLS player, a WebRTC player for streams whose relay serves WHEP (`webrtcUrl`): started by the
// operator (each one is a session on the relay), a small RTCPeerConnection that POSTs its complete offer
// (non-trickle, as draft-ietf-wish-whep allows) and DELETEs its session when stopped or when the stream goes.
//
// The page tells the truth about each stream: cards are grouped by state (live, reconnecting, ended), a
// stream whose output fails (the cloud says no HLS segment came, or the card's own player cannot load it)
// is shown red with the reason, and each card has its watch URL (and, for a managed stream, the cloud's
// share link, which follows the stream across relays) to copy.

const TOKEN_KEY = 'rtmp-relay.dashboard.token';
const POLL_MS = 2000;
/** Polls before the event stream is tried again. */
const POLLS_PER_RETRY = 5;
/** A player that failed is rebuilt at a snapshot this long after. */
const PLAYER_RETRY_MS = 5000;
/** The WHEP offer goes with what ICE gathered by then (host candidates take milliseconds). */
const WHEP_GATHER_MS = 2000;
const MAX_EVENT_BYTES = 8 * 1024 * 1024;
const DASH = '–';

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, content) => {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (content !== undefined) node.textContent = content;
  return node;
};

class AuthError extends Error {}

// ---- token ----

function takeToken() {
  const match = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (match) {
    history.replaceState(null, '', location.pathname + location.search);
    const token = decodeURIComponent(match[1]);
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

function askToken(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  setConnection('signed-out', 'signed out');
  $('main').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  $('token-input').focus();
}

$('login').addEventListener('submit', (event) => {
  event.preventDefault();
  const token = $('token-input').value.trim();
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  $('token-input').value = '';
  start();
});

// ---- data ----

async function request(path, signal) {
  const token = sessionStorage.getItem(TOKEN_KEY) || '';
  const res = await fetch(path, {
    headers: { authorization: `Bearer ${token}` },
    cache: 'no-store',
    signal,
  });
  if (res.status === 401) throw new AuthError('That token was refused.');
  if (res.status === 503) {
    const body = await res.json().catch(() => ({}));
    if (body.code === 'DASHBOARD_DISABLED')
      throw new AuthError('The cloud has no CONTROL_API_TOKEN configured: the dashboard API is off.');
  }
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return res;
}

/** Reads the event stream until it fails; each `snapshot` event is rendered. */
async function follow(signal) {
  const res = await request('/api/dashboard/events', signal);
  if (!res.body) throw new Error('no response body');
  setConnection('live', 'live');
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error('event stream ended');
    buffer += value.replace(/\r\n?/g, '\n');
    if (buffer.length > MAX_EVENT_BYTES) throw new Error('event too large');
    for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (name === 'snapshot' && data.length > 0) render(JSON.parse(data.join('\n')));
    }
  }
}

let session = null;

/** The event stream; while it fails, polling, trying the stream again every few polls. */
async function start() {
  session?.abort();
  const controller = new AbortController();
  session = controller;
  const { signal } = controller;
  $('login').hidden = true;
  $('main').hidden = false;
  setConnection('connecting', 'connecting…');
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  try {
    while (!signal.aborted) {
      try {
        await follow(signal);
      } catch (err) {
        if (err instanceof AuthError) throw err;
        if (signal.aborted) return;
        console.warn('dashboard event stream:', err);
      }
      for (let i = 0; i < POLLS_PER_RETRY && !signal.aborted; i++) {
        try {
          render(await (await request('/api/dashboard', signal)).json());
          setConnection('polling', 'polling');
        } catch (err) {
          if (err instanceof AuthError) throw err;
          if (signal.aborted) return;
          setConnection('offline', 'cloud unreachable');
        }
        await sleep(POLL_MS);
      }
    }
  } catch (err) {
    if (err instanceof AuthError && session === controller) askToken(err.message);
    else if (!signal.aborted) throw err;
  }
}

function setConnection(state, text) {
  const node = $('connection');
  node.dataset.connection = state;
  node.textContent = text;
}

// ---- formatting ----

const known = (v) => v !== undefined && v !== null && !(typeof v === 'number' && !Number.isFinite(v));
const fixed = (v, digits, unit = '') => (known(v) ? `${Number(v).toFixed(digits)}${unit}` : DASH);
const text = (v) => (known(v) && v !== '' ? String(v) : DASH);

function duration(seconds) {
  if (!known(seconds)) return DASH;
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n) => String(n).padStart(2, '0');
  return `${h > 0 ? `${h}:${pad(m)}` : m}:${pad(s % 60)}`;
}

function codecs(stats) {
  const names = [stats.videoCodec, stats.audioCodec].filter(known).join(' + ');
  const size = known(stats.width) && known(stats.height) ? `${stats.width}×${stats.height}` : '';
  return [names, size].filter(Boolean).join(' ') || DASH;
}

function profile(stats) {
  if (!known(stats.profile) && !known(stats.pipelineProfile)) return DASH;
  if (known(stats.pipelineProfile) && stats.pipelineProfile !== stats.profile)
    return `${text(stats.profile)} → ${stats.pipelineProfile}`;
  return text(stats.profile);
}

// ---- relays ----

function renderRelays(relays) {
  const rows = relays.map((r) => {
    const row = el('tr', {
      'data-relay': r.relayId,
      'data-health': r.health,
      'data-streams': String(r.streams),
    });
    const cells = [
      ['relayId', r.relayId],
      ['region', text(r.region)],
      ['load', `${r.streams}${r.reserved ? ` (+${r.reserved})` : ''} / ${r.maxStreams}`],
      ['cpu', fixed(r.cpu, 2)],
      ['draining', r.draining ? 'yes' : 'no'],
      ['health', r.health],
      ['lastSeen', `${fixed(r.lastSeenSecondsAgo, 1)} s ago`],
    ];
    for (const [field, value] of cells) row.append(el('td', { 'data-field': field }, value));
    row.cells[0].title = `RTMP ${r.rtmpUrl}\nHLS ${r.hlsUrl}`;
    return row;
  });
  $('relays').tBodies[0].replaceChildren(...rows);
  $('no-relays').hidden = relays.length > 0;
  const health = {};
  for (const r of relays) health[r.health] = (health[r.health] || 0) + 1;
  const summary = Object.entries(health).map(([h, n]) => `${n} ${h}`);
  $('relay-count').textContent = `(${relays.length}${summary.length ? `: ${summary.join(', ')}` : ''})`;
}

// ---- streams ----

/**
 * key `${userId}/${streamId}` → { card, fields, video, note, output, links, url, hls, failedAt, playerError,
 * whep: { video, button, note, url, session } }
 */
const cards = new Map();

const FIELDS = [
  ['state', 'state'],
  ['relay', 'relay'],
  ['managed', 'managed'],
  ['profile', 'profile'],
  ['video', 'codecs'],
  ['bitrate', 'bitrate'],
  ['fps', 'fps'],
  ['keyframes', 'keyframe every'],
  ['viewers', 'viewers'],
  ['uptime', 'uptime'],
];

function createCard(stream) {
  const key = `${stream.userId}/${stream.streamId}`;
  const card = el('article', { class: 'stream', 'data-stream': key });
  const video = el('video', { muted: '', autoplay: '', playsinline: '', controls: '' });
  video.muted = true;
  const title = el('h3');
  title.append(el('span', { class: 'user' }, stream.userId), '/', el('span', {}, stream.streamId));
  const output = el('p', { class: 'output', 'data-field': 'output', role: 'status' });
  const list = el('dl');
  const fields = {};
  for (const [field, label] of FIELDS) {
    fields[field] = el('dd', { 'data-field': field });
    list.append(el('dt', {}, label), fields[field]);
  }
  const links = el('div', { class: 'links' });
  const note = el('p', { class: 'note', 'data-field': 'player' });
  const whep = createWhepPlayer();
  card.append(video, whep.box, title, output, list, links, note);
  const entry = {
    key,
    card,
    fields,
    video,
    note,
    output,
    links,
    linkValues: '',
    url: null,
    hls: null,
    failedAt: 0,
    playerError: null,
    whep,
  };
  whep.button.addEventListener('click', () => {
    if (whep.session) stopWhep(whep);
    else void startWhep(whep);
  });
  cards.set(key, entry);
  return entry;
}

// ---- WebRTC (WHEP) player ----

function createWhepPlayer() {
  const box = el('div', { class: 'whep', 'data-whep': 'off', hidden: '' });
  const video = el('video', { muted: '', autoplay: '', playsinline: '', controls: '' });
  video.muted = true;
  const button = el(
    'button',
    { type: 'button', class: 'whep-toggle', 'data-whep-toggle': '' },
    'play WebRTC (WHEP)',
  );
  const note = el('p', { class: 'note', 'data-field': 'whep' });
  box.append(video, button, note);
  return { box, video, button, note, url: null, session: null };
}

/** Shows the player for a stream whose relay serves WHEP; a URL that changes (the stream moved) stops it. */
function updateWhep(whep, url) {
  if (url === whep.url) return;
  stopWhep(whep);
  whep.url = url;
  whep.box.hidden = !url;
  whep.note.textContent = '';
}

async function startWhep(whep) {
  const url = whep.url;
  if (!url || whep.session) return;
  const pc = new RTCPeerConnection({ iceServers: [] });
  const session = { pc, location: null, url };
  whep.session = session;
  whep.box.dataset.whep = 'connecting';
  whep.button.textContent = 'stop WebRTC';
  whep.note.textContent = 'connecting…';
  const media = new MediaStream();
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  pc.ontrack = (event) => {
    media.addTrack(event.track);
    whep.video.srcObject = media;
    whep.video.play().catch(() => {}); // autoplay of a muted video may still be refused: controls remain
  };
  pc.onconnectionstatechange = () => {
    if (whep.session !== session) return;
    const state = pc.connectionState;
    if (state === 'connected') {
      whep.box.dataset.whep = 'playing';
      whep.note.textContent = '';
    } else if (state === 'failed' || state === 'closed') {
      // The relay ended the session (the stream ended or moved) or the path failed: say so, stop.
      stopWhep(whep, `WebRTC ${state}`);
    }
  };
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/sdp' },
      body: pc.localDescription.sdp,
    });
    const body = await res.text();
    if (whep.session !== session) return;
    if (res.status !== 201) throw new Error(`${res.status} ${body.trim().slice(0, 200)}`);
    const location = res.headers.get('location');
    session.location = location ? new URL(location, url).href : null;
    await pc.setRemoteDescription({ type: 'answer', sdp: body });
  } catch (err) {
    if (whep.session === session) stopWhep(whep, `WebRTC: ${err.message || err}`);
  }
}

/** Resolves once ICE gathering completes, or after WHEP_GATHER_MS with what it has. */
function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, WHEP_GATHER_MS);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === 'complete') done();
    }
    pc.addEventListener('icegatheringstatechange', check);
  });
}

function stopWhep(whep, why = '') {
  const session = whep.session;
  whep.session = null;
  whep.box.dataset.whep = why ? 'failed' : 'off';
  whep.button.textContent = 'play WebRTC (WHEP)';
  whep.note.textContent = why;
  if (!session) return;
  session.pc.onconnectionstatechange = null;
  session.pc.close();
  whep.video.srcObject = null;
  if (session.location) {
    // Fire and forget: the relay also drops a session whose peer went silent; a failed DELETE is harmless.
    fetch(session.location, { method: 'DELETE' }).catch((err) => console.warn('WHEP DELETE:', err));
  }
}

/** A labelled, read-only URL with a copy button (the click is handled once, on the page). */
function linkRow(name, label, url) {
  const row = el('div', { class: 'link', 'data-link': name });
  const input = el('input', { type: 'text', readonly: '', value: url, 'aria-label': `${label} URL` });
  row.append(
    el('span', { class: 'link-label' }, label),
    input,
    el('button', { type: 'button', 'data-copy': '' }, 'copy'),
  );
  return row;
}

function updateLinks(entry, stream, watchUrl) {
  // The share link is the cloud's (this page's origin): it redirects to wherever a managed stream is now.
  const share = stream.managed
    ? `${location.origin}/watch/${encodeURIComponent(stream.streamId)}/index.m3u8`
    : null;
  const webrtc = watchUrl && /^https?:\/\//i.test(stream.webrtcUrl || '') ? stream.webrtcUrl : null;
  const values = `${watchUrl || ''} ${share || ''} ${webrtc || ''}`;
  if (values === entry.linkValues) return;
  entry.linkValues = values;
  const rows = [];
  if (watchUrl) rows.push(linkRow('watch', 'watch (HLS, LL-HLS)', watchUrl));
  if (webrtc) rows.push(linkRow('webrtc', 'WebRTC (WHEP)', webrtc));
  if (share) rows.push(linkRow('share', 'share', share));
  entry.links.replaceChildren(...rows);
}

async function copyLink(button) {
  const input = button.parentElement.querySelector('input');
  let done = false;
  try {
    await navigator.clipboard.writeText(input.value);
    done = true;
  } catch (err) {
    // No clipboard API (an insecure origin) or no permission: select the text for Ctrl-C instead.
    console.warn('clipboard:', err);
  }
  input.focus();
  input.select();
  button.textContent = done ? 'copied' : 'press Ctrl-C';
  button.dataset.copied = done ? 'yes' : 'no';
}

document.addEventListener('click', (event) => {
  const button = event.target.closest?.('button[data-copy]');
  if (button) void copyLink(button);
});

/** What the card says of the output: the cloud's verdict, else the player's failure, else fine. */
function outputOfCard(entry, stream) {
  const server = stream.output || { health: 'unknown', reason: null };
  if (server.health === 'failing' || server.health === 'ended') return server;
  if (entry.playerError) return { health: 'failing', reason: `player: ${entry.playerError}` };
  return server;
}

function updateCard(entry, stream) {
  const stats = stream.stats || {};
  const managed = stream.managed;
  entry.card.dataset.state = stream.state;
  entry.card.dataset.relay = stream.relayId;
  const values = {
    state: stream.state,
    relay: stream.relayId,
    managed: managed ? `${managed.status} (${managed.viewers} app${managed.viewers === 1 ? '' : 's'})` : DASH,
    profile: profile(stats),
    video: codecs(stats),
    bitrate: fixed(stats.bitrateKbps, 0, ' kbps'),
    fps: fixed(stats.fps, 1),
    keyframes: fixed(stats.keyframeIntervalSeconds, 1, ' s'),
    viewers: text(stats.viewers),
    uptime: duration(stats.uptimeSeconds),
  };
  for (const [field, value] of Object.entries(values)) {
    if (entry.fields[field].textContent !== value) entry.fields[field].textContent = value;
  }
  // Only http(s) URLs reach a player or a link (the cloud's contract checks this too).
  const watchUrl = /^https?:\/\//i.test(stream.hlsUrl || '') ? stream.hlsUrl : null;
  updateLinks(entry, stream, stream.state === 'ended' ? null : watchUrl);
  const webrtcUrl = /^https?:\/\//i.test(stream.webrtcUrl || '') ? stream.webrtcUrl : null;
  updateWhep(entry.whep, stream.state !== 'ended' ? webrtcUrl : null);
  const url = stream.state !== 'ended' ? watchUrl : null;
  if (url !== entry.url) {
    stopPlayer(entry);
    entry.url = url;
    entry.failedAt = 0;
    entry.playerError = null;
    if (url) startPlayer(entry);
    else entry.note.textContent = stream.state === 'ended' ? '' : 'no HLS URL yet';
  } else if (url && !entry.hls && entry.failedAt && Date.now() - entry.failedAt > PLAYER_RETRY_MS) {
    entry.failedAt = 0;
    startPlayer(entry);
  }
  showOutput(entry, stream);
}

function showOutput(entry, stream) {
  const output = outputOfCard(entry, stream);
  entry.card.dataset.output = output.health;
  const label = {
    ok: 'output ok',
    starting: 'starting',
    failing: 'output failing',
    unknown: 'output: no stats from the relay',
    ended: 'ended',
  }[output.health];
  const message = `${label || output.health}${output.reason ? `: ${output.reason}` : ''}`;
  if (entry.output.textContent !== message) entry.output.textContent = message;
  entry.lastStream = stream;
}

function startPlayer(entry) {
  const { video, url } = entry;
  entry.note.textContent = '';
  const play = () => video.play().catch(() => {});
  if (window.Hls?.isSupported()) {
    const hls = new window.Hls({ liveDurationInfinity: true });
    entry.hls = hls;
    hls.on(window.Hls.Events.MANIFEST_PARSED, play);
    // Media arrived: whatever failed before works now.
    hls.on(window.Hls.Events.FRAG_BUFFERED, () => {
      if (entry.hls !== hls || !entry.playerError) return;
      entry.playerError = null;
      if (entry.lastStream) showOutput(entry, entry.lastStream);
    });
    hls.on(window.Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal || entry.hls !== hls) return;
      if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
        return;
      }
      // Rebuilt by a later snapshot (no timer of its own to own); red until media plays again.
      entry.playerError = String(data.details);
      entry.note.textContent = `player: ${data.details}`;
      stopPlayer(entry);
      entry.failedAt = Date.now();
      if (entry.lastStream) showOutput(entry, entry.lastStream);
    });
    hls.loadSource(url);
    hls.attachMedia(video);
  } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
    video.src = url;
    play();
  } else {
    entry.note.textContent = 'this browser cannot play HLS';
  }
}

function stopPlayer(entry) {
  if (entry.hls) {
    entry.hls.destroy();
    entry.hls = null;
  } else if (entry.video.getAttribute('src')) {
    entry.video.removeAttribute('src');
    entry.video.load();
  }
}

/** Where each state's cards go; a state the page does not know is shown with the live ones. */
const GROUPS = ['live', 'reconnecting', 'ended'];
const groupOf = (state) => (state === 'reconnecting' || state === 'ended' ? state : 'live');

function renderStreams(streams) {
  const present = new Set();
  const byGroup = { live: [], reconnecting: [], ended: [] };
  for (const stream of streams) byGroup[groupOf(stream.state)].push(stream);
  for (const group of GROUPS) {
    const container = $(`streams-${group}`);
    byGroup[group].forEach((stream, index) => {
      const key = `${stream.userId}/${stream.streamId}`;
      present.add(key);
      const entry = cards.get(key) || createCard(stream);
      updateCard(entry, stream);
      // Keep the snapshot's order; cards already in place are not touched.
      const at = container.children[index] || null;
      if (at !== entry.card) {
        const moved = entry.card.isConnected;
        container.insertBefore(entry.card, at);
        // Moving a video element pauses it: a player that was playing goes on.
        if (moved && entry.hls) entry.video.play().catch(() => {});
      }
    });
    const section = document.querySelector(`[data-group="${group}"]`);
    section.hidden = group !== 'live' && byGroup[group].length === 0;
    section.querySelector(`[data-count="${group}"]`).textContent = `(${byGroup[group].length})`;
  }
  for (const [key, entry] of cards) {
    if (present.has(key)) continue;
    stopPlayer(entry);
    stopWhep(entry.whep);
    entry.card.remove();
    cards.delete(key);
  }
  $('no-streams').hidden = streams.length > 0;
  $('stream-count').textContent = `(${streams.length})`;
}

function render(snapshot) {
  renderRelays(Array.isArray(snapshot.relays) ? snapshot.relays : []);
  renderStreams(Array.isArray(snapshot.streams) ? snapshot.streams : []);
  $('generated').textContent = `updated ${new Date(snapshot.generatedAt).toLocaleTimeString()}`;
}

// ---- go ----

if (takeToken()) start();
else askToken();
