// The upload page: sends each chosen file to POST /web/messages (the person's session and
// the page's CSRF token authenticate it) and shows its verdict: the signed receipt, with both
// parts to download, or the refusal with every violation.
//
// Everything shown is built with textContent: nothing the server or a file says becomes
// markup.

import { SealError, fetchRecipient, loadSigner, seal } from './seal.js';

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const receiptSha256 = document.querySelector('meta[name="receipt-certificate-sha256"]').content;
const form = document.getElementById('upload-form');
const input = document.getElementById('files');
const checkOnly = document.getElementById('check-only');
const results = document.getElementById('results');
const empty = document.getElementById('results-empty');
const dropZone = document.getElementById('drop-zone');
const keyFile = document.getElementById('key-file');
const certFile = document.getElementById('cert-file');
const keyPassword = document.getElementById('key-password');

const AGE_BINARY = 'age-encryption.org/v1\n';
const AGE_ARMOR = '-----BEGIN AGE ENCRYPTED FILE-----';

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

async function isSealed(file) {
  const head = new Uint8Array(await file.slice(0, 40).arrayBuffer());
  const text = String.fromCharCode(...head);
  return text.startsWith(AGE_BINARY) || text.startsWith(AGE_ARMOR);
}

// XMLHttpRequest rather than fetch: it reports upload progress, and sends a File from disk
// without reading it into memory first.
function post(blob, check, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/web/messages' + (check ? '?check=true' : ''));
    xhr.setRequestHeader('X-CSRF-Token', csrf);
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : blob.size);
    xhr.onload = () => resolve({
      status: xhr.status,
      text: xhr.responseText,
      signature: xhr.getResponseHeader('gateway-receipt-signature'),
    });
    xhr.onerror = () => reject(new Error('the connection to the gateway failed'));
    xhr.send(blob);
  });
}

// Whether this browser can send a ReadableStream as a request body (Chromium over HTTP/2):
// the feature test web.dev describes.
const streamsUploads = (() => {
  let duplexAccessed = false;
  const hasContentType = new Request('https://gateway.invalid/', {
    body: new ReadableStream(),
    method: 'POST',
    get duplex() {
      duplexAccessed = true;
      return 'half';
    },
  }).headers.has('Content-Type');
  return duplexAccessed && !hasContentType;
})();

// Sends a stream of sealed bytes: as a streamed request where the browser can, otherwise as
// a Blob built a few MiB at a time (the browser keeps Blob data out of the page's memory).
async function sendStream(stream, check) {
  const url = '/web/messages' + (check ? '?check=true' : '');
  const headers = { 'X-CSRF-Token': csrf, 'Content-Type': 'application/octet-stream' };
  if (streamsUploads) {
    try {
      const res = await fetch(url, { method: 'POST', body: stream, duplex: 'half', headers, credentials: 'same-origin' });
      return { status: res.status, text: await res.text(), signature: res.headers.get('gateway-receipt-signature') };
    } catch (e) {
      throw new Error(`the connection to the gateway failed (${e.message})`);
    }
  }
  let blob = new Blob([]);
  let parts = [];
  let held = 0;
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    held += value.length;
    if (held >= 4 << 20) {
      blob = new Blob([blob, ...parts]);
      parts = [];
      held = 0;
    }
  }
  blob = new Blob([blob, ...parts]);
  return post(blob, check, () => {});
}

// The lines around each violation, read from the file itself (a plain XML file the page
// sealed): up to two before and after, 300 characters each, for the first 50 violations.
async function linesAround(file, violations) {
  const wanted = new Set();
  for (const v of violations.slice(0, 50)) {
    if (!v.line) continue;
    for (let l = Math.max(1, v.line - 2); l <= v.line + 2; l++) wanted.add(l);
  }
  const found = new Map();
  if (!wanted.size) return found;
  const last = Math.max(...wanted);
  const reader = file.stream().pipeThrough(new TextDecoderStream()).getReader();
  let line = 1;
  let current = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const parts = value.split('\n');
    for (let i = 0; i < parts.length; i++) {
      if (wanted.has(line) && current.length < 300) current += parts[i].slice(0, 300 - current.length);
      if (i < parts.length - 1) {
        if (wanted.has(line)) found.set(line, current.replace(/\r$/, ''));
        current = '';
        line++;
      }
    }
    if (line > last) {
      await reader.cancel();
      return found;
    }
  }
  if (wanted.has(line)) found.set(line, current);
  return found;
}

function download(name, bytes, type) {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  return el('a', { href: url, download: name, class: 'download' }, `Download ${name}`);
}

function fromBase64(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function facts(pairs) {
  const dl = el('dl', { class: 'facts' });
  for (const [k, v] of pairs) {
    if (v === undefined || v === null) continue;
    dl.append(el('dt', {}, k), el('dd', {}, String(v)));
  }
  return dl;
}

function showReceipt(item, res, name) {
  const receipt = JSON.parse(res.text);
  const again = res.status === 200;
  item.status.textContent = again
    ? 'Sent before: the hub already has it (this is the original receipt)'
    : 'Sent: the hub has it';
  item.node.classList.add('ok');
  item.body.append(facts([
    ['Message id', receipt.gateway_message_id],
    ['Your message id', receipt.agency_message_id],
    ['Schema', receipt.schema_id],
    ['SHA-256', receipt.sha256],
    ['Forwarded at', receipt.forwarded_at],
  ]));
  const base = name.replace(/\.[^.]*$/, '') || 'message';
  const links = el('p', { class: 'downloads' },
    download(`${base}.receipt.json`, res.text, 'application/json'));
  if (res.signature) {
    links.append(' ', download(`${base}.receipt.p7s`, fromBase64(res.signature), 'application/pkcs7-signature'));
  }
  item.body.append(links);
}

function showChecked(item, res) {
  const verdict = JSON.parse(res.text);
  item.status.textContent = 'Checked: it passes every check. Nothing was sent to the hub.';
  item.node.classList.add('ok');
  item.body.append(facts([
    ['Your message id', verdict.agency_message_id],
    ['Schema', verdict.schema_id],
    ['SHA-256', verdict.sha256],
  ]));
}

// The lines of the document around `line`, the line itself marked.
function excerpt(context, line) {
  const pre = el('pre', { class: 'excerpt', tabindex: '0', 'aria-label': `Lines around line ${line}` });
  for (let l = Math.max(1, line - 2); l <= line + 2; l++) {
    if (!context.has(l)) continue;
    const row = el('span', { class: l === line ? 'hit' : '' }, `${String(l).padStart(6)}  ${context.get(l)}`);
    pre.append(row, '\n');
  }
  return pre;
}

function showProblem(item, res, context) {
  let problem;
  try {
    problem = JSON.parse(res.text);
  } catch {
    problem = { title: `error ${res.status}`, detail: res.text.slice(0, 500) };
  }
  item.status.textContent = `Refused: ${problem.title || problem.code}`;
  item.node.classList.add('refused');
  item.body.append(el('p', {}, problem.detail || ''));
  if (problem.action) item.body.append(el('p', { class: 'action' }, el('strong', {}, 'What to do: '), problem.action));
  const violations = problem.violations || [];
  if (violations.length) {
    const table = el('table', { class: 'violations' },
      el('caption', {}, `${violations.length}${problem.truncated ? '+' : ''} problem(s) in the document`),
      el('thead', {}, el('tr', {},
        el('th', { scope: 'col' }, 'Line'), el('th', { scope: 'col' }, 'Column'),
        el('th', { scope: 'col' }, 'Where'), el('th', { scope: 'col' }, 'Problem'))));
    const tbody = el('tbody');
    for (const v of violations) {
      const problemCell = el('td', {}, v.message || '');
      // The page's own reading of a plain file, or the lines the gateway read back from a
      // file that was sealed before it was chosen.
      const lines = context || (v.excerpt && new Map(v.excerpt.map((e) => [e.line, e.text])));
      if (lines && v.line) problemCell.append(excerpt(lines, v.line));
      tbody.append(el('tr', {},
        el('td', {}, String(v.line ?? '')), el('td', {}, String(v.column ?? '')),
        el('td', {}, el('code', {}, v.path || '')), problemCell));
    }
    table.append(tbody);
    item.body.append(table);
  }
  if (problem.gateway_message_id) item.body.append(facts([['Message id', problem.gateway_message_id]]));
}

function newItem(file) {
  const status = el('p', { class: 'status' }, 'Waiting');
  const progress = el('progress', { max: '100', value: '0', 'aria-label': `Progress of ${file.name}` });
  const body = el('div');
  const node = el('li', { class: 'result' }, el('h3', {}, file.name), status, progress, body);
  results.append(node);
  empty.hidden = true;
  return { node, status, progress, body };
}

// What every plain file of one submission shares: the signer and the recipient, loaded once.
function sealing() {
  let ready = null;
  return () => {
    ready ??= (async () => {
      const signer = await loadSigner({ keyFile: keyFile.files[0], certFile: certFile.files[0], password: keyPassword.value });
      const recipient = await fetchRecipient(receiptSha256);
      return { signer, recipient };
    })();
    return ready;
  };
}

async function sealAndSend(item, file, check, tools) {
  item.status.textContent = 'Sealing in this page…';
  const { signer, recipient } = await tools();
  // The gateway may answer before the whole stream has been read (a refusal): what it said
  // stays on the page, whatever the stream reports afterwards.
  let answered = false;
  const sealed = await seal(file, signer, recipient, (phase, done) => {
    if (answered) return;
    const half = file.size ? done / file.size / 2 : 0.5;
    item.progress.value = Math.round((phase === 'digest' ? half : 0.5 + half) * 100);
    if (phase === 'seal') item.status.textContent = check ? 'Sealing and checking…' : 'Sealing and sending…';
  });
  try {
    return await sendStream(sealed, check);
  } finally {
    answered = true;
  }
}

async function handle(file, check, tools) {
  const item = newItem(file);
  let plain = false;
  try {
    plain = !(await isSealed(file));
    let res;
    if (plain) {
      res = await sealAndSend(item, file, check, tools);
    } else {
      item.status.textContent = check ? 'Checking…' : 'Sending…';
      res = await post(file, check, (done, total) => {
        item.progress.value = total ? Math.round((done / total) * 100) : 0;
      });
    }
    if (res.status === 201 || (res.status === 200 && !check)) showReceipt(item, res, file.name);
    else if (res.status === 200) showChecked(item, res);
    else {
      let context = null;
      if (plain) {
        item.status.textContent = 'Refused: finding the lines of each problem in the file…';
        try {
          context = await linesAround(file, JSON.parse(res.text).violations || []);
        } catch {
          context = null;
        }
      }
      showProblem(item, res, context);
    }
    // Last: the tests (and people) take a result without a progress bar as final.
    item.progress.remove();
  } catch (e) {
    item.progress.remove();
    const why = e instanceof SealError ? e.message : `${e.message}. Nothing was kept; try again`;
    item.status.textContent = `Not sent: ${why}`;
    item.node.classList.add('refused');
  }
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const files = [...input.files];
  if (!files.length) {
    input.focus();
    return;
  }
  const button = document.getElementById('send');
  button.disabled = true;
  try {
    const tools = sealing();
    for (const file of files) await handle(file, checkOnly.checked, tools);
  } finally {
    button.disabled = false;
    input.value = '';
  }
});

dropZone.addEventListener('dragover', (e) => {
  e.preventDefault();
  dropZone.classList.add('over');
});
dropZone.addEventListener('dragleave', () => dropZone.classList.remove('over'));
dropZone.addEventListener('drop', (e) => {
  e.preventDefault();
  dropZone.classList.remove('over');
  input.files = e.dataTransfer.files;
});
