'use strict';
// (a) Unit tests of luci-app-mpconv's pure logic module (mpconv/logic.js), in node.
const test = require('node:test');
const assert = require('node:assert/strict');
const { loadLogic } = require('./lib/load-logic');

const L = loadLogic();
const ok = (v) => v === true;

test('port_range: LO-HI, 1024 <= LO <= HI <= 65535, at least 64 ports', () => {
  for (const v of ['61000-65535', '1024-1087', '1024-65535', '65472-65535'])
    assert.equal(L.validPortRange(v), true, v);
  for (const v of ['10-20', '1023-2000', '1024-1086', '2000-1000', '61000', '61000-65536', ' 1024-2000', 'a-b', '', '-1024-2000', '61000 - 65535'])
    assert.equal(typeof L.validPortRange(v), 'string', v);
  assert.match(L.validPortRange('1024-1086'), /63 ports; at least 64/);
});

test('host:port (concentrator)', () => {
  for (const v of ['vpn.example.net:8443', '192.0.2.1:1', '[2001:db8::1]:65535', 'localhost:80', 'a-b.c:443'])
    assert.equal(L.validHostPort(v), true, v);
  for (const v of ['vpn.example.net', ':80', 'host:0', 'host:65536', '2001:db8::1:80', '[2001:db8::1]', '[zz::1]:80', '1.2.3.256:80', '-bad.example:80', 'a_b:80', 'host:8o'])
    assert.equal(typeof L.validHostPort(v), 'string', v);
});

test('mtu 576..9000, numbers decimal only', () => {
  assert.ok(ok(L.validMtu('576')) && ok(L.validMtu('9000')) && ok(L.validMtu('1500')));
  for (const v of ['575', '9001', '1500.0', '-1500', '0x5dc', '', ' 1500'])
    assert.equal(typeof L.validMtu(v), 'string', v);
  assert.equal(L.validNumber('65536', 1, 65536), true);
  assert.equal(typeof L.validNumber('0', 1, 65536), 'string');
});

test('gateways follow the daemon (usable unicast, right family, no zone)', () => {
  assert.equal(L.validGateway4('192.168.100.1'), true);
  for (const v of ['0.0.0.0', '255.255.255.255', '224.0.0.1', 'fe80::1', '1.2.3', '192.168.1.01'])
    assert.equal(typeof L.validGateway4(v), 'string', v);
  for (const v of ['fe80::1', '2001:db8::1', '::1', 'fd00:64:1::1', '::ffff:1.2.3.4'.replace('ffff', 'fffe')])
    assert.equal(L.validGateway6(v), true, v);
  for (const v of ['::', 'ff02::1', '::ffff:192.0.2.1', 'fe80::1%eth0', '192.168.1.1', '1:2:3:4:5:6:7:8:9', 'g::1'])
    assert.equal(typeof L.validGateway6(v), 'string', v);
});

test('IPv6 parser', () => {
  assert.deepEqual(L.parseIPv6('::'), [0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(L.parseIPv6('2001:db8::1'), [0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]);
  assert.deepEqual(L.parseIPv6('::ffff:1.2.3.4'), [0, 0, 0, 0, 0, 0xffff, 0x102, 0x304]);
  assert.equal(L.parseIPv6('1::2::3'), null);
  assert.equal(L.parseIPv6('1:2:3:4:5:6:7'), null);
});

test('device names (kernel dev_valid_name)', () => {
  for (const v of ['br-lan', 'eth0.2', 'wwan0', 'pppoe-wan', 'a'.repeat(15)]) assert.equal(L.validDevice(v), true, v);
  for (const v of ['', '.', '..', 'a/b', 'eth0:1', 'br lan', 'a'.repeat(16)]) assert.equal(typeof L.validDevice(v), 'string', v);
});

test('netifd interface names (uciname, at most 15)', () => {
  for (const v of ['wan', 'wwan', 'wan6', 'wwan_4', 'WAN', '_', 'a'.repeat(15)]) assert.equal(L.validInterface(v), true, v);
  for (const v of ['', 'wan-2', 'wan.2', 'wan 2', 'w/an', 'wän', 'a'.repeat(16)]) assert.equal(typeof L.validInterface(v), 'string', v);
  assert.ok(!L.RESERVED.uplink.includes('interface'), 'interface is a real key now');
});

test('mark and routing table', () => {
  for (const v of ['0x6d70000', '256', '0XFF00', '4294967040']) assert.equal(L.validMark(v), true, v);
  for (const v of ['0', '0x0', '0x6d70001', '255', '0x100000000', '-256', '0x', 'abc']) assert.equal(typeof L.validMark(v), 'string', v);
  assert.equal(L.validTable('6170', 8), true);
  assert.equal(L.validTable('252', 1), true);
  assert.match(L.validTable('252', 2), /253/);
  assert.match(L.validTable('250', 8), /253/);
  assert.equal(L.validTable('256', 8), true);
  assert.equal(typeof L.validTable('0', 1), 'string');
});

test('formatting', () => {
  assert.equal(L.fmtBytes(0), '0 B');
  assert.equal(L.fmtBytes(1023), '1023 B');
  assert.equal(L.fmtBytes(1536), '1.50 KiB');
  assert.equal(L.fmtBytes(5 * 1024 * 1024), '5.00 MiB');
  assert.equal(L.fmtBytes(150 * 1024 * 1024 * 1024), '150 GiB');
  assert.equal(L.fmtBytes(-1), '-');
  assert.equal(L.fmtRate(2048), '2.00 KiB/s');
  assert.equal(L.fmtCount(1234567), '1\u202f234\u202f567');
  assert.equal(L.fmtScaled(950), '950');
  assert.equal(L.fmtScaled(12345), '12 k');
  assert.equal(L.fmtScaled(1500), '1.5 k');
});

test('status helpers', () => {
  assert.deepEqual(L.daemonState({ running: false, error: 'x' }), { running: false, error: 'x' });
  assert.deepEqual(L.daemonState({ running: true, mode: 'implicit' }), { running: true, error: null });
  assert.equal(L.daemonState(null).running, false);
  assert.equal(L.uplinkState({ addr4: '1.2.3.4', subflows: 2 }), 'active');
  assert.equal(L.uplinkState({ addr4: '1.2.3.4', subflows: 0 }), 'idle');
  assert.equal(L.uplinkState({ addr4: null, addr6: null, subflows: 0 }), 'no address');
  assert.deepEqual(L.nonZeroCounters({ b: 2, a: 1, z: 0 }), [['a', 1], ['b', 2]]);
  const by = L.subflowsByUplink({ subflows: [{ uplink: 'dsl', port: 1 }, { uplink: 'lte', port: 2 }, { uplink: 'dsl', port: 3 }] }, ['dsl', 'lte', 'sat']);
  assert.deepEqual(by.dsl.map((s) => s.port), [1, 3]);
  assert.deepEqual(by.sat, []);
});

test('uplink metric: byte counters when present, else subflows', () => {
  assert.deepEqual(L.uplinkMetric({ subflows: 3 }), { kind: 'subflows', counter: false, value: 3 });
  assert.deepEqual(L.uplinkMetric({ subflows: 3, tx_bytes: 10, rx_bytes: 5 }), { kind: 'bytes', counter: true, value: 15 });
});

test('History: gauges, rates, counter resets', () => {
  const h = new L.History(3);
  const st = (sent, sf, extra) => ({ uplinks: [Object.assign({ name: 'dsl', subflows: sf }, extra || {})], io: { sent } });
  h.push(st(100, 1), 0).push(st(400, 2), 1000).push(st(1000, 3), 3000);
  assert.deepEqual(h.get('uplink:dsl').map((p) => p.v), [1, 2, 3]);
  assert.equal(h.kind('uplink:dsl'), 'subflows');
  assert.deepEqual(h.get('io:sent').map((p) => p.v), [300, 300]);
  h.push(st(5, 1), 4000);   // daemon restarted: counter went down -> gap
  assert.deepEqual(h.get('io:sent').map((p) => p.v), [300, 300, null]);
  assert.equal(h.get('uplink:dsl').length, 3, 'bounded');
  // per-uplink byte counters plug in without changes
  const b = new L.History(10);
  b.push(st(0, 1, { tx_bytes: 1000, rx_bytes: 0 }), 0).push(st(0, 1, { tx_bytes: 5000, rx_bytes: 1000 }), 2000);
  assert.equal(b.kind('uplink:dsl'), 'bytes');
  assert.deepEqual(b.get('uplink:dsl').map((p) => p.v), [2500]);
});

test('History over the recorded status samples', () => {
  const series = require('./fixtures/status-series.json');
  const h = new L.History(60);
  series.forEach((s, i) => h.push(s, i * 3000));
  assert.equal(h.get('uplink:dsl').length, series.length);
  const rates = h.get('io:sent').map((p) => p.v);
  assert.equal(rates.length, series.length - 1);
  assert.ok(rates.every((r) => r > 0), 'the daemon sent packets during the transfer: ' + rates);
});

test('chart paths', () => {
  assert.equal(L.niceMax(0), 1);
  assert.equal(L.niceMax(3), 5);
  assert.equal(L.niceMax(120), 200);
  const p = L.chartPaths([{ t: 0, v: 0 }, { t: 1000, v: 5 }, { t: 2000, v: null }, { t: 3000, v: 2.5 }], 100, 50, 3000);
  assert.equal(p.max, 5);
  assert.equal(p.last, 2.5);
  assert.equal(p.line, 'M0,50L33.3,0M100,25');
  assert.ok(p.area.startsWith('M0,50L0,50L33.3,0L33.3,50Z'));
  assert.deepEqual(L.chartPaths([], 100, 50), { line: '', area: '', max: 1, last: null });
});

test('reserved options mirror the daemon', () => {
  const fs = require('fs');
  const src = fs.readFileSync(require('path').join(__dirname, '..', '..', 'src', 'config', 'mod.rs'), 'utf8');
  const block = /pub const RESERVED[^=]*=\s*&\[([\s\S]*?)\];/.exec(src)[1];
  const pairs = [...block.matchAll(/\("(\w+)",\s*"(\w+)"\)/g)].map((m) => m[1] + '.' + m[2]).sort();
  const mine = Object.entries(L.RESERVED).flatMap(([t, ks]) => ks.map((k) => t + '.' + k)).sort();
  assert.deepEqual(mine, pairs);
  assert.equal(L.MAX_UPLINKS, +/pub const MAX_UPLINKS: usize = (\d+);/.exec(src)[1]);
});

test('concentrator ADDR[:PORT] and exclude prefixes', () => {
  for (const v of ['192.0.2.10', '192.0.2.10:5124', '[2001:db8::10]:5124', '2001:db8::10']) assert.equal(L.validConcentrator(v), true, v);
  for (const v of ['vpn.example.net:5124', '192.0.2.10:0', '0.0.0.0', 'ff02::1', '2001:db8::10:5124x']) assert.equal(typeof L.validConcentrator(v), 'string', v);
  for (const v of ['10.0.0.0/8', '10.0.0.1', '2001:db8::/32', '::/0', '2001:db8:8000::/33']) assert.equal(L.validPrefix(v), true, v);
  for (const v of ['10.0.0.1/8', '10.0.0.0/33', '2001:db8::1/32', '::ffff:10.0.0.0/104', '2001:db8:4000::/33x']) assert.equal(typeof L.validPrefix(v), 'string', v);
  assert.equal(L.validSecret('0123456789abcdef'), true);
  assert.match(L.validSecret('0123456789abcde'), /16/);
});
