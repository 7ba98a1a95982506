#!/usr/bin/env node
// The container's HEALTHCHECK: asks the agent's own /healthz where it listens — AGENT_LISTEN and
// AGENT_TLS_CERT_FILE, else `listen` and `tls` in the AGENT_CONFIG file, as `agent serve` reads them (plain
// HTTP or HTTPS, any port) — and exits 0 only on a 200 "ok". No token: /healthz needs none.
const { readFileSync } = require('node:fs');
const https = require('node:https');
const http = require('node:http');

let file = {};
try {
  if (process.env.AGENT_CONFIG) file = JSON.parse(readFileSync(process.env.AGENT_CONFIG, 'utf8'));
} catch {
  // An unreadable config file stops the agent itself; the probe then fails on the connection.
}
const listen = process.env.AGENT_LISTEN || file.listen || '127.0.0.1:7480';
const colon = listen.lastIndexOf(':');
let host = listen.slice(0, colon).replace(/^\[|\]$/g, '');
if (host === '0.0.0.0' || host === '') host = '127.0.0.1';
if (host === '::') host = '::1';
const tls = Boolean(process.env.AGENT_TLS_CERT_FILE || file.tls?.cert_file);
// The probe runs beside the agent, on its own address: the certificate names the agent's public name, not
// this one, so it is not checked here (the orchestrator's own probe, if any, should check it).
const request = (tls ? https : http).get(
  { host, port: Number(listen.slice(colon + 1)), path: '/healthz', timeout: 4000, rejectUnauthorized: false },
  (response) => {
    let body = '';
    response.on('data', (d) => {
      body += d;
    });
    response.on('end', () => process.exit(response.statusCode === 200 && body.includes('"ok"') ? 0 : 1));
  },
);
request.on('timeout', () => request.destroy(new Error('timeout')));
request.on('error', () => process.exit(1));
