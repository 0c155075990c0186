'use strict';
// (b) Headless-browser test of the mpconv LuCI views.
//
// LuCI's runtime is not installable here, so the views run on a STAND-IN for it
// (standin/runtime.js: the public API the views use -- L.require, form, uci, rpc,
// poll, ui, dom, tools.widgets -- rendering real DOM). lib/server.js serves the
// views from luci-app/ and answers ubus JSON-RPC: `mpconv status` from recorded
// daemon output (fixtures/status-series.json, recorded with record_status.py),
// `mpconv handover` like the rpcd plugin, `uci` from an in-memory copy of the
// shipped /etc/config/mpconv. Chromium is Debian's /usr/bin/chromium, driven by
// playwright-core, with a fresh profile.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync, spawnSync } = require('child_process');
const { chromium } = require('playwright-core');
const { createBackend, start, REPO } = require('./lib/server');
const L = require('./lib/load-logic').loadLogic();

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SHOTS = path.join(__dirname, 'screenshots');
const MPCONV = process.env.MPCONV_BIN || path.join(REPO, 'target', 'debug', 'mpconv');

let backend, server, ctx, profile, base;
const pageErrors = [];

test.before(async () => {
  backend = createBackend();
  server = await start(backend);
  base = 'http://127.0.0.1:' + server.address().port;
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'mpconv-luci-profile-'));
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: ARGS,
    viewport: { width: 1180, height: 900 }, deviceScaleFactor: 1,
  });
  fs.mkdirSync(SHOTS, { recursive: true });
});

test.after(async () => {
  if (ctx) await ctx.close();
  if (server) server.close();
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
});

async function openView(view, extra = '', clock = false) {
  const page = await ctx.newPage();
  // A fake clock makes the status samples 3 s apart however fast the test polls.
  // Paused, so that only fastForward moves it (not the real time the test takes).
  if (clock) {
    const t0 = new Date('2025-06-01T12:00:00Z');
    await page.clock.install({ time: t0 });
    await page.clock.pauseAt(t0);
  }
  page.setDefaultTimeout(8000);
  page.on('pageerror', (e) => pageErrors.push(view + ': ' + e.message));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(view + ': console: ' + m.text()); });
  await page.goto(base + '/?view=' + view + extra);
  await page.waitForSelector('body[data-view-ready], body[data-view-error]');
  assert.equal(await page.getAttribute('body', 'data-view-error'), null, 'view failed to load');
  return page;
}

const callsOf = (object, method) => backend.state.calls.filter((c) => c.object === object && (!method || c.method === method));
const field = (page, sid, opt) => page.locator('[id="cbi-mpconv-' + sid + '-' + opt + '"]');
const widget = (page, sid, opt) => page.locator('[id="widget.cbid.mpconv.' + sid + '.' + opt + '"]');
const errorOf = (page, sid, opt) => field(page, sid, opt).locator('.cbi-value-error');

async function expectError(page, sid, opt, value, re) {
  await widget(page, sid, opt).fill(value);
  const err = errorOf(page, sid, opt);
  await err.waitFor({ state: 'visible' });
  assert.match(await err.textContent(), re, opt + '=' + value);
  assert.ok(await widget(page, sid, opt).evaluate((e) => e.classList.contains('cbi-input-invalid')), opt + ' marked invalid');
}

async function expectOk(page, sid, opt, value) {
  await widget(page, sid, opt).fill(value);
  assert.equal(await errorOf(page, sid, opt).isVisible(), false, opt + '=' + value + ' should be accepted, got: ' + await errorOf(page, sid, opt).textContent());
}

test('settings: fields, validation, uplinks, save & apply writes UCI the daemon accepts', async () => {
  const page = await openView('mpconv/settings');

  // The shipped default config is loaded: disabled, implicit, br-lan.
  assert.equal(await widget(page, 'main', 'enabled').isChecked(), false);
  assert.equal(await widget(page, 'main', 'mode').inputValue(), 'implicit');
  assert.deepEqual(await widget(page, 'main', 'lan').evaluate((s) => [...s.selectedOptions].map((o) => o.value)), ['br-lan']);
  assert.equal(await field(page, 'main', 'concentrator').isVisible(), false, 'concentrator only in explicit mode');

  // Explicit mode shows the concentrator fields, with validation.
  await widget(page, 'main', 'mode').selectOption('explicit');
  await field(page, 'main', 'concentrator').waitFor({ state: 'visible' });
  assert.equal(await widget(page, 'main', 'secret').getAttribute('type'), 'password');
  await expectError(page, 'main', 'concentrator', 'vpn.example.net:5124', /ADDR\[:PORT\]/);
  await expectOk(page, 'main', 'concentrator', '192.0.2.10:5124');
  await expectError(page, 'main', 'secret', 'short', /at least 16/);
  await expectOk(page, 'main', 'secret', 'sixteen-chars-ok!');
  await widget(page, 'main', 'mode').selectOption('implicit');
  await field(page, 'main', 'concentrator').waitFor({ state: 'hidden' });

  // port_range as the daemon checks it.
  await expectError(page, 'main', 'port_range', '10-20', /'LO-HI' with 1024 <= LO <= HI <= 65535/);
  await expectError(page, 'main', 'port_range', '61000-61010', /11 ports; at least 64/);
  // ...and clear of the kernel's local ports (32768-60999 here), read through rpcd's file.
  await expectError(page, 'main', 'port_range', '60000-61999', /own local ports 32768-60999.*above 60999/);
  assert.deepEqual(callsOf('file', 'read').map((c) => c.args.path), ['/proc/sys/net/ipv4/ip_local_port_range']);
  await expectError(page, 'main', 'max_connections', '0', /1 to 65536/);
  await expectOk(page, 'main', 'max_connections', '2048');
  await widget(page, 'main', 'checksum').check();
  await widget(page, 'main', 'log_level').selectOption('debug');

  // Saving with an invalid field is refused, nothing is written.
  const before = backend.state.calls.length;
  await page.click('#btn-save-apply');
  await page.locator('.alert-message.danger').first().waitFor();
  assert.match(await page.locator('.alert-message.danger').first().textContent(), /Subflow source ports/);
  assert.equal(callsOf('uci', 'set').length + callsOf('uci', 'apply').length, 0, 'nothing saved');
  assert.equal(backend.state.calls.length, before, 'no rpc on a refused save');
  await page.locator('.alert-message.danger button').first().click();
  await expectOk(page, 'main', 'port_range', '62000-63999');

  // Advanced tab.
  await page.click('.cbi-tabmenu li[data-tab="advanced"] a');
  await expectError(page, 'main', 'mark', '0x6d70001', /low 8 bits zero/);
  await expectOk(page, 'main', 'mark', '0x6d80000');
  await expectError(page, 'main', 'idle_timeout', '5', /10 to 86400/);
  await expectOk(page, 'main', 'idle_timeout', '3600');
  await widget(page, 'main', 'firewall').selectOption('nftables');
  await page.click('.cbi-tabmenu li[data-tab="general"] a');

  // Enabling needs an uplink.
  await widget(page, 'main', 'enabled').check();
  await errorOf(page, 'main', 'enabled').waitFor({ state: 'visible' });
  assert.match(await errorOf(page, 'main', 'enabled').textContent(), /at least one enabled uplink/);
  await widget(page, 'main', 'enabled').uncheck();

  // Two uplinks, through the grid's add row.
  const addUplink = async (name) => {
    await page.fill('.cbi-section-create-name', name);
    await page.click('.cbi-button-add');
    await page.locator('tr[data-sid="' + name + '"]').waitFor();
  };
  const dev = (sid) => widget(page, sid, 'device');
  await addUplink('wan');
  await errorOf(page, 'wan', 'device').waitFor({ state: 'visible' });
  assert.match(await errorOf(page, 'wan', 'device').textContent(), /Required/);
  await dev('wan').fill('eth1');
  await addUplink('lte');
  await expectError(page, 'wan', 'gateway', '192.168.100.300', /IPv4 address/);
  await expectOk(page, 'wan', 'gateway', '192.168.100.1');
  await expectError(page, 'wan', 'mtu', '500', /576 to 9000/);
  await expectOk(page, 'wan', 'mtu', '1492');
  await dev('lte').fill('eth1');
  await errorOf(page, 'lte', 'device').waitFor({ state: 'visible' });
  assert.match(await errorOf(page, 'lte', 'device').textContent(), /already used by uplink wan/);
  await dev('lte').fill('br-lan');
  assert.match(await errorOf(page, 'lte', 'device').textContent(), /also a LAN device/);
  await dev('lte').fill('wwan0');
  assert.equal(await errorOf(page, 'lte', 'device').isVisible(), false);
  await expectError(page, 'lte', 'gateway6', 'fe80::1%wwan0', /without a %zone/);
  await expectOk(page, 'lte', 'gateway6', 'fe80::1');
  await expectError(page, 'lte', 'interface', 'wwan-4', /netifd interface name/);
  await expectOk(page, 'lte', 'interface', 'wwan');
  await expectError(page, 'lte', 'weight', '0', /1 to 100/);
  await expectOk(page, 'lte', 'weight', '');

  // Backup flag and health probes: kind in the row, targets and timings in the row's
  // dialog (modalonly; the stand-in shows them in a second row).
  assert.equal(await widget(page, 'wan', 'probe').inputValue(), 'icmp', 'probe kind defaults to icmp');
  assert.equal(await widget(page, 'wan', 'backup').isChecked(), false);
  assert.equal(await page.locator('tr.cbi-section-table-titles th[data-widget="probe_target"]').count(), 0, 'targets not a grid column');
  await expectError(page, 'wan', 'probe_target', '1.1.1.1\n300.1.1.1', /300\.1\.1\.1: Expecting IP, IP:PORT or \[IPv6\]:PORT/);
  await expectError(page, 'wan', 'probe_target', '1.1.1.1\n1.1.1.1', /listed twice/);
  await expectError(page, 'wan', 'probe_target', '9.9.9.9:53', /ICMP probes take no port/);
  await expectError(page, 'wan', 'probe_target', '224.0.0.1', /usable probe target/);
  await expectOk(page, 'wan', 'probe_target', '1.1.1.1\n9.9.9.9');
  await expectError(page, 'wan', 'probe_interval', '0', /seconds from 0\.1/);
  await expectError(page, 'wan', 'probe_interval', '1,5', /decimals allowed/);
  await expectOk(page, 'wan', 'probe_interval', '0.5');
  await expectError(page, 'wan', 'probe_timeout', '-1', /seconds from/);
  await expectOk(page, 'wan', 'probe_timeout', '1.5');
  await expectError(page, 'wan', 'probe_down', '0', /1 to 100/);
  await expectOk(page, 'wan', 'probe_down', '4');
  await expectError(page, 'wan', 'probe_up', '2.5', /whole number/);
  await expectOk(page, 'wan', 'probe_up', '');
  await widget(page, 'lte', 'backup').check();
  await widget(page, 'lte', 'probe').selectOption('dns');
  await expectError(page, 'lte', 'probe_target', '8.8.8.8\n8.8.8.8:53', /8\.8\.8\.8:53 is listed twice \(as 8\.8\.8\.8\)/);
  await expectError(page, 'lte', 'probe_target', '8.8.8.8:0', /Port 0/);
  await expectOk(page, 'lte', 'probe_target', '[2001:4860:4860::8888]:53\n8.8.8.8');
  // the kind decides whether a port is allowed: back to icmp, the port is refused
  await widget(page, 'lte', 'probe').selectOption('icmp');
  await errorOf(page, 'lte', 'probe_target').waitFor({ state: 'visible' });
  assert.match(await errorOf(page, 'lte', 'probe_target').textContent(), /take no port/);
  await widget(page, 'lte', 'probe').selectOption('dns');
  assert.equal(await errorOf(page, 'lte', 'probe_target').isVisible(), false);

  // A third, disabled placeholder needs no device.
  await addUplink('spare');
  await widget(page, 'spare', 'disabled').check();
  assert.equal(await errorOf(page, 'spare', 'device').isVisible(), false);
  await widget(page, 'spare', 'disabled').uncheck();
  assert.match(await errorOf(page, 'spare', 'device').textContent(), /Required/);
  // A netifd interface alone is enough (the daemon asks netifd for the device), but not one in use.
  await expectError(page, 'spare', 'interface', 'wwan', /already used by uplink lte/);
  await expectOk(page, 'spare', 'interface', 'wan6');
  assert.equal(await errorOf(page, 'spare', 'device').isVisible(), false);
  await widget(page, 'spare', 'disabled').check();

  await widget(page, 'main', 'enabled').check();
  assert.equal(await errorOf(page, 'main', 'enabled').isVisible(), false);

  // (Adding an uplink already stages the form's values, as in LuCI: merge all sets.)
  await page.click('#btn-save-apply');
  await page.locator('.alert-message.info').waitFor();
  assert.deepEqual(callsOf('uci', 'add').map((c) => c.args.name), ['wan', 'lte', 'spare']);
  const sets = callsOf('uci', 'set');
  const main = Object.assign({}, ...sets.filter((c) => c.args.section === 'main').map((c) => c.args.values));
  assert.deepEqual(main, {
    enabled: '1', checksum: '1', max_connections: '2048', port_range: '62000-63999', log_level: 'debug',
    mark: '0x6d80000', idle_timeout: '3600', firewall: 'nftables',
  }, 'main section changes');
  const wan = Object.assign({}, ...sets.filter((c) => c.args.section === 'wan').map((c) => c.args.values));
  // (a ListValue writes its default, as LuCI's does: probe 'icmp')
  assert.deepEqual(wan, { device: 'eth1', gateway: '192.168.100.1', mtu: '1492', probe: 'icmp', probe_target: ['1.1.1.1', '9.9.9.9'],
    probe_interval: '0.5', probe_timeout: '1.5', probe_down: '4' });
  const lte = Object.assign({}, ...sets.filter((c) => c.args.section === 'lte').map((c) => c.args.values));
  assert.deepEqual(lte, { device: 'wwan0', gateway6: 'fe80::1', interface: 'wwan', backup: '1', probe: 'dns',
    probe_target: ['[2001:4860:4860::8888]:53', '8.8.8.8'] });
  assert.ok(!sets.some((c) => ['concentrator', 'secret', 'scheduler', 'exclude', 'exclude_port'].some((k) => k in c.args.values)), 'inactive explicit-mode fields not written');
  assert.equal(callsOf('uci', 'apply').length, 1, 'uci apply');
  assert.equal(callsOf('uci', 'confirm').length, 1, 'uci confirm');

  // The resulting /etc/config/mpconv passes the daemon's own check.
  const text = backend.configText();
  const file = path.join(os.tmpdir(), 'mpconv-luci-saved-' + process.pid + '.conf');
  fs.writeFileSync(file, text);
  const r = spawnSync(MPCONV, ['check', '-c', file], { encoding: 'utf8' });
  fs.rmSync(file, { force: true });
  assert.equal(r.status, 0, 'mpconv check on the saved config:\n' + text + '\n' + r.stdout + r.stderr);
  assert.match(r.stdout, /enabled: yes/);
  assert.match(r.stdout, /uplink wan: device eth1 gateway 192\.168\.100\.1 mtu 1492/);
  assert.match(r.stdout, /uplink lte: device wwan0 gateway6 fe80::1 interface wwan /);
  assert.doesNotMatch(r.stdout, /uplink spare/);
  // the daemon read the backup flag and the probe settings as the form meant them
  assert.match(r.stdout, /uplink wan: icmp probes to 1\.1\.1\.1 9\.9\.9\.9 every 0\.5 s, timeout 1\.5 s, down after 4, up after 2/);
  assert.match(r.stdout, /uplink lte: backup, dns probes to \[2001:4860:4860::8888\]:53 8\.8\.8\.8:53 every 1 s, timeout 2 s, down after 3, up after 2/);

  // After the reload the form shows what was saved.
  assert.equal(await widget(page, 'main', 'enabled').isChecked(), true);
  assert.equal(await widget(page, 'main', 'port_range').inputValue(), '62000-63999');
  await page.screenshot({ path: path.join(SHOTS, 'settings.png'), fullPage: true });

  // Removing an uplink deletes its section.
  backend.state.calls.length = 0;
  await page.locator('tr[data-sid="spare"] .cbi-button-remove').click();
  await page.locator('tr[data-sid="spare"]').waitFor({ state: 'detached' });
  assert.deepEqual(callsOf('uci', 'delete').map((c) => c.args), [{ config: 'mpconv', section: 'spare' }]);
  await page.close();
});

test('status: uplinks, graphs, connections, counters, handover, daemon down', async () => {
  backend.state.statusMode = 'series';
  backend.state.seriesIndex = 0;
  backend.state.calls.length = 0;
  const series = backend.state.series;
  const page = await openView('mpconv/status', '&poll=manual', true);

  const intervals = await page.evaluate(() => window.__standin.poll.intervals());
  assert.equal(intervals.length, 1);
  assert.ok(intervals[0] >= 2 && intervals[0] <= 5, 'poll interval ' + intervals[0]);
  assert.match(await page.textContent('#mpconv-daemon'), /mpconv is running.*implicit mode, 2 uplinks, 3 converted connections/s);

  const POLLS = 7;   // samples 1..7 of the recording, all during the transfer
  for (let i = 0; i < POLLS; i++) {
    await page.clock.fastForward(intervals[0] * 1000);
    await page.evaluate(() => window.__standin.poll.runAll());
  }
  const shown = series[POLLS];
  assert.equal(callsOf('mpconv', 'status').length, POLLS + 1, 'load + polls');

  const rows = page.locator('tr.mpconv-uplink');
  assert.equal(await rows.count(), shown.uplinks.length);
  for (const u of shown.uplinks) {
    const row = page.locator('tr.mpconv-uplink[data-uplink="' + u.name + '"]');
    const text = await row.textContent();
    assert.ok(text.includes(u.device) && text.includes(u.addr4) && text.includes(String(u.mtu)), text);
    if (u.addr6) assert.ok(text.includes(u.addr6), text);
    assert.equal((await row.locator('.mpconv-subflows').textContent()).trim(), String(u.subflows));
    assert.equal((await row.locator('.mpconv-state').textContent()).trim(), u.state);
    assert.equal(await row.getAttribute('data-state'), u.state);
    assert.equal(await row.locator('.mpconv-backup').count(), u.backup ? 1 : 0);
    assert.equal((await row.locator('.mpconv-probe-kind').textContent()).trim(), u.probe);
    const chart = row.locator('svg.mpconv-chart');
    // the status has per-uplink byte counters: the graph shows bytes/s (a rate: one point
    // fewer than samples)
    assert.equal(await chart.getAttribute('data-kind'), 'bytes');
    assert.equal(await chart.getAttribute('data-points'), String(POLLS));
    const bps = (series[POLLS].uplinks.find((x) => x.name === u.name).rx_bytes + series[POLLS].uplinks.find((x) => x.name === u.name).tx_bytes
      - series[POLLS - 1].uplinks.find((x) => x.name === u.name).rx_bytes - series[POLLS - 1].uplinks.find((x) => x.name === u.name).tx_bytes) / intervals[0];
    assert.equal((await chart.locator('text').last().textContent()).trim(), L.fmtRate(bps));
    // health, as the daemon reported it, formatted by mpconv/logic.js
    assert.equal((await row.locator('.mpconv-rtt').textContent()).trim(), L.fmtRtt(u.probe_rtt_us));
    assert.equal((await row.locator('.mpconv-loss').textContent()).trim(), L.fmtLoss(u.probe_loss) + ' loss');
    assert.ok((await chart.locator('path.mpconv-line').getAttribute('d')).startsWith('M'));
  }
  const io = page.locator('#mpconv-io-chart svg');
  assert.equal(await io.getAttribute('data-points'), String(POLLS));
  // newest rate = difference of io.sent between the last two samples / 3 s
  const rate = (series[POLLS].io.sent - series[POLLS - 1].io.sent) / intervals[0];
  assert.match(await io.locator('text').last().textContent(), new RegExp('^' + (rate / 1000).toFixed(1).replace('.', '\\.') + ' k pkt/s$'));

  const conns = page.locator('tr.mpconv-conn');
  assert.equal(await conns.count(), shown.connections.length);
  for (let i = 0; i < shown.connections.length; i++) {
    const c = shown.connections[i], row = conns.nth(i);
    const text = await row.textContent();
    assert.ok(text.includes(c.client) && text.includes(c.server), text);
    for (const sf of c.subflows)
      assert.ok((await row.locator('td.mpconv-sf[data-uplink="' + sf.uplink + '"]').textContent())
        .includes('port ' + sf.port + ' (' + sf.state + (sf.backup ? ', backup)' : ')')));
  // after the handover to lte (recorded between samples 5 and 6) the dsl subflows are backups
  assert.ok(shown.connections.every((c) => c.subflows.every((sf) => sf.backup === (sf.uplink === 'dsl'))), 'recorded handover');
  assert.match(await conns.nth(0).locator('td.mpconv-sf[data-uplink="dsl"]').textContent(), /, backup\)/);
  }

  const counters = await page.$$eval('tr.mpconv-counter', (trs) => trs.map((t) => t.getAttribute('data-counter')));
  const nonzero = Object.keys(shown.counters).filter((k) => shown.counters[k] !== 0).sort();
  assert.deepEqual(counters, nonzero);
  assert.ok(counters.includes('MPCapableSYNTX') && !counters.includes('MPFailRx'));
  assert.match(await page.textContent('tr.mpconv-counter[data-counter="ConvConverted"]'), new RegExp(String(shown.counters.ConvConverted)));
  assert.equal(await page.locator('tr.mpconv-io').count(), Object.keys(shown.io).length);

  // Health of the recorded sample 7: both uplinks up, ICMP probes answered.
  const cell = (name, cls) => page.locator('tr.mpconv-uplink[data-uplink="' + name + '"] ' + cls);
  assert.deepEqual(shown.uplinks.map((u) => [u.state, u.probe]), [['up', 'icmp'], ['up', 'icmp']]);
  assert.ok(shown.uplinks.every((u) => u.probe_rtt_us > 0), 'probes answered during the recording');
  assert.ok(await cell('dsl', '.mpconv-state').evaluate((e) => e.classList.contains('success')));

  // A made-up next sample (a copy of the last one): lte degraded with some loss, dsl
  // without probes, and a third uplink: a backup that is down (every probe lost, no RTT yet).
  const extra = JSON.parse(JSON.stringify(series[series.length - 1]));
  extra.uplinks[0].probe = 'none';
  extra.uplinks[0].probe_rtt_us = 0;
  Object.assign(extra.uplinks[1], { state: 'degraded', probe_rtt_us: 72140, probe_loss: 0.3 });
  extra.uplinks.push({ name: 'sat', device: 'wwan1', addr4: '100.64.3.2', addr6: null, mtu: 1500, subflows: 0,
    rx_bytes: 0, tx_bytes: 0, rx_bps: 0, tx_bps: 0, srtt_us: 0,
    state: 'down', backup: true, probe: 'tcp', probe_rtt_us: 0, probe_loss: 1.0 });
  backend.state.series = series.slice(0, POLLS + 1).concat([extra]);
  backend.state.seriesIndex = POLLS + 1;
  await page.clock.fastForward(intervals[0] * 1000);
  await page.evaluate(() => window.__standin.poll.runAll());
  assert.equal(await rows.count(), 3);
  assert.equal(await page.getAttribute('tr.mpconv-uplink[data-uplink="sat"]', 'data-state'), 'down');
  assert.ok(await cell('sat', '.mpconv-state').evaluate((e) => e.classList.contains('danger')));
  assert.equal((await cell('sat', '.mpconv-backup').textContent()).trim(), 'backup');
  assert.equal(await page.locator('.mpconv-backup').count(), 1, 'only sat is a backup');
  assert.equal((await cell('sat', '.mpconv-rtt').textContent()).trim(), '-');
  assert.equal((await cell('sat', '.mpconv-loss').textContent()).trim(), '100 % loss');
  assert.equal((await cell('dsl', '.mpconv-probe').textContent()).trim(), 'off');
  assert.equal(await cell('dsl', '.mpconv-rtt').count(), 0);
  assert.equal((await cell('lte', '.mpconv-state').textContent()).trim(), 'degraded');
  assert.ok(await cell('lte', '.mpconv-state').evaluate((e) => e.classList.contains('warning')));
  assert.equal((await cell('lte', '.mpconv-rtt').textContent()).trim(), '72.1 ms');
  assert.equal((await cell('lte', '.mpconv-loss').textContent()).trim(), '30 % loss');

  await page.screenshot({ path: path.join(SHOTS, 'status.png'), fullPage: true });

  // Handover: rpc call with the uplink name, the plugin's answer shown as a notification.
  await page.locator('tr.mpconv-uplink[data-uplink="lte"] .mpconv-handover').click();
  const okNote = page.locator('#tooltip-notifications .alert-message.info');
  await okNote.waitFor();
  assert.match(await okNote.textContent(), /Handover to lte: 3 connections moved\./);
  assert.deepEqual(callsOf('mpconv', 'handover').map((c) => c.args), [{ uplink: 'lte' }]);
  // An error answer ({"error": ...}) is shown as such.
  backend.state.handoverMode = 'error';
  await page.locator('tr.mpconv-uplink[data-uplink="dsl"] .mpconv-handover').click();
  const note = page.locator('#tooltip-notifications .alert-message.danger');
  await note.waitFor();
  assert.match(await note.textContent(), /Handover to dsl failed: cannot reach mpconv at /);
  assert.deepEqual(callsOf('mpconv', 'handover').map((c) => c.args), [{ uplink: 'lte' }, { uplink: 'dsl' }]);
  backend.state.handoverMode = 'ok';

  // Daemon down: the plugin's {"running": false, "error"} is shown, tables go away.
  backend.state.statusMode = 'down';
  await page.evaluate(() => window.__standin.poll.runAll());
  assert.match(await page.textContent('#mpconv-daemon'), /mpconv is not running.*cannot reach mpconv/s);
  assert.equal(await page.locator('tr.mpconv-uplink').count(), 0);
  await page.close();
});

test('settings: port_range unchecked against local ports the ACL cannot read', async () => {
  backend.state.localPorts = null;
  try {
    const page = await openView('mpconv/settings');
    // The daemon still refuses an overlap at start, with the file and key in its error.
    await expectOk(page, 'main', 'port_range', '60000-61999');
    await page.close();
  } finally {
    backend.state.localPorts = '32768\t60999\n';
  }
});

test('ACL: grants what the pages called, and only that', () => {
  const acl = JSON.parse(fs.readFileSync(path.join(REPO, 'luci-app', 'luci-app-mpconv', 'root',
    'usr', 'share', 'rpcd', 'acl.d', 'luci-app-mpconv.json'), 'utf8'))['luci-app-mpconv'];
  const granted = new Set();
  for (const mode of ['read', 'write'])
    for (const [obj, methods] of Object.entries(acl[mode].ubus || {}))
      methods.forEach((m) => granted.add(obj + '.' + m));
  // uci calls are granted by the "uci" scope; luci-rpc (the device list) by luci-base's ACL.
  const used = new Set(backend.state.calls
    .filter((c) => c.object !== 'uci' && c.object !== 'luci-rpc')
    .map((c) => c.object + '.' + c.method));
  assert.deepEqual([...used].sort(), [...granted].sort());
  assert.deepEqual(acl.read.uci, ['mpconv']);
  assert.deepEqual(acl.write.uci, ['mpconv']);
  const files = new Set(callsOf('file', 'read').map((c) => c.args.path));
  assert.deepEqual(Object.keys(acl.read.file).sort(), [...files].sort());
  assert.equal(acl.write.file, undefined);
});

test('no page errors', () => {
  assert.deepEqual(pageErrors, []);
});
