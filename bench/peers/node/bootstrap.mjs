// A minimal Lambda runtime client for the Node.js peer, started by the
// bootstrap script beside it: load the handler module (its import is the
// set-up being timed), then serve invocations from the Runtime API at
// AWS_LAMBDA_RUNTIME_API (the emulator's). It stands in for the managed
// runtime's own client, which is not packaged outside Lambda. node:http rather
// than fetch because the managed runtime does not pay for loading undici.
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const api = process.env.AWS_LAMBDA_RUNTIME_API;
const root = process.env.LAMBDA_TASK_ROOT || path.dirname(new URL(import.meta.url).pathname);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function call(method, route, body) {
  return new Promise((resolve, reject) => {
    const [host, port] = api.split(':');
    const req = http.request({ host, port, method, path: `/2018-06-01/runtime/${route}`, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    if (body !== undefined) {
      req.setHeader('content-type', 'application/json');
      req.end(JSON.stringify(body));
    } else {
      req.end();
    }
  });
}

function errorBody(e) {
  return { errorType: e?.name || 'Error', errorMessage: String(e?.message || e), stackTrace: String(e?.stack || '').split('\n') };
}

let handler;
try {
  const mod = await import(pathToFileURL(path.join(root, 'index.mjs')).href);
  handler = mod.handler;
} catch (e) {
  await call('POST', 'init/error', errorBody(e));
  process.exit(1);
}

// Lambda freezes or kills the process between invocations; this loop ends
// only when the harness kills it, as in the managed runtime.
for (;;) {
  const next = await call('GET', 'invocation/next');
  const id = next.headers['lambda-runtime-aws-request-id'];
  try {
    const result = await handler(JSON.parse(next.body), { awsRequestId: id });
    await call('POST', `invocation/${id}/response`, result);
  } catch (e) {
    await call('POST', `invocation/${id}/error`, errorBody(e));
  }
}
