'use strict';
// (a) Unit tests of luci-app-mpconv's pure logic module (mpconv/logic.js), in node.
const test = require('node:test');
const assert = require('node:assert/strict');
const { loadLogic } = require('./lib/load-logic');

const L = loadLogic();
const ok = (v) => v === true;

test('port_range against the kernel\'s local ports', () => {
  const local = '32768\t60999\n';
  assert.deepEqual(L.localPortClash('60000-61999', local), [32768, 60999]);
  assert.deepEqual(L.localPortClash('1024-32768', local), [32768, 60999]);
  assert.equal(L.localPortClash('61000-65535', local), null);
  assert.equal(L.localPortClash('1024-32767', local), null);
  assert.equal(L.localPortClash('60000-61999', ''), null, 'unknown: not checked');
  assert.equal(L.localPortClash('60000-61999', 'garbage'), null);
  assert.equal(L.validPortRangeFor('61000-65535', local), true);
  assert.match(L.validPortRangeFor('60000-61999', local), /own local ports 32768-60999/);
  assert.match(L.validPortRangeFor('61000-61010', local), /at least 64/);
  assert.equal(L.validPortRangeFor('60000-61999', ''), true);
});

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
  assert.equal(L.uplinkState({ addr4: null, subflows: 0, state: 'down' }), 'down', "the daemon's state wins");
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
  // per-uplink byte counters (recorded): rates, one point fewer than samples
  assert.equal(h.kind('uplink:dsl'), 'bytes');
  assert.equal(h.get('uplink:dsl').length, series.length - 1);
  assert.ok(h.get('uplink:lte').every((p) => p.v > 0), 'lte carried data during the transfer');
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

test('probe kind, seconds and counts as the daemon reads them', () => {
  assert.deepEqual(L.PROBE.kinds, ['icmp', 'tcp', 'dns', 'none']);
  for (const v of L.PROBE.kinds) assert.equal(L.validProbeKind(v), true, v);
  for (const v of ['ICMP', 'ping', '', 'icmp ']) assert.equal(typeof L.validProbeKind(v), 'string', v);
  const { lo, hi } = L.PROBE.interval;
  assert.deepEqual([lo, hi], [0.1, 3600]);
  assert.deepEqual([L.PROBE.timeout.lo, L.PROBE.timeout.hi], [0.1, 60]);
  for (const v of ['1', '0.1', '.5', '0.125', '3600', '3600.000', '01', '0000001'])
    assert.equal(L.validSeconds(v, lo, hi), true, v);
  for (const v of ['0', '0.099', '0.05', '3600.001', '1.', '.', '', '1.2345', '1e1', '-1', '+1', '1,5', ' 1', 'inf', 'NaN', '12345678'])
    assert.equal(typeof L.validSeconds(v, lo, hi), 'string', v);
  assert.match(L.validSeconds('0', 0.1, 60), /from 0\.1 to 60 \(decimals allowed/);
  assert.equal(L.validSeconds('60', 0.1, 60), true);
  assert.equal(typeof L.validSeconds('60.001', 0.1, 60), 'string');
  assert.equal(L.validNumber('100', L.PROBE.down.lo, L.PROBE.down.hi), true);
  assert.equal(typeof L.validNumber('101', L.PROBE.up.lo, L.PROBE.up.hi), 'string');
});

test('probe targets: addresses, ports by kind, duplicates, at most 8', () => {
  for (const v of ['1.1.1.1', '2001:db8::1', '[2001:db8::1]', '::1', '::ffff:1.1.1.1', '2001:db8::1:53'])
    assert.equal(L.validProbeTarget(v, 'icmp'), true, v);
  for (const v of ['1.1.1.1:53', '[2001:db8::1]:53'])
    assert.match(L.validProbeTarget(v, 'icmp'), /ICMP probes take no port/, v);
  for (const v of ['1.1.1.1:53', '[2001:db8::1]:53', '1.1.1.1', '1.1.1.1:053', '1.1.1.1:65535'])
    assert.equal(L.validProbeTarget(v, 'tcp'), true, v);
  assert.match(L.validProbeTarget('1.1.1.1:0', 'dns'), /Port 0/);
  for (const v of ['1.1.1.1:65536', 'example.com', 'example.com:53', '[1.1.1.1]', '[1.1.1.1]:53', '01.1.1.1', '1.1.1.1:', ':53', '[2001:db8::1', 'fe80::1%eth0'])
    assert.match(L.validProbeTarget(v, 'dns'), /Expecting IP, IP:PORT or \[IPv6\]:PORT/, v);
  for (const v of ['0.0.0.0', '255.255.255.255', '224.0.0.1', '::', 'ff02::1', '::ffff:255.255.255.255'])
    assert.match(L.validProbeTarget(v, 'icmp'), /usable probe target/, v);
  // the kind's default port makes 1.1.1.1 and 1.1.1.1:53 the same DNS target, not TCP ones
  assert.equal(L.probeTarget('1.1.1.1', 'dns').key, L.probeTarget('1.1.1.1:53', 'dns').key);
  assert.notEqual(L.probeTarget('1.1.1.1', 'tcp').key, L.probeTarget('1.1.1.1:53', 'tcp').key);
  assert.equal(L.probeTarget('::ffff:1.1.1.1', 'icmp').key, L.probeTarget('1.1.1.1', 'icmp').key);
  assert.equal(L.validProbeTargets([], 'icmp'), true);
  assert.equal(L.validProbeTargets('1.1.1.1', 'icmp'), true, 'one value');
  assert.equal(L.validProbeTargets(['1.1.1.1', '9.9.9.9'], 'icmp'), true);
  assert.equal(L.validProbeTargets(['1.1.1.1', '1.1.1.1:53'], 'tcp'), true);
  assert.equal(L.validProbeTargets(['1.1.1.1', '1.1.1.1:53'], 'dns'), '1.1.1.1:53 is listed twice (as 1.1.1.1)');
  assert.equal(L.validProbeTargets(['1.1.1.1', '1.1.1.1'], 'icmp'), '1.1.1.1 is listed twice');
  assert.match(L.validProbeTargets(['1.1.1.1', 'x'], 'icmp'), /^x: Expecting/);
  const eight = [1, 2, 3, 4, 5, 6, 7, 8].map((i) => '192.0.2.' + i);
  assert.equal(L.validProbeTargets(eight, 'icmp'), true);
  assert.match(L.validProbeTargets(eight.concat(['192.0.2.9']), 'icmp'), /At most 8/);
});

test('probe targets: the limit and kinds follow src/config/mod.rs', () => {
  const fs = require('fs');
  const src = fs.readFileSync(require('path').join(__dirname, '..', '..', 'src', 'config', 'mod.rs'), 'utf8');
  assert.equal(L.PROBE.targets, +/pub const MAX_PROBE_TARGETS: usize = (\d+);/.exec(src)[1]);
  for (const k of L.PROBE.kinds) assert.ok(src.includes('"' + k + '" => Ok(ProbeKind::'), k);
  for (const [key, r] of [['probe_interval', L.PROBE.interval], ['probe_timeout', L.PROBE.timeout]]) {
    const m = new RegExp('"' + key + '", \\|v\\| seconds\\(v, ([0-9_]+), ([0-9_]+)\\)').exec(src);
    assert.ok(m, key + ' bounds not found in src/config/mod.rs');
    assert.deepEqual([r.lo * 1000, r.hi * 1000], [+m[1].replace(/_/g, ''), +m[2].replace(/_/g, '')], key);
  }
  const count = /let count = \|v: &str\| number\(v, (\d+), (\d+)\)/.exec(src);
  assert.ok(count, 'probe_down/probe_up bounds not found');
  for (const r of [L.PROBE.down, L.PROBE.up]) assert.deepEqual([r.lo, r.hi], [+count[1], +count[2]]);
});

test('uplink badge, RTT and loss', () => {
  assert.deepEqual(L.uplinkBadge({ state: 'up' }), { state: 'up', label: 'up', cls: 'success' });
  assert.equal(L.uplinkBadge({ state: 'degraded' }).cls, 'warning');
  assert.equal(L.uplinkBadge({ state: 'down' }).cls, 'danger');
  assert.equal(L.uplinkBadge({ state: 'weird' }).cls, 'notice');
  assert.deepEqual(L.uplinkBadge({ addr4: '1.2.3.4', subflows: 1 }), { state: 'active', label: 'active', cls: 'success' }, 'older status');
  assert.equal(L.uplinkBadge({ addr4: '1.2.3.4', subflows: 0 }).cls, 'notice');
  assert.equal(L.fmtRtt(0), '-', '0: no answer yet');
  assert.equal(L.fmtRtt(undefined), '-');
  assert.equal(L.fmtRtt(850), '850 \u00b5s');
  assert.equal(L.fmtRtt(1234), '1.23 ms');
  assert.equal(L.fmtRtt(12987), '13.0 ms');
  assert.equal(L.fmtRtt(250000), '250 ms');
  assert.equal(L.fmtRtt(1500000), '1.50 s');
  assert.equal(L.fmtLoss(0), '0 %');
  assert.equal(L.fmtLoss(0.025), '2.5 %');
  assert.equal(L.fmtLoss(0.3), '30 %');
  assert.equal(L.fmtLoss(1), '100 %');
  assert.equal(L.fmtLoss(null), '-');
  assert.deepEqual(L.probeSummary({ probe: 'icmp', probe_rtt_us: 12987, probe_loss: 0 }), { kind: 'icmp', active: true, rtt: '13.0 ms', loss: '0 %' });
  assert.deepEqual(L.probeSummary({ probe: 'tcp', probe_rtt_us: 0, probe_loss: 1 }), { kind: 'tcp', active: true, rtt: '-', loss: '100 %' });
  assert.equal(L.probeSummary({ probe: 'none' }).active, false);
  assert.deepEqual(L.probeSummary({ name: 'dsl' }), { kind: '-', active: false, rtt: '-', loss: '-' }, 'older status');
});

test('handover answers', () => {
  assert.deepEqual(L.handoverResult('lte', { ok: true, uplink: 'lte', connections: 3 }), { ok: true, text: 'Handover to lte: 3 connections moved.' });
  assert.equal(L.handoverResult('lte', { ok: true, uplink: 'lte', connections: 1 }).text, 'Handover to lte: 1 connection moved.');
  assert.equal(L.handoverResult('lte', { ok: true, uplink: 'lte', connections: 0 }).text, 'Handover to lte: 0 connections moved.');
  assert.deepEqual(L.handoverResult('sat', { error: "no uplink 'sat'" }), { ok: false, text: "Handover to sat failed: no uplink 'sat'" });
  assert.equal(L.handoverResult('lte', {}).ok, false);
  assert.match(L.handoverResult('lte', null).text, /failed: no answer/);
  assert.equal(L.handoverResult('lte', { ok: true, error: 'x' }).ok, false, 'an error wins');
});

test('the recorded status samples carry the health fields', () => {
  for (const s of require('./fixtures/status-series.json'))
    for (const u of s.uplinks) {
      assert.ok(['up', 'degraded', 'down'].includes(u.state), u.name + ' state');
      assert.equal(typeof u.backup, 'boolean');
      assert.ok(L.PROBE.kinds.includes(u.probe));
      assert.ok(Number.isInteger(u.probe_rtt_us) && u.probe_rtt_us >= 0);
      assert.ok(u.probe_loss >= 0 && u.probe_loss <= 1);
    }
});
