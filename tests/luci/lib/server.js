'use strict';
// Static files + a fake ubus JSON-RPC endpoint for the stand-in runtime.
// Answers mpconv status/handover from recorded daemon output (fixtures/), keeps
// an in-memory /etc/config/mpconv (started from the shipped default config) that
// `uci get/add/set/delete` act on, and records every call for the tests.
const fs = require('fs');
const http = require('http');
const path = require('path');
const uciText = require('./uci-text');

const HERE = path.join(__dirname, '..');
const REPO = path.join(HERE, '..', '..');
const RESOURCES = path.join(REPO, 'luci-app', 'luci-app-mpconv', 'htdocs', 'luci-static', 'resources');
const FIXTURES = path.join(HERE, 'fixtures');
const DEFAULT_CONFIG = path.join(REPO, 'openwrt', 'mpconv', 'files', 'mpconv.config');

const fixture = (n) => JSON.parse(fs.readFileSync(path.join(FIXTURES, n), 'utf8'));

function createBackend(opts = {}) {
  const state = {
    calls: [],
    statusMode: opts.statusMode || 'series',      // series | fixed | down
    seriesIndex: 0,
    handoverMode: 'ok',                           // ok | error
    // /proc/sys/net/ipv4/ip_local_port_range (OpenWrt's and Debian's default); null: unreadable
    localPorts: opts.localPorts === undefined ? '32768\t60999\n' : opts.localPorts,
    series: fixture('status-series.json'),
    uci: { mpconv: uciText.parse(fs.readFileSync(opts.configFile || DEFAULT_CONFIG, 'utf8')) },
    applied: 0,
  };
  const ok = (data) => [0, data];
  const handlers = {
    'mpconv.status': () => {
      if (state.statusMode === 'down') return ok(fixture('status-down.json'));
      if (state.statusMode === 'fixed') return ok(fixture('status.json'));
      const s = state.series[Math.min(state.seriesIndex, state.series.length - 1)];
      state.seriesIndex++;
      return ok(s);
    },
    // the answer shapes of the rpcd plugin: {"ok":true,...} or {"error":...}
    'mpconv.handover': () => ok(fixture(state.handoverMode === 'error' ? 'handover-error.json' : 'handover.json')),
    'luci-rpc.getNetworkDevices': () => ok(fixture('devices.json')),
    // rpcd's file plugin: {data} or UBUS_STATUS_PERMISSION_DENIED (6) / NOT_FOUND (4)
    'file.read': (a) => {
      if (a.path !== '/proc/sys/net/ipv4/ip_local_port_range') return [6];
      return state.localPorts == null ? [4] : ok({ data: state.localPorts });
    },
    'uci.get': (a) => (state.uci[a.config] ? ok({ values: state.uci[a.config] }) : [5]),
    'uci.add': (a) => {
      const c = state.uci[a.config];
      const name = a.name || 'cfg' + Object.keys(c).length.toString(16).padStart(6, '0');
      if (c[name]) return [2];
      const index = Math.max(-1, ...Object.values(c).map((s) => s['.index'])) + 1;
      c[name] = Object.assign({ '.anonymous': !a.name, '.type': a.type, '.name': name, '.index': index }, a.values || {});
      return ok({ section: name });
    },
    'uci.set': (a) => {
      const s = state.uci[a.config] && state.uci[a.config][a.section];
      if (!s) return [4];
      Object.assign(s, a.values);
      return [0];
    },
    'uci.delete': (a) => {
      const c = state.uci[a.config];
      if (!c || !c[a.section]) return [4];
      if (a.options) a.options.forEach((o) => delete c[a.section][o]);
      else delete c[a.section];
      return [0];
    },
    'uci.apply': () => { state.applied++; return [0]; },
    'uci.confirm': () => [0],
  };
  function call(req) {
    const [, object, method, args] = req.params || [];
    state.calls.push({ object, method, args });
    const h = handlers[object + '.' + method];
    const result = h ? h(args || {}) : [3];   // 3 = UBUS_STATUS_METHOD_NOT_FOUND
    return { jsonrpc: '2.0', id: req.id, result };
  }
  return { state, call, configText: () => uciText.serialize(state.uci.mpconv) };
}

const TYPES = { '.js': 'application/javascript', '.html': 'text/html', '.css': 'text/css', '.json': 'application/json' };

function serveFile(res, base, rel) {
  const p = path.normalize(path.join(base, rel));
  if (!p.startsWith(base + path.sep) || !fs.existsSync(p) || !fs.statSync(p).isFile()) {
    res.writeHead(404); res.end('not found'); return;
  }
  res.writeHead(200, { 'Content-Type': TYPES[path.extname(p)] || 'application/octet-stream', 'Cache-Control': 'no-store' });
  res.end(fs.readFileSync(p));
}

function start(backend) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (req.method === 'POST' && url.pathname === '/ubus/') {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => {
        let reply;
        try { reply = backend.call(JSON.parse(body)); } catch (e) { reply = { jsonrpc: '2.0', id: null, error: { code: -32700, message: String(e) } }; }
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(reply));
      });
      return;
    }
    if (url.pathname === '/favicon.ico') { res.writeHead(204); res.end(); return; }
    if (url.pathname === '/' || url.pathname === '/index.html') return serveFile(res, path.join(HERE, 'standin'), 'index.html');
    if (url.pathname.startsWith('/standin/')) return serveFile(res, path.join(HERE, 'standin'), url.pathname.slice(9));
    if (url.pathname.startsWith('/luci-static/resources/')) return serveFile(res, RESOURCES, url.pathname.slice(23));
    res.writeHead(404); res.end('not found');
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

module.exports = { createBackend, start, RESOURCES, REPO, FIXTURES };
