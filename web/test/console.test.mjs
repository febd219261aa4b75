// The console in real headless Chromium: an operator signs in with a TOTP code, sees a
// message uploaded meanwhile appear without reloading (server-sent events) within 2 s, opens
// it, the quarantine, and asks an agency for data; every page passes an axe scan and is
// screenshotted.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawnSync } from 'node:child_process';
import { GATEWAY, Home, browser, newPage, sample, screenshot, seriousA11yViolations, signIn, totp, upload } from './support.mjs';

describe('console', () => {
  let home;
  let url;
  let b;
  let op;
  let token;

  before(async () => {
    home = new Home();
    op = home.user('op', ['--role', 'operator']);
    token = JSON.parse(home.run(['agency', 'token', 'issue', 'police', '--json']).stdout).token;
    url = await home.serve();
    b = await browser();
  });

  after(async () => {
    await b?.close();
    home?.stop();
  });

  test('an operator needs the code, then sees new messages live and in detail', async () => {
    const page = await newPage(b);
    await signIn(page, url, 'op', op.password);
    assert.equal(new URL(page.url()).pathname, '/sign-in', 'no code, no console');
    assert.match(await page.locator('.error-summary').textContent(), /name, password or code is wrong/);
    await signIn(page, url, 'op', op.password, totp(op.totp_secret));
    assert.equal(new URL(page.url()).pathname, '/console');

    const bad = home.seal('police', sample('police', 'invalid-unknown-role.xml'), 'bad.sealed');
    assert.equal(upload(home, token, bad).status, 422);
    await page.goto(`${url}/console/messages`);
    assert.deepEqual(await seriousA11yViolations(page), []);
    // Give the live stream its first look, then send a message and time its arrival.
    await page.waitForTimeout(1500);
    const good = home.seal('police', sample('police', 'valid-weekly-batch.xml'), 'good.sealed');
    const sent = upload(home, token, good);
    assert.equal(sent.status, 201);
    const id = sent.body.gateway_message_id;
    const started = Date.now();
    await page.locator(`tr[data-id="${id}"]`).waitFor({ timeout: 2000 });
    console.log(`console: message shown ${Date.now() - started} ms after its 201`);
    await screenshot(page, 'console-messages');

    await page.locator(`tr[data-id="${id}"] a`).click();
    await page.waitForURL(`**/console/messages/${id}`);
    assert.match(await page.locator('main').textContent(), /Receipt/);
    assert.deepEqual(await seriousA11yViolations(page), []);
    await screenshot(page, 'console-message');

    await page.goto(`${url}/console`);
    assert.deepEqual(await seriousA11yViolations(page), []);
    assert.equal(await page.locator('svg.chart').count() >= 1, true);
    await screenshot(page, 'console-overview');

    await page.goto(`${url}/console/quarantine`);
    assert.match(await page.locator('main').textContent(), /schema_invalid/);
    assert.deepEqual(await seriousA11yViolations(page), []);
    await screenshot(page, 'console-quarantine');

    // The hub asks an agency for data from the console.
    await page.goto(`${url}/console/requests`);
    assert.deepEqual(await seriousA11yViolations(page), []);
    await page.selectOption('#agency', 'police');
    await page.fill('#query', 'incidents');
    await page.fill('#params', 'since=2026-12-01');
    await page.click('form[action="/console/requests"] button[type=submit]');
    assert.match(await page.locator('.notice').textContent(), /was asked of police/);
    assert.match(await page.locator('table.data').textContent(), /since=2026-12-01/);
    assert.deepEqual(await seriousA11yViolations(page), []);
    await screenshot(page, 'console-requests');
    await page.context().close();
  });

  test('an admin page passes an axe scan; issuing a token shows it once', async () => {
    const root = home.user('root', ['--role', 'admin']);
    const page = await newPage(b);
    // A fresh step: the operator's code of this step may have been used by the test above.
    await signIn(page, url, 'root', root.password, totp(root.totp_secret));
    await page.goto(`${url}/console/admin`);
    assert.deepEqual(await seriousA11yViolations(page), []);
    await page.locator('#token-agency').selectOption('police');
    await page.getByRole('button', { name: 'Issue a token' }).click();
    await page.waitForLoadState('load');
    assert.match(await page.locator('.notice.secret').textContent(), /gw_[0-9a-f]+_[0-9a-f]+/);
    await screenshot(page, 'console-admin');
    await page.context().close();
  });

  test('a form or a script on another site cannot act or read with the session', async () => {
    const root = home.user('root2', ['--role', 'admin']);
    const page = await newPage(b);
    await signIn(page, url, 'root2', root.password, totp(root.totp_secret));
    assert.equal(new URL(page.url()).pathname, '/console');
    // Another site (another origin: 127.0.0.1 is not localhost) with a self-submitting form.
    const evil = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      if (req.url === '/blank') return res.end('<p>another site</p>');
      res.end(`<form id=f method=post action="${url}/console/admin/token-issue">
        <input name=agency value=police></form>
        <script>document.getElementById('f').submit()</script>`);
    });
    await new Promise((ok) => evil.listen(0, '127.0.0.1', ok));
    const evilUrl = `http://127.0.0.1:${evil.address().port}/`;
    const posted = page.waitForResponse((r) => r.url().includes('/console/admin/token-issue'));
    await page.goto(evilUrl);
    const answer = await posted;
    assert.ok([303, 403].includes(answer.status()), `refused: ${answer.status()}`);
    assert.ok(!home.audit().some((r) => r.action === 'agency token issue' && r.actor === 'root2'), 'no token issued');
    // A script there cannot read the admin API with the person's cookie either.
    await page.goto(evilUrl.replace(/\/$/, '/blank'));
    assert.equal(new URL(page.url()).origin, new URL(evilUrl).origin, 'the script runs on the other site');
    const read = await page.evaluate(async (target) => {
      try {
        const r = await fetch(target, { credentials: 'include' });
        return `read ${r.status}`;
      } catch (e) {
        return 'blocked';
      }
    }, `${url}/v1/admin/messages`);
    assert.equal(read, 'blocked');
    evil.close();
    await page.context().close();
  });

  test('a payload refused for an unknown signer is re-run from the quarantine once its certificate is added', async () => {
    // A signer the hub has not registered yet.
    const key = home.path('newsigner.key');
    const cert = home.path('newsigner.crt');
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', key, '-out', cert, '-days', '30', '-subj', '/CN=Police new signer'], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    const recipient = home.run(['recipient']).stdout.trim();
    const sealed = home.path('unknown-signer.sealed');
    const s = spawnSync(GATEWAY, ['seal', '--key', key, '--cert', cert, '--to', recipient, '-o', sealed,
      sample('police', 'valid-linked-incidents.xml')], { encoding: 'utf8' });
    assert.equal(s.status, 0, s.stderr);
    const refused = upload(home, token, sealed);
    assert.equal(refused.body.code, 'signer_unknown');

    const page = await newPage(b);
    const opsB = home.user('op-rerun', ['--role', 'operator']);
    await signIn(page, url, 'op-rerun', opsB.password, totp(opsB.totp_secret));
    home.run(['agency', 'cert', 'add', 'police', cert]);
    await page.goto(`${url}/console/quarantine`);
    const before = home.queued();
    const entry = page.locator('li.result', { hasText: 'signer_unknown' });
    await entry.getByRole('button', { name: /Re-run through the pipeline/ }).click();
    await page.waitForURL(/\/console\/messages\//);
    assert.match(await page.locator('main').textContent(), /forwarded/);
    assert.equal(home.queued(), before + 1, 'the re-run message is in the queue');
    await page.context().close();
  });

  test('an uploader cannot open the console', async () => {
    const clerk = home.user('clerk', ['--agency', 'police', '--role', 'uploader']);
    const page = await newPage(b);
    await signIn(page, url, 'clerk', clerk.password);
    const res = await page.goto(`${url}/console`);
    assert.equal(res.status(), 403);
    await page.context().close();
  });
});
