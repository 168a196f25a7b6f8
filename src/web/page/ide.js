// The editor beside the terminal and the files (CodeMirror 6, bundled by
// build.rs as window.CM). A save goes through the page's server, which
// writes through the mount (atomic, verified) only if the board's file is
// still the version this tab opened; else both are kept (a conflict). Text
// not yet saved is kept in localStorage, per board, until it is.
'use strict';

const { EditorView, EditorState, basicSetup, python, keymap, indentWithTab, theme, indentUnit } = window.CM;

// Larger files open as a download: the board holds a few hundred KB, and
// an editor's undo history of a megabyte helps nobody.
const EDIT_LIMIT = 512 * 1024;
const tabs = [];
let current = null;
let board = null;
const view = new EditorView({ parent: $('editor') });

const draftKey = (path) => `webrepl-mount-draft:${board}:${path}`;
const tabsKey = () => `webrepl-mount-tabs:${board}`;

// The file's own indent (its least, in spaces; or tabs), else Python's 4
// spaces (CodeMirror's default of 2 is not Python's).
function indentOf(doc) {
  let least = 0;
  for (const line of doc.split('\n')) {
    if (/^\t+\S/.test(line)) return '\t';
    const m = /^( +)\S/.exec(line);
    if (m && (!least || m[1].length < least)) least = m[1].length;
  }
  return least >= 2 && least <= 8 ? ' '.repeat(least) : '    ';
}

function extensions(tab) {
  const ext = [
    basicSetup,
    theme,
    indentUnit.of(indentOf(tab.doc || '')),
    keymap.of([
      { key: 'Mod-s', preventDefault: true, run: () => (save(tab), true) },
      indentWithTab,
    ]),
    EditorView.updateListener.of((u) => {
      if (!u.docChanged) return;
      tab.state = u.state;
      edited(tab);
    }),
  ];
  if (/\.py$/i.test(tab.path)) ext.push(python());
  if (tab.readOnly) ext.push(EditorState.readOnly.of(true), EditorView.editable.of(false));
  return ext;
}

function text(tab) {
  return tab.state.doc.toString();
}

function modified(tab) {
  return !tab.readOnly && text(tab) !== tab.saved;
}

let draftTimer = null;
function edited(tab) {
  if (tab.status !== 'saving' && tab.status !== 'conflict') tab.status = modified(tab) ? 'modified' : 'saved';
  render();
  clearTimeout(draftTimer);
  draftTimer = setTimeout(() => keepDraft(tab), 300);
}

function keepDraft(tab) {
  if (!board || tab.readOnly) return;
  try {
    if (modified(tab)) localStorage.setItem(draftKey(tab.path), JSON.stringify({ text: text(tab), base: tab.base }));
    else localStorage.removeItem(draftKey(tab.path));
  } catch (e) {
    note(`the browser keeps no draft of ${tab.path}: ${e.message}`);
  }
}

function keepTabs() {
  if (board) localStorage.setItem(tabsKey(), JSON.stringify(tabs.filter((t) => !t.readOnly).map((t) => t.path)));
}

function note(words, buttons, info) {
  const n = $('note');
  n.replaceChildren();
  n.hidden = !words;
  n.className = info ? 'info' : '';
  if (!words) return;
  n.append(words);
  for (const [label, act] of buttons || []) {
    const b = document.createElement('button');
    b.textContent = label;
    b.onclick = act;
    n.append(b);
  }
}

const STATE_WORDS = { modified: '●', saving: 'saving…', saved: 'saved', failed: 'failed', conflict: 'conflict' };

function render() {
  const bar = $('tabs');
  bar.replaceChildren();
  for (const t of tabs) {
    const b = document.createElement('button');
    b.className = 'tab';
    b.setAttribute('role', 'tab');
    b.setAttribute('aria-selected', String(t === current));
    b.dataset.path = t.path;
    b.dataset.state = t.status || '';
    b.title = t.path + (t.message ? '\n' + t.message : '');
    const name = document.createElement('span');
    name.textContent = t.label;
    const state = document.createElement('span');
    state.className = 'state';
    state.textContent = STATE_WORDS[t.status] || '';
    const close = document.createElement('span');
    close.className = 'close';
    close.textContent = '×';
    close.title = 'Close (Alt+W)';
    close.onclick = (ev) => {
      ev.stopPropagation();
      closeTab(t);
    };
    b.append(name, state, close);
    b.onclick = () => activate(t);
    bar.append(b);
  }
  document.body.toggleAttribute('data-editing', tabs.length > 0);
  if (current && current.status === 'conflict') {
    note(current.message, [
      ["Open the board's version", () => openBoardVersion(current)],
      ['Save mine over it', () => save(current, current.now)],
    ]);
  } else if (current && current.unsaved && current.status === 'modified') {
    note(current.message, current.running ? [['■ Stop', stop]] : []);
  } else if (current && current.status === 'failed') {
    note(`${current.path} was not saved: ${current.message}`, [['Try again', () => save(current)]]);
  } else if (current && current.readOnly) {
    note(current.message || `${current.path}: read only`, [], true);
  } else {
    note('');
  }
}

function activate(tab) {
  current = tab;
  view.setState(tab.state);
  render();
  view.focus();
}

function closeTab(tab) {
  if (modified(tab) && !confirm(`${tab.path} has changes not saved on the board. Close it and drop them?`)) return;
  if (!tab.readOnly && board) localStorage.removeItem(draftKey(tab.path));
  const i = tabs.indexOf(tab);
  tabs.splice(i, 1);
  keepTabs();
  if (current === tab) {
    current = null;
    const next = tabs[Math.min(i, tabs.length - 1)];
    if (next) activate(next);
  }
  render();
  if (!current) term.focus();
}

function addTab(tab) {
  tab.state = EditorState.create({ doc: tab.doc, extensions: extensions(tab) });
  delete tab.doc;
  tabs.push(tab);
  keepTabs();
  activate(tab);
  return tab;
}

// The board's file and its version (the server's hash of it).
async function fetchFile(path) {
  const r = await api('GET', '/api/file', { path });
  return { bytes: new Uint8Array(await r.arrayBuffer()), version: r.headers.get('X-Webrepl-Version') };
}

function decode(bytes) {
  if (bytes.includes(0)) return null;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (e) {
    return null;
  }
}

async function openFile(path) {
  const open = tabs.find((t) => t.path === path && !t.readOnly);
  if (open) return activate(open);
  const known = lastTree.find((e) => e.path === path);
  const label = path.slice(path.lastIndexOf('/') + 1);
  if (known && known.size > EDIT_LIMIT) {
    say(`${path} is ${human(known.size)}, too large to edit here: it is downloaded instead.`);
    return act('download', path);
  }
  const { bytes, version } = await fetchFile(path);
  const body = decode(bytes);
  if (body === null) {
    say(`${path} is not text (binary): it is downloaded instead.`);
    return act('download', path);
  }
  let doc = body;
  let status = 'saved';
  let base = version;
  const draft = board && JSON.parse(localStorage.getItem(draftKey(path)) || 'null');
  if (draft && draft.text !== body) {
    // The draft keeps the version it was made from: saving it over a board
    // file changed since is a conflict, not a silent overwrite.
    doc = draft.text;
    base = draft.base;
    status = 'modified';
  }
  const tab = addTab({ path, label, doc, saved: base === version ? body : null, base, status });
  if (status === 'modified') tab.message = 'a draft kept by this browser, not saved on the board yet';
  window.editorOpenedAt = performance.now();
}

async function openBoardVersion(tab) {
  const { bytes } = await fetchFile(tab.path);
  const doc = decode(bytes) ?? '(binary)';
  const label = tab.label + ' (board)';
  const old = tabs.find((t) => t.readOnly && t.path === tab.path);
  if (old) tabs.splice(tabs.indexOf(old), 1);
  addTab({
    path: tab.path,
    label,
    doc,
    readOnly: true,
    status: '',
    message: `${tab.path} as the board has it now (read only). Your version is in the tab ${tab.label} and on the board as ${tab.kept}.`,
  });
}

// Ctrl-S: in the background; the tab says saving, saved, failed or conflict.
async function save(tab, overBase) {
  if (!tab || tab.readOnly || tab.status === 'saving') return;
  const body = text(tab);
  const base = overBase || tab.base || 'none';
  tab.status = 'saving';
  render();
  const url = '/api/file?' + new URLSearchParams({ path: tab.path, base });
  let r;
  try {
    r = await fetch(url, { method: 'PUT', body, headers: { 'X-Webrepl-Token': token } });
  } catch (e) {
    r = null;
  }
  if (r && r.ok) {
    tab.base = r.headers.get('X-Webrepl-Version');
    tab.unsaved = tab.running = false;
    tab.saved = body;
    tab.message = '';
    tab.status = modified(tab) ? 'modified' : 'saved';
    keepDraft(tab);
  } else {
    const answer = r ? await r.json().catch(() => ({})) : {};
    if (r && (answer.running || answer.offline)) {
      // Not a failure of the text: it stays modified, to be saved once the
      // program is stopped or the board is back.
      tab.status = modified(tab) ? 'modified' : 'saved';
      tab.unsaved = true;
      tab.running = !!answer.running;
    } else if (r && r.status === 409 && answer.conflict) {
      tab.status = 'conflict';
      tab.now = answer.now;
      tab.kept = answer.conflict;
    } else {
      tab.status = 'failed';
    }
    tab.message = answer.error || (r ? `HTTP ${r.status}` : 'the page lost its server (is webrepl-mount still running?)');
    keepDraft(tab);
  }
  render();
  refresh();
}

async function newFile() {
  const name = prompt('New file in ' + cwd, 'main.py');
  if (!name) return;
  const path = name.startsWith('/') ? name : join(cwd, name);
  const r = await fetch('/api/file?' + new URLSearchParams({ path, base: 'none' }), {
    method: 'PUT',
    body: '',
    headers: { 'X-Webrepl-Token': token },
  });
  if (r.status === 409) return say(`${path} exists already`);
  if (!r.ok) return say(errorText(await r.text(), r.status));
  await refresh();
  await openFile(path);
}

// F5: the editor's text as it is now, saved or not; output in the terminal.
async function run() {
  if (!current) return say('Open a file to run it (or type at the REPL).');
  // A saved file runs from the board; a changed one from a scratch copy.
  await api('POST', '/api/run', { path: current.path }, modified(current) ? text(current) : undefined);
  term.focus();
}

function stop() {
  if (ws && ws.readyState === 1) ws.send(encoder.encode('\x03'));
  term.focus();
}

async function reset() {
  if (!confirm('Soft reset the board? Its program restarts (main.py runs).')) return;
  await api('POST', '/api/reset');
  setTimeout(refresh, 2000);
}

const guarded = (f) => () => f().catch((e) => say(e.message));
$('new-file').onclick = guarded(newFile);
$('run').onclick = guarded(run);
$('stop').onclick = stop;
$('reset').onclick = guarded(reset);

// The keyboard's way between the panes: Ctrl+` goes between the editor
// and the terminal (Tab is the REPL's completion and the editor's indent,
// so it cannot), Ctrl+Shift+E to the files.
function otherPane() {
  const inEditor = $('editor').contains(document.activeElement);
  const inTerminal = $('terminal').contains(document.activeElement);
  if (current && !inEditor) view.focus();
  else if (inTerminal) focusFiles();
  else term.focus();
}

function focusFiles() {
  const name = document.querySelector('#tree li .name');
  (name || $('up')).focus();
}

// Capturing: the terminal's and the editor's own key handlers would take
// these keys first (xterm sends F5 and Ctrl+` to the board) and stop them.
const handled = (e) => {
  e.preventDefault();
  e.stopPropagation();
};
document.addEventListener('keydown', (e) => {
  if (e.ctrlKey && !e.altKey && (e.key === '`' || e.code === 'Backquote')) {
    handled(e);
    otherPane();
  } else if (e.ctrlKey && e.shiftKey && (e.key === 'E' || e.key === 'e')) {
    handled(e);
    focusFiles();
  } else if (e.key === 'F5' && e.ctrlKey && e.shiftKey) {
    handled(e);
    guarded(reset)();
  } else if (e.key === 'F5' && e.shiftKey) {
    handled(e);
    stop();
  } else if (e.key === 'F5') {
    handled(e);
    guarded(run)();
  } else if ((e.ctrlKey || e.metaKey) && e.key === 's') {
    // Outside the editor too: the browser's own "save page" helps nobody.
    handled(e);
    save(current);
  } else if (e.altKey && e.key === 'n') {
    handled(e);
    guarded(newFile)();
  } else if (e.altKey && e.key === 'w' && current) {
    handled(e);
    closeTab(current);
  }
}, true);

window.addEventListener('beforeunload', (e) => {
  // The drafts are kept either way; the browser asks only if a save is
  // still on its way or text is not saved.
  for (const t of tabs) keepDraft(t);
  if (tabs.some((t) => modified(t) || t.status === 'saving')) e.preventDefault();
});

// After a reload: the files that were open, with their drafts.
boardKnown.then(async (name) => {
  board = name;
  let paths = [];
  try {
    paths = JSON.parse(localStorage.getItem(tabsKey()) || '[]');
  } catch (e) {
    paths = [];
  }
  for (const p of paths) await openFile(p).catch((e) => say(`${p}: ${e.message}`));
});

editorLoaded();

// The files panel renamed `from` (a file or a folder) to `to`: its open
// tabs follow, drafts too (else a save went to the old name, where the
// board had nothing: a false conflict).
function moved(from, to) {
  for (const t of tabs) {
    if (t.path !== from && !t.path.startsWith(from + '/')) continue;
    const path = to + t.path.slice(from.length);
    if (!t.readOnly && board) {
      const draft = localStorage.getItem(draftKey(t.path));
      localStorage.removeItem(draftKey(t.path));
      if (draft) localStorage.setItem(draftKey(path), draft);
    }
    t.path = path;
    t.label = path.slice(path.lastIndexOf('/') + 1);
  }
  keepTabs();
  render();
}

// The files panel deleted `path`: its open tabs keep their text, as not
// on the board any more (Ctrl-S writes it again, as a new file).
function removed(path) {
  for (const t of tabs) {
    if (t.readOnly || (t.path !== path && !t.path.startsWith(path + '/'))) continue;
    t.base = 'none';
    t.saved = null;
    t.status = 'modified';
    t.unsaved = true;
    t.running = false;
    t.message = `${t.path} was deleted from the board; Ctrl-S writes this text there again`;
    keepDraft(t);
  }
  render();
}

// For the tests and scripts/bench-page.sh.
window.webreplMount.editor = {
  moved,
  removed,
  view,
  tabs: () => tabs.map((t) => ({ path: t.path, status: t.status, readOnly: !!t.readOnly, text: text(t), message: t.message || '' })),
};
