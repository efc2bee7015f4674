#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Drives a KMS endpoint (the loopback emulator, test/kmsemu) with the
// official AWS SDK for JavaScript v3 (@aws-sdk/client-kms) and checks that
// the answers are what AWS KMS gives. Prints one JSON line per step:
//   {"step":"...","ok":true|false, ...results}            results
//   {"step":"...","ok":false,"why":"...","error":{name,httpStatusCode,requestId,message}}
//   {"step":"export","name":"...","blob":B64,"context":{...},"plaintext":B64,"keyArn":ARN}
// and exits 1 if any step gave an unexpected result (2 on bad usage).
//
// Everything is explicit: endpoint, region, CA file (TLS is verified against
// it, nothing else), credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
// AWS_SESSION_TOKEN are read here and handed to the client; no provider
// chain, no config files).
//
// node kms-sdk-js.mjs --endpoint URL --region R --ca FILE
//     --key ID --key-arn ARN [--key2 ID --key2-arn ARN] [--alias alias/NAME]
//     [--other-ca FILE] [--import FILE] [--steps a,b,c]
// --import FILE: JSON array of {name, blob, context, plaintext, keyArn}
//   (blobs made by another client) that must decrypt to plaintext.
// --steps: the steps to run (default: all but wrong-secret and wrong-ca,
//   which the caller runs on their own to check the server's counters).

import { readFileSync } from 'node:fs';
import https from 'node:https';
import crypto, { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import {
  KMSClient,
  DescribeKeyCommand,
  GenerateDataKeyCommand,
  GenerateDataKeyWithoutPlaintextCommand,
  EncryptCommand,
  DecryptCommand,
  ReEncryptCommand,
} from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';

const DEFAULT_STEPS = [
  'describe-key', 'generate-data-key', 'generate-data-key-without-plaintext',
  'encrypt-context', 're-encrypt', 'alias', 'errors', 'import', 'export',
];
const ALL_STEPS = [...DEFAULT_STEPS, 'wrong-secret', 'wrong-ca'];

let opts;
try {
  ({ values: opts } = parseArgs({
    options: {
      endpoint: { type: 'string' },
      region: { type: 'string', default: 'us-east-1' },
      ca: { type: 'string' },
      'other-ca': { type: 'string' },
      key: { type: 'string' },
      'key-arn': { type: 'string' },
      key2: { type: 'string' },
      'key2-arn': { type: 'string' },
      alias: { type: 'string' },
      import: { type: 'string' },
      steps: { type: 'string' },
    },
    strict: true,
  }));
} catch (e) {
  console.error(`usage: ${e.message}`);
  process.exit(2);
}
const need = (name) => {
  if (!opts[name]) {
    console.error(`usage: --${name} is required`);
    process.exit(2);
  }
  return opts[name];
};
const steps = opts.steps ? opts.steps.split(',') : DEFAULT_STEPS;
for (const s of steps) {
  if (!ALL_STEPS.includes(s)) {
    console.error(`usage: unknown step ${s} (known: ${ALL_STEPS.join(' ')})`);
    process.exit(2);
  }
}
if (process.env.NODE_TLS_REJECT_UNAUTHORIZED === '0') {
  console.error('refusing to run with NODE_TLS_REJECT_UNAUTHORIZED=0');
  process.exit(2);
}
const endpoint = need('endpoint');
const region = opts.region;
const caFile = need('ca');
const akid = process.env.AWS_ACCESS_KEY_ID;
const secret = process.env.AWS_SECRET_ACCESS_KEY;
if (!akid || !secret) {
  console.error('usage: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set');
  process.exit(2);
}
const credentials = {
  accessKeyId: akid,
  secretAccessKey: secret,
  ...(process.env.AWS_SESSION_TOKEN ? { sessionToken: process.env.AWS_SESSION_TOKEN } : {}),
};

function makeClient({ ca = caFile, creds = credentials, maxAttempts } = {}) {
  // TLS verified against exactly this CA (rejectUnauthorized stays true).
  const httpsAgent = new https.Agent({ ca: readFileSync(ca), keepAlive: true });
  return new KMSClient({
    region,
    endpoint,
    credentials: creds,
    requestHandler: new NodeHttpHandler({ httpsAgent }),
    ...(maxAttempts ? { maxAttempts } : {}),
  });
}

let failed = 0;
const b64 = (u8) => Buffer.from(u8).toString('base64');
const eq = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

function errInfo(e) {
  return {
    name: e?.name,
    httpStatusCode: e?.$metadata?.httpStatusCode,
    requestId: e?.$metadata?.requestId,
    code: e?.code,
    message: e?.message,
  };
}

function report(step, ok, fields) {
  if (!ok) failed++;
  console.log(JSON.stringify({ step, ok, ...fields }));
}

// Runs one call; check(out) returns undefined when fine or a string saying
// what is wrong. Returns the output (or undefined after an exception).
async function call(step, client, command, check, extra = () => ({})) {
  let out;
  try {
    out = await client.send(command);
  } catch (e) {
    report(step, false, { why: 'unexpected error', error: errInfo(e) });
    return undefined;
  }
  const why = check(out);
  const fields = { requestId: out.$metadata?.requestId, ...extra(out) };
  if (why) report(step, false, { why, ...fields });
  else report(step, true, fields);
  return out;
}

// A call that must fail with a service error named `name` (HTTP 400 and a
// request id: the server answered, the client did not give up on its own).
async function callErr(step, client, command, name) {
  try {
    const out = await client.send(command);
    report(step, false, { why: `expected ${name}, call succeeded`, requestId: out.$metadata?.requestId });
  } catch (e) {
    const info = errInfo(e);
    let why;
    if (info.name !== name) why = `expected ${name}, got ${info.name}`;
    else if (info.httpStatusCode !== 400) why = `expected HTTP 400, got ${info.httpStatusCode}`;
    else if (!info.requestId) why = 'no request id in the error';
    else if (e.$fault !== 'client') why = `expected $fault client, got ${e.$fault}`;
    report(step, !why, { ...(why ? { why } : {}), error: info });
  }
}

function checkResp(out, want) {
  for (const [k, v] of Object.entries(want)) {
    if (v instanceof Uint8Array || Buffer.isBuffer(v)) {
      if (!(out[k] instanceof Uint8Array)) return `${k} missing`;
      if (!eq(out[k], v)) return `${k} differs`;
    } else if (v === undefined) {
      if (out[k] !== undefined) return `${k} present, should be absent`;
    } else if (typeof v === 'function') {
      const why = v(out[k]);
      if (why) return `${k}: ${why}`;
    } else if (out[k] !== v) {
      return `${k} is ${JSON.stringify(out[k])}, expected ${JSON.stringify(v)}`;
    }
  }
  return undefined;
}
const blob = (u) => (u instanceof Uint8Array && u.length > 0 ? undefined : 'not a non-empty blob');
const len = (n) => (u) => (u instanceof Uint8Array && u.length === n ? undefined : `length ${u?.length}, expected ${n}`);

const kms = makeClient();
const keyId = () => need('key');
const keyArn = () => need('key-arn');
const exportsOut = [];
const ctx = { purpose: 'kmsenv-fidelity', row: '42', client: 'sdk-js' };
// Same pairs, other order: a context is a map.
const ctxReordered = { client: 'sdk-js', row: '42', purpose: 'kmsenv-fidelity' };
const ctx2 = { purpose: 'kmsenv-fidelity', stage: 're-encrypted' };

const run = {
  async 'describe-key'() {
    await call('describe-key', kms, new DescribeKeyCommand({ KeyId: keyId() }), (o) =>
      checkResp(o.KeyMetadata ?? {}, { Arn: keyArn(), KeyState: 'Enabled', Enabled: true }),
      (o) => ({ arn: o.KeyMetadata?.Arn }));
  },

  async 'generate-data-key'() {
    const g = await call('generate-data-key', kms,
      new GenerateDataKeyCommand({ KeyId: keyId(), KeySpec: 'AES_256' }),
      (o) => checkResp(o, { KeyId: keyArn(), Plaintext: len(32), CiphertextBlob: blob }),
      (o) => ({ keyId: o.KeyId, plaintextLength: o.Plaintext?.length }));
    if (!g?.Plaintext || !g?.CiphertextBlob) return;
    await call('decrypt-data-key', kms, new DecryptCommand({ CiphertextBlob: g.CiphertextBlob }),
      (o) => checkResp(o, { Plaintext: g.Plaintext, KeyId: keyArn(), EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' }),
      (o) => ({ keyId: o.KeyId }));
    // Naming the key on decrypt is allowed when it is the right one...
    await call('decrypt-data-key-with-key-id', kms,
      new DecryptCommand({ CiphertextBlob: g.CiphertextBlob, KeyId: keyId() }),
      (o) => checkResp(o, { Plaintext: g.Plaintext, KeyId: keyArn() }));
    // ...and refused when it is another key.
    if (opts.key2) {
      await callErr('decrypt-with-other-key-id', kms,
        new DecryptCommand({ CiphertextBlob: g.CiphertextBlob, KeyId: opts.key2 }),
        'IncorrectKeyException');
    }
    exportsOut.push({ name: 'sdk-js-data-key', blob: b64(g.CiphertextBlob), context: {},
      plaintext: b64(g.Plaintext), keyArn: keyArn() });
  },

  async 'generate-data-key-without-plaintext'() {
    const g = await call('generate-data-key-without-plaintext', kms,
      new GenerateDataKeyWithoutPlaintextCommand({ KeyId: keyId(), NumberOfBytes: 32, EncryptionContext: ctx }),
      (o) => checkResp(o, { KeyId: keyArn(), CiphertextBlob: blob, Plaintext: undefined }));
    if (!g?.CiphertextBlob) return;
    await call('decrypt-data-key-without-plaintext', kms,
      new DecryptCommand({ CiphertextBlob: g.CiphertextBlob, EncryptionContext: ctx }),
      (o) => checkResp(o, { Plaintext: len(32), KeyId: keyArn() }));
  },

  async 'encrypt-context'() {
    const pt = randomBytes(100);
    const e = await call('encrypt', kms,
      new EncryptCommand({ KeyId: keyId(), Plaintext: pt, EncryptionContext: ctx }),
      (o) => checkResp(o, { KeyId: keyArn(), CiphertextBlob: blob, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' }),
      (o) => ({ keyId: o.KeyId }));
    if (!e?.CiphertextBlob) return;
    await call('decrypt-context', kms,
      new DecryptCommand({ CiphertextBlob: e.CiphertextBlob, EncryptionContext: ctxReordered }),
      (o) => checkResp(o, { Plaintext: pt, KeyId: keyArn() }));
    await callErr('decrypt-context-mismatch', kms,
      new DecryptCommand({ CiphertextBlob: e.CiphertextBlob, EncryptionContext: { ...ctx, row: '43' } }),
      'InvalidCiphertextException');
    await callErr('decrypt-context-missing', kms,
      new DecryptCommand({ CiphertextBlob: e.CiphertextBlob }), 'InvalidCiphertextException');
    await callErr('decrypt-context-extra', kms,
      new DecryptCommand({ CiphertextBlob: e.CiphertextBlob, EncryptionContext: { ...ctx, extra: 'x' } }),
      'InvalidCiphertextException');
    const bad = Buffer.from(e.CiphertextBlob);
    bad[bad.length - 1] ^= 1;
    await callErr('decrypt-tampered', kms,
      new DecryptCommand({ CiphertextBlob: bad, EncryptionContext: ctx }), 'InvalidCiphertextException');
    exportsOut.push({ name: 'sdk-js-encrypt-context', blob: b64(e.CiphertextBlob), context: ctx,
      plaintext: b64(pt), keyArn: keyArn() });
  },

  async 're-encrypt'() {
    const key2 = need('key2');
    const key2Arn = need('key2-arn');
    const pt = randomBytes(48);
    const e = await call('re-encrypt-source', kms,
      new EncryptCommand({ KeyId: keyId(), Plaintext: pt, EncryptionContext: ctx }),
      (o) => checkResp(o, { KeyId: keyArn() }));
    if (!e?.CiphertextBlob) return;
    const r = await call('re-encrypt', kms,
      new ReEncryptCommand({ CiphertextBlob: e.CiphertextBlob, SourceEncryptionContext: ctx,
        DestinationKeyId: key2, DestinationEncryptionContext: ctx2 }),
      (o) => checkResp(o, { KeyId: key2Arn, SourceKeyId: keyArn(), CiphertextBlob: blob,
        SourceEncryptionAlgorithm: 'SYMMETRIC_DEFAULT', DestinationEncryptionAlgorithm: 'SYMMETRIC_DEFAULT' }),
      (o) => ({ keyId: o.KeyId, sourceKeyId: o.SourceKeyId }));
    if (!r?.CiphertextBlob) return;
    await call('decrypt-re-encrypted', kms,
      new DecryptCommand({ CiphertextBlob: r.CiphertextBlob, EncryptionContext: ctx2 }),
      (o) => checkResp(o, { Plaintext: pt, KeyId: key2Arn }), (o) => ({ keyId: o.KeyId }));
    await callErr('decrypt-re-encrypted-old-context', kms,
      new DecryptCommand({ CiphertextBlob: r.CiphertextBlob, EncryptionContext: ctx }),
      'InvalidCiphertextException');
    await callErr('re-encrypt-wrong-source-context', kms,
      new ReEncryptCommand({ CiphertextBlob: e.CiphertextBlob, SourceEncryptionContext: ctx2,
        DestinationKeyId: key2 }), 'InvalidCiphertextException');
  },

  async alias() {
    const alias = need('alias');
    const pt = randomBytes(32);
    const e = await call('alias-encrypt', kms,
      new EncryptCommand({ KeyId: alias, Plaintext: pt, EncryptionContext: ctx }),
      (o) => checkResp(o, { KeyId: keyArn() }), (o) => ({ keyId: o.KeyId }));
    const g = await call('alias-generate-data-key', kms,
      new GenerateDataKeyCommand({ KeyId: alias, KeySpec: 'AES_256' }),
      (o) => checkResp(o, { KeyId: keyArn(), Plaintext: len(32) }), (o) => ({ keyId: o.KeyId }));
    if (e?.CiphertextBlob) {
      await call('alias-decrypt', kms,
        new DecryptCommand({ CiphertextBlob: e.CiphertextBlob, EncryptionContext: ctx, KeyId: alias }),
        (o) => checkResp(o, { Plaintext: pt, KeyId: keyArn() }));
      exportsOut.push({ name: 'sdk-js-alias', blob: b64(e.CiphertextBlob), context: ctx,
        plaintext: b64(pt), keyArn: keyArn() });
    }
    if (g?.CiphertextBlob) {
      exportsOut.push({ name: 'sdk-js-alias-data-key', blob: b64(g.CiphertextBlob), context: {},
        plaintext: b64(g.Plaintext), keyArn: keyArn() });
    }
  },

  // Errors the service gives for a key or a caller it does not know.
  async errors() {
    const arn = keyArn();
    const missing = arn.replace(/key\/.*$/, `key/${crypto.randomUUID()}`);
    await callErr('not-found-key', kms,
      new EncryptCommand({ KeyId: missing, Plaintext: randomBytes(16) }), 'NotFoundException');
    if (opts.alias) {
      await callErr('not-found-alias', kms,
        new GenerateDataKeyCommand({ KeyId: `${opts.alias}-missing`, KeySpec: 'AES_256' }),
        'NotFoundException');
    }
    const stranger = makeClient({ creds: { accessKeyId: 'AKIAI44QH8DHBEXAMPLE',
      secretAccessKey: 'je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY' } });
    await callErr('unknown-access-key', stranger,
      new DescribeKeyCommand({ KeyId: keyId() }), 'UnrecognizedClientException');
  },

  async import() {
    if (!opts.import) return;
    const items = JSON.parse(readFileSync(opts.import, 'utf8'));
    for (const it of items) {
      await call(`import:${it.name}`, kms,
        new DecryptCommand({ CiphertextBlob: Buffer.from(it.blob, 'base64'),
          ...(it.context && Object.keys(it.context).length ? { EncryptionContext: it.context } : {}) }),
        (o) => checkResp(o, { Plaintext: Buffer.from(it.plaintext, 'base64'), KeyId: it.keyArn }),
        (o) => ({ keyId: o.KeyId }));
    }
  },

  async export() {
    for (const x of exportsOut) console.log(JSON.stringify({ step: 'export', ...x }));
  },

  // Signed with a wrong secret: the server must refuse it.
  async 'wrong-secret'() {
    const bad = makeClient({ creds: { ...credentials, secretAccessKey: `${secret}x` } });
    await callErr('wrong-secret', bad,
      new EncryptCommand({ KeyId: keyId(), Plaintext: randomBytes(16) }), 'InvalidSignatureException');
  },

  // A CA that did not issue the server's certificate: TLS must fail before
  // any HTTP exchange (no status, no request id).
  async 'wrong-ca'() {
    const bad = makeClient({ ca: need('other-ca'), maxAttempts: 1 });
    try {
      await bad.send(new EncryptCommand({ KeyId: keyId(), Plaintext: randomBytes(16) }));
      report('wrong-ca', false, { why: 'call succeeded with a CA that did not issue the server certificate' });
    } catch (e) {
      const info = errInfo(e);
      const tls = /CERT|SELF_SIGNED|VERIFY/i.test(`${info.code} ${info.message}`);
      const why = info.httpStatusCode ? `got HTTP ${info.httpStatusCode}` : tls ? undefined : 'not a certificate error';
      report('wrong-ca', !why, { ...(why ? { why } : {}), error: info });
    }
  },
};

for (const s of steps) {
  try {
    await run[s]();
  } catch (e) {
    report(s, false, { why: 'exception in step', error: errInfo(e) });
  }
}
kms.destroy();
process.exit(failed ? 1 : 0);
