// The upload page in real headless Chromium against a real `gateway serve`: sign-in, sealing
// plain XML in the page, sealed files, check only, violations, and what goes over the wire.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { Home, browser, newPage, sample, screenshot, seriousA11yViolations, signIn } from './support.mjs';
import { Recorder, keyNeedles } from './recorder.mjs';

describe('upload page', () => {
  let home;
  let url;
  let b;
  let clerk;
  let recorder;

  before(async () => {
    // Every test signs in from 127.0.0.1: the per-address limit (10 a minute) would stop them.
    home = new Home('[web]\nsign_ins_per_minute = 1000\n');
    clerk = home.user('clerk', ['--agency', 'police', '--role', 'uploader']);
    const gateway = await home.serve();
    // The browser talks to the gateway only through the recorder, which sees every request.
    const tls = { key: home.path('keys/tls/server.key'), cert: home.path('keys/tls/server.crt') };
    recorder = new Recorder(gateway, tls, keyNeedles(readFileSync(home.signer('police').key, 'utf8')));
    url = await recorder.listen();
    b = await browser();
  });

  after(async () => {
    await b?.close();
    recorder?.close();
    home?.stop();
  });

  // Signs in and chooses the development police key and certificate; the page.
  async function ready() {
    const page = await newPage(b);
    await signIn(page, url, 'clerk', clerk.password);
    assert.equal(new URL(page.url()).pathname, '/');
    const { key, cert } = home.signer('police');
    await page.getByLabel('Key file (.p12, or PEM)').setInputFiles(key);
    await page.getByLabel(/Certificate file/).setInputFiles(cert);
    return page;
  }

  async function send(page, files, { check = false } = {}) {
    if (check) await page.getByLabel(/Check only/).check();
    await page.getByLabel('Files to send').setInputFiles(files);
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    const results = page.locator('#results > li');
    await assert.doesNotReject(
      page.waitForFunction((n) => document.querySelectorAll('#results > li:not(:has(progress))').length >= n, files.length, { timeout: 60_000 }),
    );
    return results;
  }

  test('sign-in, upload and account pages pass an axe scan and are screenshotted', async () => {
    const page = await newPage(b);
    await page.goto(`${url}/sign-in`);
    assert.deepEqual(await seriousA11yViolations(page), []);
    await screenshot(page, 'sign-in');
    await signIn(page, url, 'clerk', clerk.password);
    assert.deepEqual(await seriousA11yViolations(page), []);
    await screenshot(page, 'upload');
    await page.getByRole('link', { name: 'Your account' }).click();
    await page.waitForURL(`${url}/account`);
    assert.deepEqual(await seriousA11yViolations(page), []);
    await screenshot(page, 'account');
    await page.context().close();
  });

  test('a plain XML file is sealed in the page and its receipt verifies with openssl', async () => {
    const page = await ready();
    const requests = [];
    page.on('request', (r) => requests.push(r));
    const mark = recorder.requests.length;
    const responses = [];
    page.on('response', (r) => responses.push(r));
    const before = home.queued();
    const results = await send(page, [sample('police', 'valid-single-incident.xml')]);
    const item = results.first();
    await assert.doesNotReject(item.getByText('Sent: the hub has it').waitFor());
    assert.equal(home.queued(), before + 1, 'the queue holds it');
    await screenshot(page, 'upload-receipt');

    // The receipt the page got verifies with the gateway's receipt certificate.
    const answer = responses.find((r) => r.url().endsWith('/web/messages') && r.status() === 201);
    assert.ok(answer, 'a 201 from /web/messages');
    const json = home.path('r.json');
    const der = home.path('r.p7s');
    writeFileSync(json, await answer.body());
    writeFileSync(der, Buffer.from(answer.headers()['gateway-receipt-signature'], 'base64'));
    const verify = spawnSync('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', der, '-content', json,
      '-CAfile', home.path('keys/receipt/receipt.crt'), '-purpose', 'any', '-out', '/dev/null'], { encoding: 'utf8' });
    assert.equal(verify.status, 0, verify.stderr);

    // No request carried the key: the recorder saw every request whole, and the key's bytes
    // were in none; the page asked nothing of any other host; the upload was sealed.
    for (const r of requests) assert.ok(r.url().startsWith(url), `only the gateway is asked: ${r.url()}`);
    const seen = recorder.requests.slice(mark);
    const uploads = seen.filter((r) => r.path.startsWith('/web/messages'));
    assert.equal(uploads.length, 1);
    assert.equal(uploads[0].head.subarray(0, 21).toString(), 'age-encryption.org/v1', 'the body is sealed');
    assert.ok(uploads[0].bodyBytes > 1000, 'the recorder saw the whole body');
    for (const r of seen) {
      assert.ok(!r.keyInHeaders.found && !r.keyInBody.found, `key material in ${r.method} ${r.path}`);
      if (r.bodyBytes) assert.ok(r.path.startsWith('/web/messages'), `only uploads have a body: ${r.method} ${r.path}`);
    }
    // The recorder would have noticed: the same key text sent on purpose is caught.
    const control = recorder.requests.length;
    const pem = readFileSync(home.signer('police').key, 'utf8');
    await page.evaluate((body) => fetch('/web/messages?check=true', { method: 'POST', body }), pem);
    assert.ok(recorder.requests[control].keyInBody.found, 'the recorder finds key material when it is sent');
    await page.context().close();
  });

  test('an invalid file shows each violation with its line and the lines around it', async () => {
    const page = await ready();
    const results = await send(page, [sample('police', 'invalid-unknown-role.xml')]);
    const item = results.first();
    await assert.doesNotReject(item.getByText(/^Refused/).waitFor());
    const rows = item.locator('table.violations tbody tr');
    assert.ok((await rows.count()) >= 1);
    const line = Number(await rows.first().locator('td').first().textContent());
    assert.ok(line > 0, 'a line number');
    const excerpt = await rows.first().locator('pre.excerpt .hit').textContent();
    const source = readFileSync(sample('police', 'invalid-unknown-role.xml'), 'utf8').split('\n')[line - 1];
    assert.ok(excerpt.includes(source.trim().slice(0, 40)), `${excerpt} shows line ${line}: ${source}`);
    await screenshot(page, 'upload-violations');
    await page.context().close();
  });

  test('a file sealed by gateway seal is sent as it is; check only sends nothing', async () => {
    const page = await ready();
    const sealed = home.seal('police', sample('police', 'valid-weekly-batch.xml'), 'weekly.sealed');
    const before = home.queued();
    let results = await send(page, [sealed], { check: true });
    await assert.doesNotReject(results.first().getByText(/^Checked: it passes every check/).waitFor());
    assert.equal(home.queued(), before, 'a check sends nothing');
    await page.getByLabel(/Check only/).uncheck();
    results = await send(page, [sealed]);
    await assert.doesNotReject(results.nth(1).getByText('Sent: the hub has it').waitFor());
    assert.equal(home.queued(), before + 1);
    // Refused, a sealed file's violations come with their lines too (read back by the gateway).
    const bad = home.seal('police', sample('police', 'invalid-unknown-role.xml'), 'bad.sealed');
    results = await send(page, [bad]);
    const hit = results.nth(2).locator('pre.excerpt .hit');
    await assert.doesNotReject(hit.waitFor());
    assert.match(await hit.textContent(), /role="bystander"/);
    await page.context().close();
  });

  test('a PKCS#12 key file seals in the page; a wrong password is said as such', async () => {
    const { key, cert } = home.signer('police');
    const p12 = home.path('police.p12');
    const made = spawnSync('openssl', ['pkcs12', '-export', '-inkey', key, '-in', cert, '-out', p12, '-passout', 'pass:correct horse'], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    const page = await newPage(b);
    await signIn(page, url, 'clerk', clerk.password);
    await page.getByLabel('Key file (.p12, or PEM)').setInputFiles(p12);
    await page.getByLabel('Password of the .p12 file').fill('wrong');
    let results = await send(page, [sample('police', 'valid-linked-incidents.xml')]);
    assert.match(await results.first().locator('.status').textContent(), /Not sent: .*check the password/);
    await page.getByLabel('Password of the .p12 file').fill('correct horse');
    results = await send(page, [sample('police', 'valid-linked-incidents.xml')]);
    await assert.doesNotReject(results.nth(1).getByText('Sent: the hub has it').waitFor());
    await page.context().close();
  });

  test('a wrong password is refused, and five in a row lock the account', async () => {
    const locky = home.user('locky', ['--agency', 'police', '--role', 'uploader']);
    const page = await newPage(b);
    for (let i = 0; i < 4; i++) {
      await signIn(page, url, 'locky', 'not the password');
      assert.match(await page.locator('.error-summary').textContent(), /name, password or code is wrong/);
    }
    await signIn(page, url, 'locky', 'not the password');
    assert.match(await page.locator('.error-summary').textContent(), /locked until/);
    await signIn(page, url, 'locky', locky.password);
    assert.equal(new URL(page.url()).pathname, '/sign-in', 'locked even with the right password');
    assert.match(await page.locator('.error-summary').textContent(), /locked until/);
    await page.context().close();
  });

  test('everything works from the keyboard alone', async () => {
    const page = await newPage(b);
    // Listened for from the start: Playwright turns the browser's file-chooser interception
    // on when a listener is added, without waiting, so a listener added just before the key
    // press can miss the chooser that press opens (seen once in CI).
    const choosers = [];
    page.on('filechooser', (c) => choosers.push(c));
    // Tab until the element with `id` has the focus (at most 40 presses).
    async function tabTo(id) {
      for (let i = 0; i < 40; i++) {
        await page.keyboard.press('Tab');
        if (await page.evaluate((want) => document.activeElement?.id === want, id)) return;
      }
      assert.fail(`Tab never reached #${id}`);
    }
    async function chooseWithKeyboard(id, files) {
      await tabTo(id);
      const before = choosers.length;
      await page.keyboard.press('Space');
      for (let i = 0; i < 100 && choosers.length === before; i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(choosers.length > before, `Space on #${id} opened no file chooser`);
      await choosers[choosers.length - 1].setFiles(files);
    }
    await page.goto(`${url}/sign-in`);
    await tabTo('name');
    await page.keyboard.type('clerk');
    await tabTo('password');
    await page.keyboard.type(clerk.password);
    await page.keyboard.press('Enter');
    await page.waitForURL(`${url}/`);
    const { key, cert } = home.signer('police');
    await chooseWithKeyboard('files', [sample('police', 'valid-single-incident.xml')]);
    await chooseWithKeyboard('key-file', key);
    await chooseWithKeyboard('cert-file', cert);
    await tabTo('check-only');
    await page.keyboard.press('Space');
    assert.ok(await page.locator('#check-only').isChecked(), 'Space ticks the box');
    await tabTo('send');
    await page.keyboard.press('Enter');
    await assert.doesNotReject(page.locator('#results .status').first().getByText(/^Checked: it passes every check/).waitFor());
    await page.context().close();
  });

  test('the upload is audited under the person who made it', () => {
    const mine = home.audit().filter((r) => r.actor === 'clerk').map((r) => r.action);
    for (const action of ['sign in', 'forwarded', 'rejected', 'checked']) {
      assert.ok(mine.includes(action), `${action} in ${mine}`);
    }
  });
});
