'use strict';
// (c) Every option the settings form can write is a key the daemon's loader
// understands, and the form's validation agrees with the daemon's.
//
// The settings view is loaded in node on the stand-in runtime (standin/runtime.js,
// not LuCI; without a document, Map.render() resolves to the Map) and the options
// it declares are collected. Then, with target/debug/mpconv (MPCONV_BIN):
//  - a config with every option at a valid value passes `mpconv check`;
//  - each option alone at a bad value fails, naming the option -- except the
//    RESERVED ones (src/config/mod.rs), which the daemon accepts and ignores;
//  - for edge-case values, the form's verdict equals the daemon's.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const { createRuntime } = require('./standin/runtime');
const { createBackend, RESOURCES, REPO } = require('./lib/server');
const uciText = require('./lib/uci-text');

const MPCONV = process.env.MPCONV_BIN || path.join(REPO, 'target', 'debug', 'mpconv');
const MODRS = fs.readFileSync(path.join(REPO, 'src', 'config', 'mod.rs'), 'utf8');

function rustList(name) {
  const m = new RegExp('const ' + name + '[^=]*=\\s*&\\[([\\s\\S]*?)\\];').exec(MODRS);
  assert.ok(m, name + ' not found in src/config/mod.rs');
  return m[1];
}
const KNOWN = {
  mpconv: [...rustList('MPCONV_KEYS').matchAll(/"(\w+)"/g)].map((m) => m[1]),
  uplink: [...rustList('UPLINK_KEYS').matchAll(/"(\w+)"/g)].map((m) => m[1]),
};
const RESERVED = { mpconv: [], uplink: [] };
for (const m of rustList('RESERVED').matchAll(/\("(\w+)",\s*"(\w+)"\)/g)) RESERVED[m[1]].push(m[2]);

// A valid and a bad value for every option the form declares (a new option in the
// form fails the coverage check until it gets entries here).
const VALID = {
  mpconv: {
    enabled: '1', mode: 'explicit', concentrator: '192.0.2.10:5124', secret: 'sixteen-chars-ok!', scheduler: 'weighted',
    exclude: ['192.0.2.0/24', '2001:db8::/32'], exclude_port: ['5060', '443'],
    lan: ['br-lan', 'lan1'], checksum: '1', max_connections: '2048', port_range: '62000-63999',
    log_level: 'debug', queue: '3', idle_timeout: '3600', firewall: 'nftables', mark: '0x6d80000', table: '7000',
  },
  uplink: {
    device: 'eth1', interface: 'wan', gateway: '192.168.100.1', gateway6: 'fe80::1', mtu: '1492', backup: '1', weight: '10', disabled: '0',
    probe: 'dns', probe_target: ['9.9.9.9:53', '[2001:db8::53]:53'], probe_interval: '2.5', probe_timeout: '1.5', probe_down: '5', probe_up: '3',
  },
};
const BAD = {
  mpconv: {
    enabled: 'maybe', mode: 'turbo', concentrator: 'vpn.example.net:5124', secret: 'fifteen-chars-x', scheduler: 'fast',
    exclude: ['192.0.2.1/24'], exclude_port: ['0'], lan: ['a/b'], checksum: 'maybe',
    max_connections: '0', port_range: '10-20', log_level: 'verbose', queue: '65536', idle_timeout: '5',
    firewall: 'pf', mark: '0x6d70001', table: '253',
  },
  uplink: {
    device: 'eth1:0', interface: 'wan-2', gateway: '224.0.0.1', gateway6: 'ff02::1', mtu: '575', backup: 'maybe', weight: '0', disabled: 'maybe',
    probe: 'ping', probe_target: ['1.2.3.4:0'], probe_interval: '0', probe_timeout: 'x', probe_down: '0', probe_up: '-1',
  },
};
// Edge cases where the form and the daemon must agree (reserved options excluded).
const EDGES = {
  mpconv: {
    max_connections: ['1', '65536', '65537', '0', '01', '-1', '1e3', ' 5'],
    port_range: ['1024-1087', '1024-1086', '1023-2000', '65472-65535', '61000-65536', '2000-1000', '61000', 'a-b', '61000 -65535', '061000-65535'],
    queue: ['0', '65535', '65536', 'x'],
    idle_timeout: ['10', '86400', '9', '86401'],
    mark: ['0x6d70000', '256', '255', '0', '0x', '0X100', '4294967040', '4294967296', '0x1ffffff00', '0x6d70080'],
    table: ['1', '252', '253', '254', '255', '256', '4294967000', '4294967001', '0'],
    concentrator: ['192.0.2.10', '192.0.2.10:5124', '192.0.2.10:0', '192.0.2.10:65536', '[2001:db8::10]:5124', '2001:db8::10',
      '[2001:db8::10]', '2001:db8::10:5124', '0.0.0.0', '224.0.0.1', 'ff02::1', '::', 'host.example:5124', '192.0.2.10:', '1.2.3.4:05124'],
    secret: ['0123456789abcdef', '0123456789abcde', 'with spaces in it ok', 'ééééééééééééééé', 'éééééééééééééééé'],
    exclude: [['10.0.0.0/8'], ['10.0.0.1/8'], ['10.0.0.1'], ['2001:db8::/32'], ['2001:db8::1/32'], ['::ffff:10.0.0.0/104'],
      ['10.0.0.0/33'], ['0.0.0.0/0'], ['::/0'], ['10.0.0.0/8', '10.0.0.0/8'], ['fe80::/10'], ['2001:db8:8000::/33'], ['2001:db8:4000::/33']],
    exclude_port: [['1'], ['65535'], ['0'], ['65536'], ['80', '443']],
    lan: [['br-lan'], ['a'.repeat(15)], ['a'.repeat(16)], ['br-lan', 'br-lan'], ['x y'], ['..']],
  },
  uplink: {
    device: ['eth1', 'wwan0', 'e'.repeat(15), 'e'.repeat(16), '.', 'a/b', 'eth1:1', 'br-lan'],
    interface: ['wan', 'wwan_4', 'WAN6', '_', '', 'i'.repeat(15), 'i'.repeat(16), 'wan-2', 'wan.2', 'wan 2', 'wän', 'w/an'],
    gateway: ['192.168.100.1', '0.0.0.0', '255.255.255.255', '239.1.1.1', '240.0.0.1', '10.0.0', '10.0.0.256', '010.0.0.1', 'fe80::1'],
    gateway6: ['fe80::1', '::1', '::', 'ff02::1', 'fe80::1%eth1', '::ffff:1.2.3.4', '::1.2.3.4', '2001:db8::', '192.168.1.1', '1::2::3', '2001:DB8::1'],
    mtu: ['576', '9000', '575', '9001', '1500 ', '01500'],
    probe: ['icmp', 'tcp', 'dns', 'none', 'ICMP', 'ping', 'http'],
    probe_interval: ['1', '0.5', '0.1', '0.05', '0', '60', '3600', '3601', '1.', '.5', '1e1', '-1', '1,5', '+1', '01', '1.25'],
    probe_timeout: ['2', '0.5', '0.1', '0.05', '0', '60', '61', '1.', '.5', '1e1', 'inf', 'NaN'],
    probe_down: ['1', '3', '100', '0', '101', '1.5', '01', '-1'],
    probe_up: ['1', '2', '100', '0', '101', '2.0', '02'],
  },
};

// probe_target edge cases, under each probe kind (the kind decides about ports).
const TARGET_EDGES = [['1.1.1.1'], ['1.1.1.1:53'], ['[2001:db8::1]:53'], ['2001:db8::1'], ['[2001:db8::1]'], ['2001:db8::1:53'],
  ['1.1.1.1:0'], ['1.1.1.1:65535'], ['1.1.1.1:65536'], ['1.1.1.1:053'], ['example.com'], ['example.com:53'], ['0.0.0.0'],
  ['224.0.0.1'], ['255.255.255.255'], ['ff02::1'], ['::'], ['::1'], ['01.1.1.1'], ['[1.1.1.1]'], ['[1.1.1.1]:53'], ['[2001:db8::1'],
  ['2001:db8::1]'], ['::ffff:1.1.1.1'], ['::ffff:255.255.255.255'], ['fe80::1%eth0'], ['[fe80::1]:53'], ['1.1.1.1:'], [':53'],
  ['1.1.1.1', '9.9.9.9'], ['1.1.1.1', '1.1.1.1'], ['1.1.1.1', '1.1.1.1:53'], ['1.1.1.1:443', '1.1.1.1'], ['1.1.1.1', '::ffff:1.1.1.1'],
  ['[2001:db8::1]:53', '2001:db8::1'], ['1.0.0.1', '1.0.0.2', '1.0.0.3', '1.0.0.4', '1.0.0.5', '1.0.0.6', '1.0.0.7', '1.0.0.8'],
  ['1.0.0.1', '1.0.0.2', '1.0.0.3', '1.0.0.4', '1.0.0.5', '1.0.0.6', '1.0.0.7', '1.0.0.8', '1.0.0.9']];

let view, map, options, tmp;

/* Runs fn with the form's uplink section reporting probe kind `kind` (as if selected). */
function withKind(kind, fn) {
  const o = options.find((x) => x.type === 'uplink' && x.key === 'probe_target').o;
  const section = o.section, orig = section.formvalue;
  section.formvalue = function(sid, opt) { return opt === 'probe' ? kind : orig.apply(this, arguments); };
  try { return fn(o); } finally { section.formvalue = orig; }
}

function configText(main, uplinks) {
  const values = { main: Object.assign({ '.name': 'main', '.type': 'mpconv', '.anonymous': false, '.index': 0 }, main) };
  uplinks.forEach(([name, opts], i) => {
    values[name] = Object.assign({ '.name': name, '.type': 'uplink', '.anonymous': false, '.index': i + 1 }, opts);
  });
  return uciText.serialize(values);
}

function check(text) {
  const file = path.join(tmp, 'mpconv.conf');
  fs.writeFileSync(file, text);
  const r = spawnSync(MPCONV, ['check', '-c', file], { encoding: 'utf8' });
  return { ok: r.status === 0, status: r.status, out: r.stdout + r.stderr };
}

test.before(async () => {
  assert.ok(fs.existsSync(MPCONV), MPCONV + ' missing (cargo build)');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mpconv-luci-keys-'));
  // The form sees the shipped config plus one uplink section.
  const backend = createBackend();
  backend.state.uci.mpconv.wan = { '.name': 'wan', '.type': 'uplink', '.anonymous': false, '.index': 1, device: 'eth1' };
  const rt = createRuntime({
    document: null,
    fetchText: async (url) => fs.readFileSync(path.join(RESOURCES, url.replace('/luci-static/resources/', '')), 'utf8'),
    rpcTransport: async (req) => backend.call(req),
  });
  view = await rt.L.require('view.mpconv.settings');
  await view.load();
  map = await view.render();
  options = [];
  for (const s of map.children)
    for (const o of s.children)
      options.push({ type: s.sectiontype, key: o.ucioption || o.option, o, sid: s.sectiontype === 'mpconv' ? 'main' : 'wan' });
});

test.after(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); });

test('the form declares the options of both section types', () => {
  assert.deepEqual([...new Set(map.children.map((s) => s.sectiontype))], ['mpconv', 'uplink']);
  assert.ok(options.length >= 20, 'options: ' + options.map((x) => x.key));
});

test('every option the form writes is known to the daemon (or reserved)', () => {
  for (const { type, key } of options)
    assert.ok(KNOWN[type].includes(key) || RESERVED[type].includes(key),
      `${type}.${key} is neither in the daemon's keys (${KNOWN[type]}) nor RESERVED`);
});

test('test tables cover exactly the declared options', () => {
  for (const type of ['mpconv', 'uplink']) {
    const declared = options.filter((x) => x.type === type).map((x) => x.key).sort();
    assert.deepEqual(Object.keys(VALID[type]).sort(), declared, 'VALID.' + type);
    assert.deepEqual(Object.keys(BAD[type]).sort(), declared, 'BAD.' + type);
  }
});

test('the form accepts the valid values and rejects the bad ones', () => withKind(VALID.uplink.probe, () => {
  for (const { type, key, o, sid } of options) {
    assert.equal(o.check(sid, VALID[type][key]), true, `${type}.${key}=${VALID[type][key]}`);
    if (typeof o.validate === 'function' && key !== 'enabled')
      assert.equal(typeof o.check(sid, BAD[type][key]), 'string', `${type}.${key}=${BAD[type][key]} accepted by the form`);
  }
}));

test('all options at valid values: mpconv check exits 0', () => {
  const r = check(configText(VALID.mpconv, [['wan', VALID.uplink], ['lte', { device: 'wwan0' }]]));
  assert.ok(r.ok, r.out);
  assert.match(r.out, /enabled: yes/);
  assert.match(r.out, /uplink wan: device eth1 gateway 192\.168\.100\.1 gateway6 fe80::1 mtu 1492 interface wan /);
});

test('an uplink with only a netifd interface: valid for the form and the daemon', () => {
  const r = check(configText({ enabled: '1', lan: ['br-lan'] }, [['wan', { interface: 'wan' }], ['lte', { interface: 'wwan', gateway: '10.0.0.1' }]]));
  assert.ok(r.ok, r.out);
  assert.match(r.out, /uplink wan: interface wan table/);
  assert.match(r.out, /uplink lte: gateway 10\.0\.0\.1 interface wwan table/);
  const dev = options.find((x) => x.type === 'uplink' && x.key === 'device').o;
  const iface = options.find((x) => x.type === 'uplink' && x.key === 'interface').o;
  assert.equal(typeof dev.check('wan', ''), 'string', 'without an interface the device is required');
  const section = dev.section, orig = section.formvalue;
  section.formvalue = function(sid, opt) { return opt === 'interface' ? 'wan' : orig.apply(this, arguments); };
  try {
    assert.equal(dev.check('wan', ''), true, 'with an interface the device may be empty');
  } finally {
    section.formvalue = orig;
  }
  assert.equal(iface.check('wan', ''), true);
  // Neither: the daemon names the device as missing, as the form does.
  const r2 = check(configText({ enabled: '1', lan: ['br-lan'] }, [['wan', { mtu: '1500' }]]));
  assert.ok(!r2.ok);
  assert.match(r2.out, /option 'device': missing .*or the netifd interface/);
});

test('each option alone at a bad value: mpconv check fails naming it (reserved ones are ignored)', () => {
  for (const type of ['mpconv', 'uplink']) {
    for (const key of Object.keys(BAD[type])) {
      const main = Object.assign({}, VALID.mpconv), up = Object.assign({}, VALID.uplink);
      (type === 'mpconv' ? main : up)[key] = BAD[type][key];
      const r = check(configText(main, [['wan', up]]));
      if (RESERVED[type].includes(key)) {
        assert.ok(r.ok, `reserved ${type}.${key} should be accepted and ignored by this daemon: ${r.out}`);
      } else {
        assert.ok(!r.ok, `${type}.${key}=${BAD[type][key]} accepted by the daemon`);
        assert.match(r.out, new RegExp("option '" + key + "'"), `${type}.${key}: the error names the option`);
      }
    }
  }
});

test('form and daemon agree on edge-case values', () => {
  const disagree = [];
  for (const type of ['mpconv', 'uplink']) {
    for (const [key, values] of Object.entries(EDGES[type])) {
      const opt = options.find((x) => x.type === type && x.key === key);
      assert.ok(opt, `${type}.${key} not in the form`);
      for (const v of values) {
        const explicitOnly = ['concentrator', 'secret', 'exclude', 'exclude_port'].includes(key);
        const main = explicitOnly ? { enabled: '0', mode: 'explicit', lan: ['br-lan'] } : { enabled: '0', lan: ['br-lan'] };
        const up = { device: 'eth1' };
        (type === 'mpconv' ? main : up)[key] = v;
        const daemon = check(configText(main, [['wan', up]]));
        // The form trims text input; the daemon gets the trimmed value too.
        const form = opt.o.check(opt.sid, v) === true;
        if (form !== daemon.ok) disagree.push(`${type}.${key}=${JSON.stringify(v)}: form ${form ? 'accepts' : 'rejects'}, daemon ${daemon.ok ? 'accepts' : 'rejects: ' + daemon.out.trim()}`);
      }
    }
  }
  assert.deepEqual(disagree, []);
});

test('form and daemon agree on probe targets, for each probe kind', () => {
  const disagree = [];
  let n = 0;
  for (const kind of ['icmp', 'tcp', 'dns', 'none']) {
    withKind(kind, (o) => {
      for (const v of TARGET_EDGES) {
        const daemon = check(configText({ enabled: '0', lan: ['br-lan'] }, [['wan', { device: 'eth1', probe: kind, probe_target: v }]]));
        const form = o.check('wan', v) === true;
        n++;
        if (form !== daemon.ok) disagree.push(`probe ${kind}, probe_target=${JSON.stringify(v)}: form ${form ? 'accepts' : 'rejects'}, daemon ${daemon.ok ? 'accepts' : 'rejects: ' + daemon.out.trim()}`);
        if (!daemon.ok) assert.match(daemon.out, /option 'probe_target'/);
      }
    });
  }
  assert.deepEqual(disagree, []);
  assert.ok(n > 100);
});
