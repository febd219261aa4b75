// A large plain XML file is sealed and sent from the page in bounded page memory: the page
// reads it in pieces twice (digest, then seal) and streams the sealed bytes out, so its
// JavaScript heap (CDP's JSHeapUsedSize, sampled throughout) stays far below the file's size.
//
//   LARGE_MB=1024 node --test test/large.test.mjs     # a bigger file (default 300 MB)

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { Home, browser, newPage, sample, signIn } from './support.mjs';

const MB = Number(process.env.LARGE_MB || 300);
const HEAP_LIMIT = 200 * 1024 * 1024;

let home;
let url;
let b;
let clerk;

before(async () => {
  home = new Home();
  clerk = home.user('clerk', ['--agency', 'police', '--role', 'uploader']);
  url = await home.serve();
  b = await browser();
});

after(async () => {
  await b?.close();
  home?.stop();
});

// A schema-valid police batch of about `mb` MB: the small sample with lines of comment after
// its root's start tag (comments are allowed in element-only content).
function bigSample(path, mb) {
  const xml = readFileSync(sample('police', 'valid-single-incident.xml'), 'utf8');
  const at = xml.indexOf('>', xml.indexOf('<IncidentBatch')) + 1;
  const fd = openSync(path, 'w');
  writeSync(fd, xml.slice(0, at) + '\n');
  // The line breaks are inside the comments: whitespace between comments would add up to one
  // text node, which the gateway bounds (limits.max_text_bytes, 16 MiB) past ~700 MB of these.
  const line = `<!-- ${'padding '.repeat(15)}\n-->`;
  const block = line.repeat(Math.floor((1 << 20) / line.length));
  const blocks = Math.ceil((mb << 20) / block.length);
  for (let i = 0; i < blocks; i++) writeSync(fd, block);
  writeSync(fd, xml.slice(at));
  closeSync(fd);
}

test(`a ${MB} MB plain file is sealed and sent with the page's heap under 200 MB`, { timeout: 600_000 }, async () => {
  const file = home.path('big.xml');
  bigSample(file, MB);
  const page = await newPage(b);
  await signIn(page, url, 'clerk', clerk.password);
  const { key, cert } = home.signer('police');
  await page.getByLabel('Key file (.p12, or PEM)').setInputFiles(key);
  await page.getByLabel(/Certificate file/).setInputFiles(cert);
  await page.getByLabel('Files to send').setInputFiles(file);

  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  let peak = 0;
  let samples = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const { metrics } = await cdp.send('Performance.getMetrics');
      const used = metrics.find((m) => m.name === 'JSHeapUsedSize').value;
      peak = Math.max(peak, used);
      samples++;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const started = Date.now();
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  await page.waitForFunction(() => document.querySelectorAll('#results > li:not(:has(progress))').length >= 1, null, { timeout: 600_000 });
  const seconds = (Date.now() - started) / 1000;
  sampling = false;
  await sampler;
  const status = await page.locator('#results .status').first().textContent();
  console.log(`large upload: ${MB} MB in ${seconds.toFixed(1)} s; peak JS heap ${(peak / 1048576).toFixed(1)} MB over ${samples} samples; ${status}`);
  assert.equal(status, 'Sent: the hub has it');
  assert.ok(samples >= 5, 'the heap was sampled during the upload');
  assert.ok(peak < HEAP_LIMIT, `peak JS heap ${peak} bytes`);
  assert.equal(home.queued(), 1);
  await page.context().close();
});
