// The console in real headless Chromium: an operator signs in with a TOTP code, sees a
// message uploaded meanwhile appear without reloading (server-sent events) within 2 s, opens
// it, and the quarantine; every page passes an axe scan and is screenshotted.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Home, browser, newPage, sample, screenshot, seriousA11yViolations, signIn, totp, upload } from './support.mjs';

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
