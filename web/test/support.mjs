// What the browser tests share: a gateway home with a development key set, `gateway serve`
// on an ephemeral port, accounts, and Chromium (Debian's, driven by playwright-core: nothing
// downloads a browser).

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { createHmac } from 'node:crypto';
import { chromium } from 'playwright-core';

export const ROOT = resolve(new URL('../..', import.meta.url).pathname);
export const GATEWAY = process.env.GATEWAY_BIN || join(ROOT, 'target/debug/gateway');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// Screenshots for review, as the issue asks: target/web-screenshots/<name>-<width>.png.
export const SHOTS = join(ROOT, 'target/web-screenshots');

export function sample(agency, name) {
  return join(ROOT, 'schemas', agency, 'samples', name);
}

export class Home {
  constructor(extra = '') {
    this.dir = mkdtempSync(join(tmpdir(), 'gateway-web-'));
    writeFileSync(
      join(this.dir, 'gateway.toml'),
      `[paths]\nschemas = ${JSON.stringify(join(ROOT, 'schemas'))}\n[http]\nlisten = "127.0.0.1:0"\n[metrics]\nlisten = ""\n${extra}`,
    );
    this.run(['keys', 'init']);
  }

  path(...parts) {
    return join(this.dir, ...parts);
  }

  // Runs `gateway ARGS --config <home>/gateway.toml`; its stdout (fails the test on exit != 0
  // unless `allowFail`).
  run(args, { allowFail = false } = {}) {
    const r = spawnSync(GATEWAY, [...args, '--config', this.path('gateway.toml')], { encoding: 'utf8' });
    if (r.status !== 0 && !allowFail) throw new Error(`gateway ${args.join(' ')}: ${r.stderr}`);
    return r;
  }

  user(name, args) {
    return JSON.parse(this.run(['user', 'add', name, ...args, '--json']).stdout);
  }

  signer(agency) {
    return { key: this.path('keys/dev/agencies', `${agency}.key`), cert: this.path('keys/dev/agencies', `${agency}.crt`) };
  }

  // Seals `xml` as `agency` with the stock-compatible `gateway seal`; the sealed file's path.
  seal(agency, xml, out) {
    const { key, cert } = this.signer(agency);
    const recipient = this.run(['recipient']).stdout.trim();
    const to = this.path(out);
    const r = spawnSync(GATEWAY, ['seal', '--key', key, '--cert', cert, '--to', recipient, '-o', to, xml], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`gateway seal: ${r.stderr}`);
    return to;
  }

  queued() {
    try {
      return readdirSync(this.path('outbox/integration/new')).filter((f) => f.endsWith('.json')).length;
    } catch {
      return 0;
    }
  }

  audit() {
    return readFileSync(this.path('state/audit/audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  }

  // Starts `gateway serve`; resolves once it prints its address.
  serve() {
    const child = spawn(GATEWAY, ['serve', '--config', this.path('gateway.toml')], {
      env: { ...process.env, GATEWAY_LOG: 'warn', NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.server = child;
    return new Promise((ok, fail) => {
      const lines = createInterface({ input: child.stdout });
      lines.once('line', (line) => {
        const port = line.trim().split(':').pop();
        this.url = `https://localhost:${port}`;
        this.gatewayUrl = this.url;
        ok(this.url);
      });
      child.once('exit', (code) => fail(new Error(`gateway serve exited (${code})`)));
    });
  }

  stop() {
    if (this.server) this.server.kill('SIGTERM');
  }
}

export async function browser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// A page in a fresh context (its own cookies) that accepts the development TLS certificate.
export async function newPage(b, viewport = { width: 1280, height: 800 }) {
  const context = await b.newContext({ ignoreHTTPSErrors: true, viewport });
  return context.newPage();
}

export async function signIn(page, url, name, password, code = '') {
  await page.goto(`${url}/sign-in`);
  await page.getByLabel('Account name').fill(name);
  await page.getByLabel('Password', { exact: true }).fill(password);
  if (code) await page.getByLabel('Security code').fill(code);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForLoadState('load');
}

// Screenshots of the page on a desktop and on a phone; and on both, the page must fit the
// screen's width (only a wide table's own region may scroll sideways, never the page).
export async function screenshot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  for (const viewport of [{ width: 1280, height: 800 }, { width: 390, height: 844 }]) {
    await page.setViewportSize(viewport);
    await page.screenshot({ path: join(SHOTS, `${name}-${viewport.width}.png`), fullPage: true });
    const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (over > 0) {
      throw new Error(`${name}: the page is ${over} px wider than a ${viewport.width} px screen`);
    }
  }
  await page.setViewportSize({ width: 1280, height: 800 });
}

// An axe-core scan of the page: the violations of impact serious or critical.
export async function seriousA11yViolations(page) {
  const axe = readFileSync(join(ROOT, 'web/node_modules/axe-core/axe.min.js'), 'utf8');
  // The page's CSP forbids inline scripts; the test injects axe through the driver instead.
  await page.evaluate(axe);
  const result = await page.evaluate(async () => globalThis.axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }));
  return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

// The RFC 6238 code of a base32 TOTP secret at `seconds` (the test's authenticator app).
export function totp(secret, seconds = Date.now() / 1000) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secret.replace(/=+$/, '')) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(seconds / 30)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const at = mac[mac.length - 1] & 0x0f;
  const n = (mac.readUInt32BE(at) & 0x7fffffff) % 1_000_000;
  return String(n).padStart(6, '0');
}

// Uploads a sealed file over the API with a bearer token (curl); status and JSON body.
export function upload(home, token, file) {
  const r = spawnSync('curl', ['-sS', '-k', '-X', 'POST', '-H', `Authorization: Bearer ${token}`,
    '--data-binary', `@${file}`, '-w', '\n%{http_code}', `${home.gatewayUrl}/v1/messages`], { encoding: 'utf8' });
  const lines = r.stdout.trim().split('\n');
  const status = Number(lines.pop());
  return { status, body: JSON.parse(lines.join('\n') || '{}') };
}
