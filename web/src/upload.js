// The upload page: sends each chosen file to POST /web/messages (the person's session and
// the page's CSRF token authenticate it) and shows its verdict: the signed receipt, with both
// parts to download, or the refusal with every violation.
//
// Everything shown is built with textContent: nothing the server or a file says becomes
// markup.

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const form = document.getElementById('upload-form');
const input = document.getElementById('files');
const checkOnly = document.getElementById('check-only');
const results = document.getElementById('results');
const empty = document.getElementById('results-empty');
const dropZone = document.getElementById('drop-zone');

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

function showProblem(item, res) {
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
      tbody.append(el('tr', {},
        el('td', {}, String(v.line ?? '')), el('td', {}, String(v.column ?? '')),
        el('td', {}, el('code', {}, v.path || '')), el('td', {}, v.message || '')));
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

async function handle(file, check) {
  const item = newItem(file);
  try {
    if (!(await isSealed(file))) {
      item.status.textContent = 'Not sent: this is not a sealed file. Seal it first (gateway seal), then send the .sealed file.';
      item.node.classList.add('refused');
      item.progress.remove();
      return;
    }
    item.status.textContent = check ? 'Checking…' : 'Sending…';
    const res = await post(file, check, (done, total) => {
      item.progress.value = total ? Math.round((done / total) * 100) : 0;
    });
    item.progress.remove();
    if (res.status === 201 || (res.status === 200 && !check)) showReceipt(item, res, file.name);
    else if (res.status === 200) showChecked(item, res);
    else showProblem(item, res);
  } catch (e) {
    item.progress.remove();
    item.status.textContent = `Not sent: ${e.message}. Nothing was kept; try again.`;
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
    for (const file of files) await handle(file, checkOnly.checked);
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
