// Sealing in the page, as `gateway seal` does on the command line: the XML is signed as CMS
// SignedData (content attached, SHA-256, the signer's certificate included) with the key the
// person chose, then age-encrypted to the gateway's current recipient. The key is read from a
// local file into WebCrypto and never leaves the page.
//
// Files of any size stream: a first pass over the file computes the digest the signature
// covers; the second builds the CMS in BER with indefinite lengths (as `openssl cms -stream`
// does: the content is a constructed OCTET STRING of 64 KiB pieces) and pipes it through age's
// streaming encryption, so the page never holds more than a few pieces at once.

import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { sha256 } from '@noble/hashes/sha2.js';
import { Encrypter } from 'age-encryption';

const OID = {
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
  ecPublicKey: '1.2.840.10045.2.1',
  rsaEncryption: '1.2.840.113549.1.1.1',
  p256: '1.2.840.10045.3.1.7',
  p384: '1.3.132.0.34',
  p521: '1.3.132.0.35',
  pkcs8ShroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  keyBag: '1.2.840.113549.1.12.10.1.1',
  certBag: '1.2.840.113549.1.12.10.1.3',
};

const PIECE = 64 * 1024;

export class SealError extends Error {}

// ---------------------------------------------------------------- small byte helpers

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function hex(s) {
  const clean = s.replace(/\s+/g, '');
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.substr(i * 2, 2), 16);
  return out;
}

// A DER length.
function length(n) {
  if (n < 0x80) return Uint8Array.of(n);
  const bytes = [];
  while (n > 0) {
    bytes.unshift(n & 0xff);
    n = Math.floor(n / 256);
  }
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

function tlv(tag, body) {
  return concat(Uint8Array.of(tag), length(body.length), body);
}

function fromBase64(b64) {
  const bin = atob(b64.replace(/\s+/g, ''));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function toHex(bytes) {
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

// The PEM blocks of a text, by label.
function pemBlocks(text) {
  const blocks = [];
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
  let m;
  while ((m = re.exec(text)) !== null) blocks.push({ label: m[1], der: fromBase64(m[2]) });
  return blocks;
}

function asn1(der, what) {
  const parsed = asn1js.fromBER(der);
  if (parsed.offset === -1) throw new SealError(`${what} is not valid DER`);
  return parsed.result;
}

// ---------------------------------------------------------------- the signing key

// WebCrypto's parameters for the key of `cert`.
function algorithmOf(cert) {
  const spki = cert.subjectPublicKeyInfo.algorithm;
  if (spki.algorithmId === OID.rsaEncryption) {
    return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  }
  if (spki.algorithmId === OID.ecPublicKey) {
    const curve = spki.algorithmParams && spki.algorithmParams.valueBlock.toString();
    const named = { [OID.p256]: 'P-256', [OID.p384]: 'P-384', [OID.p521]: 'P-521' }[curve];
    if (!named) throw new SealError(`the certificate's EC curve (${curve}) is not one a browser signs with (P-256, P-384, P-521)`);
    return { name: 'ECDSA', namedCurve: named, hash: 'SHA-256' };
  }
  throw new SealError(`the certificate's key type (${spki.algorithmId}) is not RSA or EC`);
}

// A SEC1 ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY") key wrapped as PKCS#8, the only
// form WebCrypto imports.
function toPkcs8(der, label, cert) {
  if (label === 'PRIVATE KEY') return der;
  const spki = cert.subjectPublicKeyInfo.algorithm;
  const info = new pkijs.PrivateKeyInfo({
    version: 0,
    privateKeyAlgorithm: new pkijs.AlgorithmIdentifier({
      algorithmId: spki.algorithmId,
      algorithmParams: spki.algorithmParams || new asn1js.Null(),
    }),
    privateKey: new asn1js.OctetString({ valueHex: der }),
  });
  if (label === 'EC PRIVATE KEY' || label === 'RSA PRIVATE KEY') {
    return new Uint8Array(info.toSchema().toBER());
  }
  if (label === 'ENCRYPTED PRIVATE KEY') {
    throw new SealError('the key file is encrypted PEM: export the key and certificate as a PKCS#12 (.p12) file with a password instead');
  }
  throw new SealError(`the key file holds a ${label}, not a private key`);
}

async function importKey(pkcs8, cert) {
  const algorithm = algorithmOf(cert);
  try {
    return await crypto.subtle.importKey('pkcs8', pkcs8, algorithm, false, ['sign']);
  } catch (e) {
    throw new SealError(`the private key cannot be used (${e.message}): is it the key of this certificate?`);
  }
}

// The signer from a PEM key file and a PEM certificate file.
async function fromPem(keyText, certText) {
  const certs = pemBlocks(certText).filter((b) => b.label === 'CERTIFICATE');
  if (!certs.length) throw new SealError('the certificate file holds no PEM certificate (-----BEGIN CERTIFICATE-----)');
  const cert = new pkijs.Certificate({ schema: asn1(certs[0].der, 'the certificate') });
  const keys = pemBlocks(keyText).filter((b) => b.label.endsWith('PRIVATE KEY'));
  if (!keys.length) throw new SealError('the key file holds no PEM private key (-----BEGIN PRIVATE KEY-----)');
  const key = await importKey(toPkcs8(keys[0].der, keys[0].label, cert), cert);
  return { key, cert, chain: certs.slice(1).map((c) => new pkijs.Certificate({ schema: asn1(c.der, 'a chain certificate') })) };
}

// The signer from a PKCS#12 file (password-protected with PBES2/AES, as OpenSSL 3 and
// current Windows exports make them).
async function fromPkcs12(bytes, password) {
  const pass = new TextEncoder().encode(password).buffer;
  let pfx;
  try {
    pfx = new pkijs.PFX({ schema: asn1(bytes, 'the PKCS#12 file') });
    await pfx.parseInternalValues({ password: pass, checkIntegrity: true });
  } catch (e) {
    if (e instanceof SealError) throw e;
    throw new SealError(`the PKCS#12 file cannot be opened (${e.message}): check the password`);
  }
  const safe = pfx.parsedValue.authenticatedSafe;
  try {
    await safe.parseInternalValues({ safeContents: safe.safeContents.map(() => ({ password: pass })) });
  } catch (e) {
    throw new SealError(`the PKCS#12 file's contents cannot be decrypted (${e.message}); legacy RC2/3DES files are not supported: export it again with AES`);
  }
  let keyInfo = null;
  const certs = [];
  for (const contents of safe.parsedValue.safeContents) {
    for (const bag of contents.value.safeBags) {
      if (bag.bagId === OID.pkcs8ShroudedKeyBag) {
        await bag.bagValue.parseInternalValues({ password: pass });
        keyInfo = bag.bagValue.parsedValue;
      } else if (bag.bagId === OID.keyBag) {
        keyInfo = bag.bagValue;
      } else if (bag.bagId === OID.certBag) {
        certs.push(bag.bagValue.parsedValue);
      }
    }
  }
  if (!keyInfo) throw new SealError('the PKCS#12 file holds no private key');
  if (!certs.length) throw new SealError('the PKCS#12 file holds no certificate');
  const pkcs8 = new Uint8Array(keyInfo.toSchema().toBER());
  // The leaf is the certificate whose key this is: the first one that is not a CA.
  const leaf = certs.find((c) => !isCa(c)) || certs[0];
  const key = await importKey(pkcs8, leaf);
  return { key, cert: leaf, chain: certs.filter((c) => c !== leaf) };
}

function isCa(cert) {
  const bc = (cert.extensions || []).find((e) => e.extnID === '2.5.29.19');
  return Boolean(bc && bc.parsedValue && bc.parsedValue.cA);
}

// The signer chosen on the page: a .p12 file (with its password), or a PEM key and a PEM
// certificate.
export async function loadSigner({ keyFile, certFile, password }) {
  if (!keyFile) throw new SealError('choose your signing key file to seal plain XML');
  const keyBytes = new Uint8Array(await keyFile.arrayBuffer());
  const keyText = new TextDecoder('latin1').decode(keyBytes);
  if (!keyText.includes('-----BEGIN')) return fromPkcs12(keyBytes, password || '');
  if (!certFile) {
    // A PEM file may hold both.
    if (pemBlocks(keyText).some((b) => b.label === 'CERTIFICATE')) return fromPem(keyText, keyText);
    throw new SealError('choose your certificate file too (or a .p12 file holding both)');
  }
  return fromPem(keyText, await certFile.text());
}

// ---------------------------------------------------------------- the recipient

// The gateway's current age recipient, from its signed recipient document: the signature
// must verify and be made by the receipt certificate whose SHA-256 the page was given.
export async function fetchRecipient(receiptCertSha256) {
  const res = await fetch('/v1/recipient', { credentials: 'same-origin' });
  if (!res.ok) throw new SealError(`the gateway's recipient could not be fetched (HTTP ${res.status})`);
  const body = new Uint8Array(await res.arrayBuffer());
  const sig = res.headers.get('gateway-signature');
  if (!sig) throw new SealError('the recipient document is not signed: refusing to seal to it');
  const info = new pkijs.ContentInfo({ schema: asn1(fromBase64(sig), 'the recipient signature') });
  const signed = new pkijs.SignedData({ schema: info.content });
  let verified;
  try {
    verified = await signed.verify({ signer: 0, data: body.buffer, checkChain: false, extendedMode: true });
  } catch (e) {
    throw new SealError(`the recipient document's signature does not verify (${e.message || e}): refusing to seal to it`);
  }
  if (!verified.signatureVerified) throw new SealError("the recipient document's signature does not verify: refusing to seal to it");
  const signer = verified.signerCertificate;
  const fingerprint = toHex(new Uint8Array(await crypto.subtle.digest('SHA-256', signer.toSchema().toBER())));
  if (fingerprint !== receiptCertSha256) {
    throw new SealError("the recipient document is signed by a certificate other than the gateway's receipt certificate: refusing to seal to it");
  }
  const doc = JSON.parse(new TextDecoder().decode(body));
  if (!/^age1[0-9a-z]+$/.test(doc.current || '')) throw new SealError('the recipient document names no current age recipient');
  return doc.current;
}

// ---------------------------------------------------------------- reading the file

// The file in pieces of exactly PIECE bytes (the last shorter), calling progress(bytes).
function pieces(file, progress) {
  const reader = file.stream().getReader();
  let pending = new Uint8Array(0);
  let done = false;
  let seen = 0;
  return {
    async next() {
      while (!done && pending.length < PIECE) {
        const r = await reader.read();
        if (r.done) {
          done = true;
        } else {
          pending = pending.length ? concat(pending, r.value) : r.value;
          seen += r.value.length;
          progress(seen);
        }
      }
      if (!pending.length) return null;
      const piece = pending.subarray(0, PIECE);
      pending = pending.subarray(piece.length);
      return piece;
    },
  };
}

async function digestOf(file, progress) {
  const h = sha256.create();
  const it = pieces(file, progress);
  for (let p = await it.next(); p; p = await it.next()) h.update(p);
  return h.digest();
}

// ---------------------------------------------------------------- CMS

// The SignerInfo (DER) over the attributes naming `digest`, signed with the person's key.
async function signerInfo(signer, digest) {
  const sd = new pkijs.SignedData({
    version: 1,
    encapContentInfo: new pkijs.EncapsulatedContentInfo({ eContentType: OID.data }),
    signerInfos: [
      new pkijs.SignerInfo({
        version: 1,
        sid: new pkijs.IssuerAndSerialNumber({
          issuer: signer.cert.issuer,
          serialNumber: signer.cert.serialNumber,
        }),
        signedAttrs: new pkijs.SignedAndUnsignedAttributes({
          type: 0,
          attributes: [
            new pkijs.Attribute({ type: OID.contentType, values: [new asn1js.ObjectIdentifier({ value: OID.data })] }),
            new pkijs.Attribute({ type: OID.signingTime, values: [new asn1js.UTCTime({ valueDate: new Date() })] }),
            new pkijs.Attribute({ type: OID.messageDigest, values: [new asn1js.OctetString({ valueHex: digest })] }),
          ],
        }),
      }),
    ],
    certificates: [signer.cert],
  });
  await sd.sign(signer.key, 0, 'SHA-256');
  return new Uint8Array(sd.signerInfos[0].toSchema().toBER());
}

// ContentInfo { signedData, SignedData { 1, {sha256}, { data, [0] <content> }, certs, infos } },
// indefinite lengths throughout, the content as a constructed OCTET STRING.
function cmsFrame(signer, infoDer) {
  const digestAlgorithms = hex('31 0f 30 0d 06 09 60 86 48 01 65 03 04 02 01 05 00');
  const head = concat(
    hex('30 80 06 09 2a 86 48 86 f7 0d 01 07 02 a0 80 30 80 02 01 01'),
    digestAlgorithms,
    hex('30 80 06 09 2a 86 48 86 f7 0d 01 07 01 a0 80 24 80'),
  );
  const certs = [signer.cert, ...signer.chain].map((c) => new Uint8Array(c.toSchema().toBER()));
  const tail = concat(
    hex('00 00 00 00 00 00'),
    tlv(0xa0, concat(...certs)),
    tlv(0x31, infoDer),
    hex('00 00 00 00 00 00'),
  );
  return { head, tail };
}

// The CMS bytes as a stream: the frame around the file's pieces.
function cmsStream(file, frame, progress) {
  let it = null;
  let stage = 0;
  return new ReadableStream({
    async pull(controller) {
      if (stage === 0) {
        controller.enqueue(frame.head);
        it = pieces(file, progress);
        stage = 1;
        return;
      }
      if (stage === 1) {
        const p = await it.next();
        if (p) {
          controller.enqueue(concat(Uint8Array.of(0x04), length(p.length), p));
          return;
        }
        stage = 2;
      }
      controller.enqueue(frame.tail);
      controller.close();
    },
  });
}

// ---------------------------------------------------------------- all of it

// Seals `file` with `signer` to `recipient`: a stream of the sealed payload. progress(phase,
// bytes of the file done) reports 'digest' for the first pass and 'seal' for the second.
export async function seal(file, signer, recipient, progress = () => {}) {
  const digest = await digestOf(file, (n) => progress('digest', n));
  const infoDer = await signerInfo(signer, digest);
  const frame = cmsFrame(signer, infoDer);
  const e = new Encrypter();
  e.addRecipient(recipient);
  return e.encrypt(cmsStream(file, frame, (n) => progress('seal', n)));
}
