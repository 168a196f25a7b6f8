// The page of webrepl-mount: the board's REPL (xterm.js) and its files, on
// the daemon's session. The token comes in the URL's fragment (never sent
// to a server) and is kept in this tab's sessionStorage, which no other
// port's page can read (a cookie would go to every port of the host), and
// sent as a header; the WebSocket and downloads use one-time tickets (see
// src/web/guard.rs).
'use strict';

if (location.hash.length > 1) {
  sessionStorage.setItem('webrepl-mount-token', location.hash.slice(1));
  history.replaceState(null, '', location.pathname);
}
const token = sessionStorage.getItem('webrepl-mount-token') || '';

const $ = (id) => document.getElementById(id);
let cwd = '/';

function say(text) {
  const m = $('message');
  m.textContent = text || '';
  m.hidden = !text;
}

async function api(method, path, params, body, onProgress) {
  const url = path + '?' + new URLSearchParams(params || {});
  if (onProgress) {
    // XHR: fetch cannot report upload progress.
    return new Promise((resolve, reject) => {
      const x = new XMLHttpRequest();
      x.open(method, url);
      x.setRequestHeader('X-Webrepl-Token', token);
      x.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
      x.onload = () => (x.status < 300 ? resolve(x.response) : reject(new Error(errorText(x.responseText, x.status))));
      x.onerror = () => reject(new Error('the page lost its server (is webrepl-mount still running?)'));
      x.send(body);
    });
  }
  let r;
  try {
    r = await fetch(url, { method, body, headers: { 'X-Webrepl-Token': token } });
  } catch (e) {
    throw new Error('the page lost its server (is webrepl-mount still running?)');
  }
  if (!r.ok) throw new Error(errorText(await r.text(), r.status));
  return r;
}

async function ticket() {
  return (await (await api('POST', '/api/ticket')).json()).ticket;
}

function errorText(text, status) {
  try {
    return JSON.parse(text).error;
  } catch (e) {
    return text || `HTTP ${status}`;
  }
}

// The terminal. Its WebSocket opens as soon as this script runs, while
// xterm.js (345 KB, deferred) is still compiling: what the board says
// meanwhile waits in `early`, and the terminal draws it once it exists.
// The server starts with the REPL's line as it stands (the prompt), so
// nothing is typed to the board to get one.
let term = null;
let fit = null;
let ws = null;
const early = [];
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function show(bytes) {
  if (!term) {
    early.push(bytes);
    return;
  }
  term.write(bytes, () => {
    // When the board's prompt was first on the screen (bench-page.sh).
    if (!window.promptAt && decoder.decode(bytes).includes('>>> ')) window.promptAt = performance.now();
    shown('line');
  });
}

// convertEol: some ports end lines with a bare \n; ESP boards send \r\n either way.
// The font and line height: with xterm's default (Courier New, or what
// stands in for it, at line height 1) a row ends at the font's descent and
// `_`, drawn below it, was cut off at 1x (`__name__` read `  name  `).
function startTerminal() {
  if (term || !window.Terminal) return;
  term = new Terminal({
    scrollback: 10000,
    cursorBlink: true,
    fontSize: 14,
    fontFamily: '"DejaVu Sans Mono", Menlo, Consolas, "Liberation Mono", monospace',
    lineHeight: 1.15,
    convertEol: true,
  });
  fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open($('terminal'));
  fit.fit();
  // The editor opening or a narrow window resizes the terminal's box.
  new ResizeObserver(() => fit.fit()).observe($('terminal'));
  term.onData((d) => ws && ws.readyState === 1 && ws.send(encoder.encode(d)));
  for (const b of early.splice(0)) show(b);
  connected();
  // The editor comes once the page is ready, or after this long anyway.
  setTimeout(loadEditor, 3000);
}

// Usable: the terminal drawn and its link open (tests wait for this).
function connected() {
  if (!term || !ws || ws.readyState !== 1) return;
  // When the terminal could first be used (scripts/bench-page.sh reads it).
  window.termReadyAt = window.termReadyAt || performance.now();
  document.body.dataset.term = 'connected';
}

async function connect() {
  let t;
  try {
    t = await ticket();
  } catch (e) {
    document.body.dataset.term = 'closed';
    setTimeout(connect, 1000);
    shown('line');
    return;
  }
  ws = new WebSocket(`ws://${location.host}/term?` + new URLSearchParams({ ticket: t }));
  ws.binaryType = 'arraybuffer';
  ws.onopen = connected;
  ws.onmessage = (e) => show(new Uint8Array(e.data));
  ws.onclose = () => {
    shown('line');
    document.body.dataset.term = 'closed';
    setTimeout(connect, 1000);
  };
}

// The editor (CodeMirror, 470 KB) and ide.js load once the page is ready:
// the REPL's line drawn and the file list shown (or either failed).
// Compiled earlier, they held the prompt back.
const ready = new Set();
function shown(what) {
  ready.add(what);
  if (ready.has('line') && ready.has('files') && term) loadEditor();
}
let editorLoading = false;
let editorLoaded;
const editorReady = new Promise((resolve) => (editorLoaded = resolve));
function loadEditor() {
  if (editorLoading) return;
  editorLoading = true;
  window.editorLoadingAt = performance.now();
  for (const name of ['editor.js', 'ide.js']) {
    const script = document.createElement('script');
    script.src = `/page/${name}?v=${document.body.dataset.v}`;
    // In order: ide.js uses editor.js's window.CM.
    script.async = false;
    document.body.append(script);
  }
}

// For diagnostics and scripts/bench-page.sh.
window.webreplMount = { ws: () => ws };
connect();
if (window.Terminal) startTerminal();
else $('xterm').addEventListener('load', startTerminal);

// The board's name, once the status has said it (drafts are kept per board).
let boardIs;
const boardKnown = new Promise((resolve) => (boardIs = resolve));

// The status line.
// Sizes as a person reads them: 300000 -> "293.0 KB".
function human(n) {
  if (n < 1024) return n + ' B';
  if (n < 1 << 20) return (n / 1024).toFixed(1) + ' KB';
  if (n < 1 << 30) return (n / (1 << 20)).toFixed(1) + ' MB';
  return (n / (1 << 30)).toFixed(1) + ' GB';
}

// Uploads in flight (the mount's parts, the page's scratch) and Run's
// scratch: the server leaves them out too.
function hidden(name) {
  return name.startsWith('.wrm-') || (name.startsWith('.') && name.endsWith('.webrepl-upload')) || name === '.webrepl-mount-run.py';
}

async function poll() {
  const s = $('status');
  try {
    const st = await (await api('GET', '/api/status')).json();
    boardIs(st.board);
    if ($('board').textContent !== st.board) {
      $('board').textContent = st.board;
      document.title = `${st.board} — webrepl-mount`;
    }
    const parts = [st.link === 'up' ? 'link up' : st.link === 'idle' ? 'link idle (reopens when used)' : st.down || 'link down'];
    for (const t of st.transfers) {
      parts.push(`${t.upload ? '↑' : '↓'} ${t.path} ${human(t.done)} of ${human(t.total)}`);
      if (t.upload) boardTook(t.path, t.total ? t.done / t.total : 0);
    }
    if (st.queued) parts.push(`${st.queued} more waiting`);
    if (st.waiting) parts.push(st.waiting);
    if (st.held) parts.push(st.held);
    if (st.free != null) parts.push(`${human(st.free)} free of ${human(st.total)}`);
    s.textContent = parts.join(' · ');
    s.className = st.link;
    document.body.dataset.link = st.link;
  } catch (e) {
    s.textContent = e.message;
    s.className = 'down';
    document.body.dataset.link = 'down';
  }
}
setInterval(poll, 500);
poll();

// The files panel.
function join(dir, name) {
  return (dir.endsWith('/') ? dir : dir + '/') + name;
}

// The last tree read: sizes for the editor, paths for a folder's zip.
let lastTree = [];

// reread (⟳): the mount checks the board's tree now, not only the
// listing it keeps.
async function refresh(reread) {
  let all;
  try {
    all = await (await api('GET', '/api/tree', reread === true ? { reread: 1 } : {})).json();
  } catch (e) {
    say(e.message);
    shown('files');
    return;
  }
  lastTree = all;
  const ul = $('tree');
  $('cwd').textContent = cwd;
  const here = all.filter(
    (e) => e.path.slice(0, e.path.lastIndexOf('/') + 1) === join(cwd, '') && !hidden(e.path.slice(e.path.lastIndexOf('/') + 1)),
  );
  here.sort((a, b) => b.dir - a.dir || a.path.localeCompare(b.path));
  // A redraw every 3 s must not take the keyboard's place away.
  const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest('#tree li');
  const again = focused && { path: focused.dataset.path, action: document.activeElement.dataset.action };
  const rows = here.map(row);
  ul.replaceChildren(...rows);
  // When the file list was first shown (bench-page.sh).
  window.treeAt = window.treeAt || performance.now();
  shown('files');
  if (again) {
    const li = rows.find((r) => r.dataset.path === again.path);
    const el = li && (again.action ? li.querySelector(`[data-action="${again.action}"]`) : li.querySelector('.name'));
    if (el) el.focus();
  }
}

function row(e) {
  const li = document.createElement('li');
  const name = e.path.slice(e.path.lastIndexOf('/') + 1);
  li.className = e.dir ? 'dir' : 'file';
  li.dataset.path = e.path;
  const label = document.createElement('span');
  label.className = 'name';
  label.textContent = e.dir ? name + '/' : name;
  const size = document.createElement('span');
  size.className = 'size';
  size.textContent = e.dir ? '' : human(e.size);
  // Ticked rows: downloaded as one zip or deleted together.
  const tick = document.createElement('input');
  tick.type = 'checkbox';
  tick.className = 'tick';
  tick.title = 'Select (for Download or Delete of several)';
  tick.checked = selected.has(e.path);
  tick.onchange = () => {
    if (tick.checked) selected.add(e.path);
    else selected.delete(e.path);
    showSelection();
  };
  li.append(tick, label, size);
  const button = (text, action, title) => {
    const b = document.createElement('button');
    b.textContent = text;
    b.dataset.action = action;
    b.title = title;
    b.onclick = (ev) => {
      ev.stopPropagation();
      act(action, e.path).catch((err) => say(err.message));
    };
    li.append(b);
  };
  // Reachable from the keyboard: Tab to a name, Enter opens it.
  label.tabIndex = 0;
  label.setAttribute('role', 'button');
  label.onkeydown = (ev) => {
    if (ev.key === 'Enter' || ev.key === ' ') {
      ev.preventDefault();
      label.onclick();
    }
  };
  if (e.dir) {
    label.onclick = () => {
      cwd = e.path;
      refresh();
    };
    button('⤓', 'zip', 'Download the folder as a zip');
  } else {
    // The editor may still be loading (it comes after the terminal).
    label.onclick = () => {
      loadEditor();
      editorReady.then(() => openFile(e.path)).catch((err) => say(err.message));
    };
    button('⤓', 'download', 'Download');
    if (name.endsWith('.py')) button('▶', 'run', 'Run in the REPL');
  }
  button('✎', 'rename', 'Rename');
  button('✕', 'delete', 'Delete');
  return li;
}

const selected = new Set();

function showSelection() {
  $('selection').hidden = selected.size === 0;
  $('selected').textContent = `${selected.size} selected`;
}

// Files and folders as one zip, made as it downloads.
async function downloadZip(paths) {
  const a = document.createElement('a');
  a.href = '/api/zip?' + new URLSearchParams({ paths: JSON.stringify(paths), ticket: await ticket() });
  document.body.append(a);
  a.click();
  a.remove();
}

$('zip-selected').onclick = () => downloadZip([...selected]).catch((e) => say(e.message));
$('delete-selected').onclick = async () => {
  const paths = [...selected];
  if (!paths.length) return;
  // What goes, by name: a count alone says nothing of which.
  const named = paths.slice(0, 3).join(', ') + (paths.length > 3 ? ` and ${paths.length - 3} more` : '');
  if (!confirm(`Delete ${named} from the board (folders with everything in them)?`)) return;
  // Deepest first: a folder is removed once it is empty.
  const all = new Set();
  for (const p of paths) {
    all.add(p);
    for (const e of lastTree) if (e.path.startsWith(p + '/')) all.add(e.path);
  }
  const order = [...all].sort((a, b) => b.split('/').length - a.split('/').length || b.localeCompare(a));
  try {
    for (const p of order) {
      await api('POST', '/api/remove', { path: p });
      window.webreplMount.editor?.removed(p);
    }
  } catch (e) {
    say(e.message);
  }
  selected.clear();
  showSelection();
  await refresh();
};

async function act(action, path) {
  say('');
  if (action === 'zip') return downloadZip([path]);
  if (action === 'download') {
    const a = document.createElement('a');
    a.href = '/api/file?' + new URLSearchParams({ path, ticket: await ticket() });
    a.download = path.slice(path.lastIndexOf('/') + 1);
    document.body.append(a);
    a.click();
    a.remove();
    return;
  }
  if (action === 'run') {
    await api('POST', '/api/run', { path });
    if (term) term.focus();
    return;
  }
  if (action === 'rename') {
    const to = prompt(`Rename ${path} to`, path);
    if (!to || to === path) return;
    const dest = to.startsWith('/') ? to : join(cwd, to);
    await api('POST', '/api/rename', { from: path, to: dest });
    window.webreplMount.editor?.moved(path, dest);
  }
  if (action === 'delete') {
    if (!confirm(`Delete ${path} from the board?`)) return;
    await api('POST', '/api/remove', { path });
    window.webreplMount.editor?.removed(path);
  }
  await refresh();
}

// Uploads: one bar per file, one at a time (the board takes one transfer
// at a time anyway, and a failure then names its file). A bar is the
// browser's share (to this page's server, a tenth) and the board's (what
// the status says it took: the slow part, over Wi-Fi).
let queue = Promise.resolve();
const bars = new Map();
function boardTook(path, f) {
  const b = bars.get(path);
  if (b) b.show(b.sent, Math.max(b.took, f));
}
function upload(file, path) {
  const li = document.createElement('li');
  li.textContent = path + ' ';
  const bar = document.createElement('progress');
  bar.max = 1;
  bar.value = 0;
  li.append(bar);
  $('uploads').append(li);
  const shown = {
    sent: 0,
    took: 0,
    show(sent, took) {
      Object.assign(this, { sent, took });
      bar.value = Math.max(bar.value, 0.1 * sent + 0.9 * took);
    },
  };
  queue = queue.then(async () => {
    bars.set(path, shown);
    try {
      await api('PUT', '/api/file', { path }, file, (f) => shown.show(f, shown.took));
      li.remove();
    } catch (e) {
      li.textContent = `${path}: ${e.message}`;
      li.className = 'failed';
      say(`${path}: ${e.message}`);
    }
    bars.delete(path);
    await refresh();
  });
  return queue;
}

// The upload "buttons" are labels (a file input cannot be styled): Enter
// and Space open their pickers as a button's would.
for (const label of document.querySelectorAll('label.button')) {
  label.onkeydown = (e) => {
    if (e.key !== 'Enter' && e.key !== ' ') return;
    e.preventDefault();
    label.querySelector('input').click();
  };
}

$('pick').onchange = (e) => {
  for (const f of e.target.files) upload(f, join(cwd, f.name));
  e.target.value = '';
};
$('pick-dir').onchange = (e) => {
  for (const f of e.target.files) upload(f, join(cwd, f.webkitRelativePath || f.name));
  e.target.value = '';
};

function walkEntry(entry, dir) {
  if (entry.isFile) {
    entry.file((f) => upload(f, join(dir, f.name)));
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    const next = () =>
      reader.readEntries((list) => {
        for (const child of list) walkEntry(child, join(dir, entry.name));
        if (list.length) next();
      });
    next();
  }
}

const panel = $('files');
panel.addEventListener('dragover', (e) => {
  e.preventDefault();
  panel.classList.add('drop');
});
panel.addEventListener('dragleave', () => panel.classList.remove('drop'));
panel.addEventListener('drop', (e) => {
  e.preventDefault();
  panel.classList.remove('drop');
  for (const item of e.dataTransfer.items) {
    if (item.kind !== 'file') continue;
    // Folders come as entries; a browser without them (or a file made by a
    // page) still gives the file itself.
    const entry = item.webkitGetAsEntry && item.webkitGetAsEntry();
    const file = entry ? null : item.getAsFile();
    if (entry) walkEntry(entry, cwd);
    else if (file) upload(file, join(cwd, file.name));
  }
});

$('mkdir').onclick = async () => {
  const name = prompt('New folder in ' + cwd);
  if (!name) return;
  try {
    await api('POST', '/api/mkdir', { path: join(cwd, name) });
  } catch (e) {
    say(e.message);
  }
  refresh();
};
$('up').onclick = () => {
  cwd = cwd.slice(0, cwd.lastIndexOf('/')) || '/';
  refresh();
};
$('refresh').onclick = () => refresh(true);
refresh();
// A mount's tree costs nothing to read again; a board's costs a program.
if (document.body.dataset.live === 'true') {
  setInterval(() => document.visibilityState === 'visible' && refresh(), 3000);
}
