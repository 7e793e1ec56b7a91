#!/usr/bin/env node
// Example backend behind the cronofy_callback guard, using only the
// Node.js standard library.
//
// The guard in Caddy verifies the Cronofy-HMAC-SHA256 signature, checks
// the JSON and sets X-Cronofy-* request headers from the verified body
// before it proxies the request here. This server therefore does no
// verification of its own. It reads only the X-Cronofy-* headers, which
// the guard removes from the inbound request before setting its own, so a
// client cannot supply them. It must only be reachable through the guard,
// which is why it listens on 127.0.0.1.
//
// For every POST it responds with 200 and a JSON object of the
// X-Cronofy-* headers it received, percent-decoded back to UTF-8, and the
// body length, and it prints the same object as one JSON line on stdout.
//
// Usage: node upstream.js PORT
// PORT 0 picks a free port. The first stdout line is always
// "listening on PORT", so a caller can read the port that was picked.

'use strict';

const http = require('node:http');

// The guard owns every request header with this prefix.
const GUARD_HEADER_PREFIX = 'x-cronofy-';

// guardHeaders returns the X-Cronofy-* headers, decoded, keyed by their
// name as sent and sorted by name. The guard writes every byte outside
// printable ASCII, and "%" itself, as %XX, so decodeURIComponent restores
// the UTF-8 text of the body. It throws URIError for a value that is not
// percent-encoded UTF-8.
function guardHeaders(rawHeaders) {
  const found = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i];
    if (name.toLowerCase().startsWith(GUARD_HEADER_PREFIX)) {
      found[name] = decodeURIComponent(rawHeaders[i + 1]);
    }
  }
  const sorted = {};
  for (const name of Object.keys(found).sort()) {
    sorted[name] = found[name];
  }
  return sorted;
}

function sendJSON(res, status, payload) {
  const data = Buffer.from(JSON.stringify(payload), 'utf8');
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': data.length,
  });
  res.end(data);
}

function handle(req, res) {
  if (req.method !== 'POST') {
    res.setHeader('Allow', 'POST');
    sendJSON(res, 405, { error: 'only POST is accepted' });
    return;
  }
  // The guard always forwards a Content-Length, also for chunked inbound
  // requests, so a request without one did not come through it.
  const lengthHeader = req.headers['content-length'];
  if (lengthHeader === undefined || !/^[0-9]+$/.test(lengthHeader)) {
    sendJSON(res, 411, { error: 'missing or invalid Content-Length' });
    return;
  }

  let bodyLength = 0;
  req.on('data', (chunk) => {
    bodyLength += chunk.length;
  });
  req.on('end', () => {
    let headers;
    try {
      headers = guardHeaders(req.rawHeaders);
    } catch (err) {
      sendJSON(res, 400, { error: 'X-Cronofy-* header is not percent-encoded UTF-8' });
      return;
    }
    const received = { body_length: bodyLength, headers, path: req.url };
    console.log(JSON.stringify(received));
    sendJSON(res, 200, received);
  });
  req.on('error', (err) => {
    console.error(`reading request body failed: ${err.message}`);
  });
}

function main() {
  const args = process.argv.slice(2);
  if (args.length !== 1 || !/^[0-9]+$/.test(args[0])) {
    console.error('usage: node upstream.js PORT (0 picks a free port)');
    process.exit(2);
  }

  const server = http.createServer(handle);
  server.listen(Number(args[0]), '127.0.0.1', () => {
    console.log(`listening on ${server.address().port}`);
  });
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

main();
