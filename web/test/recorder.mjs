// A recording reverse proxy between the browser and the gateway: the browser talks only to
// it (HTTP/2 over TLS, as to the gateway itself), and it sees every request whole, headers
// and body, as it passes. Bodies are not kept: they are scanned on the fly for the byte
// strings a test must never see leave the page (the signing key), so a 300 MB upload costs
// no memory here.

import http2 from 'node:http2';
import https from 'node:https';
import { readFileSync } from 'node:fs';

// Headers that belong to one hop (RFC 9110 §7.6.1) or to HTTP/2's framing.
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'http2-settings']);

function forwardable(headers) {
  const out = {};
  for (const [k, v] of Object.entries(headers)) {
    if (!k.startsWith(':') && !HOP.has(k)) out[k] = v;
  }
  return out;
}

// Whether `needle` occurs in the stream of chunks, keeping only an overlap between chunks.
class Scanner {
  constructor(needles) {
    this.needles = needles.filter((n) => n.length > 0);
    this.keep = Math.max(0, ...this.needles.map((n) => n.length)) - 1;
    this.tail = Buffer.alloc(0);
    this.found = false;
  }

  push(chunk) {
    const window = Buffer.concat([this.tail, chunk]);
    if (this.needles.some((n) => window.indexOf(n) !== -1)) this.found = true;
    this.tail = window.subarray(Math.max(0, window.length - this.keep));
  }
}

export class Recorder {
  // Proxies to `upstream` (https://host:port), scanning for `needles` (Buffers).
  constructor(upstream, { key, cert }, needles) {
    this.upstream = new URL(upstream);
    this.needles = needles;
    this.requests = [];
    this.server = http2.createSecureServer({ key: readFileSync(key), cert: readFileSync(cert), allowHTTP1: true });
    this.server.on('request', (req, res) => this.forward(req, res));
  }

  listen() {
    return new Promise((ok) => {
      this.server.listen(0, '127.0.0.1', () => ok(`https://localhost:${this.server.address().port}`));
    });
  }

  close() {
    this.server.close();
  }

  forward(req, res) {
    const authority = req.headers[':authority'] || req.headers.host;
    const headers = { ...forwardable(req.headers), host: authority };
    const seen = {
      method: req.method,
      path: req.url,
      headers: req.headers,
      bodyBytes: 0,
      head: Buffer.alloc(0),
      keyInHeaders: new Scanner(this.needles),
      keyInBody: new Scanner(this.needles),
    };
    seen.keyInHeaders.push(Buffer.from(JSON.stringify(req.headers)));
    this.requests.push(seen);
    const up = https.request({
      host: this.upstream.hostname,
      port: this.upstream.port,
      method: req.method,
      path: req.url,
      headers,
      rejectUnauthorized: false,
    }, (upRes) => {
      res.writeHead(upRes.statusCode, forwardable(upRes.headers));
      upRes.pipe(res);
    });
    up.on('error', (e) => {
      if (!res.headersSent) res.writeHead(502);
      res.end(String(e));
    });
    req.on('data', (chunk) => {
      if (seen.head.length < 64) seen.head = Buffer.concat([seen.head, chunk]).subarray(0, 64);
      seen.bodyBytes += chunk.length;
      seen.keyInBody.push(chunk);
      up.write(chunk);
    });
    req.on('end', () => up.end());
  }
}

// The bytes of a PEM EC private key that must never leave the page: its private scalar (from
// the DER), and the PEM text itself.
export function keyNeedles(pem) {
  const b64 = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const der = Buffer.from(b64, 'base64');
  const needles = [Buffer.from(b64.slice(0, 48))];
  // ECPrivateKey ::= SEQUENCE { version 1, privateKey OCTET STRING (32 bytes for P-256), ... }
  const at = der.indexOf(Buffer.from([0x02, 0x01, 0x01, 0x04, 0x20]));
  if (at !== -1) needles.push(der.subarray(at + 5, at + 5 + 32));
  return needles;
}
