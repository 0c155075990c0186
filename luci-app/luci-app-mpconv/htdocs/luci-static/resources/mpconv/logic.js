'use strict';
'require baseclass';

/*
 * Pure logic shared by the mpconv views: formatting, validation mirroring the
 * daemon's rules (src/config/mod.rs), and chart data. No DOM, no LuCI calls:
 * tests/luci/unit.test.js loads this file in node with a small shim that
 * stands in for 'baseclass'.
 *
 * Validators return true when the value is fine, else an error string (the
 * convention of LuCI's option.validate).
 */

var RESERVED = {
	mpconv: [],
	uplink: [ 'weight' ]
};

var MAX_UPLINKS = 8;

/*
 * Health probes of an uplink (config uplink: probe, list probe_target, probe_interval,
 * probe_timeout, probe_down, probe_up), with the daemon's bounds and defaults.
 */
var PROBE = {
	kinds: [ 'icmp', 'tcp', 'dns', 'none' ],
	kind: 'icmp',
	interval: { lo: 0.1, hi: 3600, def: '1' },     /* seconds, decimals allowed */
	timeout: { lo: 0.1, hi: 60, def: '2' },        /* seconds, decimals allowed */
	down: { lo: 1, hi: 100, def: '3' },            /* lost probes in a row */
	up: { lo: 1, hi: 100, def: '2' },              /* answered probes in a row */
	targets: 8                                     /* most probe_target entries */
};

function isDecimal(v) {
	return typeof v === 'string' && /^[0-9]+$/.test(v);
}

/* A decimal number in lo..hi, or null. */
function number(v, lo, hi) {
	if (!isDecimal(String(v)))
		return null;
	var n = parseInt(String(v), 10);
	return (n >= lo && n <= hi) ? n : null;
}

function validNumber(v, lo, hi) {
	return number(v, lo, hi) !== null ? true
		: 'Expecting a whole number from ' + lo + ' to ' + hi;
}

function validPortRange(v) {
	var what = "Expecting 'LO-HI' with 1024 <= LO <= HI <= 65535";
	var m = /^([0-9]+)-([0-9]+)$/.exec(String(v));
	if (!m)
		return what;
	var lo = number(m[1], 1024, 65535), hi = number(m[2], 1024, 65535);
	if (lo === null || hi === null || lo > hi)
		return what;
	var count = hi - lo + 1;
	if (count < 64)
		return 'The range holds ' + count + ' ports; at least 64 are needed (e.g. 61000-65535)';
	return true;
}

/*
 * The kernel's local port range (text of /proc/sys/net/ipv4/ip_local_port_range, "LO\tHI")
 * when the valid range `v` overlaps it, else null. The daemon refuses such a port_range at
 * start: the router's own connections would be taken for stray subflows and reset.
 */
function localPortClash(v, localText) {
	var m = /^([0-9]+)-([0-9]+)$/.exec(String(v));
	var k = /^\s*([0-9]+)\s+([0-9]+)\s*$/.exec(String(localText || ''));
	if (!m || !k)
		return null;
	var lo = +m[1], hi = +m[2], klo = +k[1], khi = +k[2];
	return (lo <= khi && klo <= hi) ? [ klo, khi ] : null;
}

/* validPortRange, and clear of the kernel's local ports when they are known. */
function validPortRangeFor(v, localText) {
	var r = validPortRange(v);
	if (r !== true)
		return r;
	var k = localPortClash(v, localText);
	if (k)
		return 'Overlaps the router\'s own local ports ' + k[0] + '-' + k[1] +
			' (net.ipv4.ip_local_port_range), whose connections would be reset; choose ports above ' + k[1];
	return true;
}

function parseIPv4(v) {
	var m = /^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$/.exec(String(v));
	if (!m)
		return null;
	var out = [];
	for (var i = 1; i <= 4; i++) {
		/* Rust's Ipv4Addr parser rejects leading zeros ("01"). */
		if (m[i].length > 1 && m[i][0] === '0')
			return null;
		var n = +m[i];
		if (n > 255)
			return null;
		out.push(n);
	}
	return out;
}

/* Eight 16-bit groups, or null. Accepts '::' compression and a dotted IPv4 tail. */
function parseIPv6(v) {
	v = String(v);
	if (!/^[0-9a-fA-F:.]+$/.test(v) || v.indexOf(':::') >= 0)
		return null;
	var halves = v.split('::');
	if (halves.length > 2)
		return null;
	function groups(s, allowV4) {
		if (s === '')
			return [];
		var parts = s.split(':'), out = [];
		for (var i = 0; i < parts.length; i++) {
			var p = parts[i];
			if (allowV4 && i === parts.length - 1 && p.indexOf('.') >= 0) {
				var q = parseIPv4(p);
				if (!q)
					return null;
				out.push((q[0] << 8) | q[1], (q[2] << 8) | q[3]);
			}
			else if (/^[0-9a-fA-F]{1,4}$/.test(p)) {
				out.push(parseInt(p, 16));
			}
			else {
				return null;
			}
		}
		return out;
	}
	var head = groups(halves[0], halves.length === 1);
	var tail = halves.length === 2 ? groups(halves[1], true) : [];
	if (head === null || tail === null)
		return null;
	if (halves.length === 1)
		return head.length === 8 ? head : null;
	if (head.length + tail.length > 7)
		return null;
	var fill = [];
	for (var i = head.length + tail.length; i < 8; i++)
		fill.push(0);
	return head.concat(fill, tail);
}

function validGateway4(v) {
	var a = parseIPv4(v);
	if (!a)
		return "Expecting an IPv4 address (an IPv6 next hop goes in 'IPv6 gateway')";
	var unspecified = a.every(function(x) { return x === 0; });
	var broadcast = a.every(function(x) { return x === 255; });
	var multicast = a[0] >= 224 && a[0] <= 239;
	if (unspecified || broadcast || multicast)
		return 'This address cannot be a gateway';
	return true;
}

function validGateway6(v) {
	if (String(v).indexOf('%') >= 0)
		return 'Expecting an IPv6 address without a %zone (the uplink device is the zone)';
	var a = parseIPv6(v);
	if (!a)
		return "Expecting an IPv6 address (an IPv4 next hop goes in 'IPv4 gateway')";
	var unspecified = a.every(function(x) { return x === 0; });
	var multicast = (a[0] >> 8) === 0xff;
	var mapped = a.slice(0, 5).every(function(x) { return x === 0; }) && a[5] === 0xffff;
	if (unspecified || multicast || mapped)
		return 'This address cannot be a gateway';
	return true;
}

/* The kernel's dev_valid_name, as the daemon checks it. */
function validDevice(v) {
	v = String(v);
	if (v === '' || v.length > 15 || v === '.' || v === '..' || /[\/:\s\x00-\x1f\x7f]/.test(v))
		return "Expecting a network device name (1 to 15 characters, no '/', ':' or spaces)";
	return true;
}

/*
 * A netifd interface name (a section of /etc/config/network, e.g. 'wan'), as the daemon
 * checks it: LuCI's and(uciname,maxlength(15)).
 */
function validInterface(v) {
	return /^[A-Za-z0-9_]{1,15}$/.test(String(v)) ? true
		: "Expecting a netifd interface name (1 to 15 letters, digits or _, e.g. 'wan')";
}

function validMtu(v) {
	return number(v, 576, 9000) !== null ? true : 'Expecting an MTU from 576 to 9000';
}

/* Decimal or 0x hex, nonzero, 32 bits, low 8 bits zero. */
function validMark(v) {
	var what = 'Expecting a nonzero 32-bit mark (decimal or 0x hex) with the low 8 bits zero, e.g. 0x6d70000';
	v = String(v);
	var n;
	if (/^0[xX][0-9a-fA-F]+$/.test(v))
		n = parseInt(v.substr(2), 16);
	else if (isDecimal(v))
		n = parseInt(v, 10);
	else
		return what;
	if (!(n > 0) || n > 0xffffffff || (n % 256) !== 0)
		return what;
	return true;
}

/* First routing table; uplinks use table .. table+count-1, which must avoid 253..255. */
function validTable(v, uplinkCount) {
	var n = number(v, 1, 4294967000);
	if (n === null)
		return 'Expecting a routing table number from 1 to 4294967000';
	var last = n + Math.max(0, (uplinkCount || 1) - 1);
	for (var r = 253; r <= 255; r++)
		if (n <= r && r <= last)
			return 'Tables ' + n + '..' + last + ' include ' + r + ', a table the kernel reserves (253 default, 254 main, 255 local)';
	return true;
}

/* HOST:PORT with HOST a DNS name, an IPv4 address or [IPv6]. */
function validHostPort(v) {
	var what = "Expecting 'HOST:PORT' (a name, an IPv4 address or [IPv6], and a port from 1 to 65535)";
	var m = /^(\[([^\]]+)\]|[^:\[\]]+):([0-9]+)$/.exec(String(v));
	if (!m)
		return what;
	if (number(m[3], 1, 65535) === null)
		return what;
	if (m[2] !== undefined)
		return parseIPv6(m[2]) ? true : what;
	var host = m[1];
	if (/^[0-9.]+$/.test(host))
		return parseIPv4(host) ? true : what;
	if (host.length > 253)
		return what;
	var labels = host.replace(/\.$/, '').split('.');
	for (var i = 0; i < labels.length; i++)
		if (!/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/.test(labels[i]))
			return what;
	return true;
}

/*
 * The concentrator, as the daemon takes it: an IP address (no DNS names) with an
 * optional port (default 5124): '192.0.2.10', '192.0.2.10:5124', '2001:db8::10',
 * '[2001:db8::10]:5124'.
 */
function validConcentrator(v) {
	var what = "Expecting ADDR[:PORT] with an IP address, e.g. 192.0.2.10:5124 or [2001:db8::10]:5124 (port 5124 if left out)";
	v = String(v);
	var m = /^(?:([0-9.]+)|\[([0-9a-fA-F:.]+)\]):([0-9]+)$/.exec(v);
	if (m) {
		if (number(m[3], 1, 65535) === null)
			return what;
		return (m[1] ? parseIPv4(m[1]) : parseIPv6(m[2])) ? true : what;
	}
	var bare = v.replace(/^\[/, '').replace(/\]$/, '');
	var a4 = parseIPv4(bare), a6 = a4 ? null : parseIPv6(bare);
	if (a4)
		return (a4.every(function(x) { return x === 0; }) || (a4[0] >= 224 && a4[0] <= 239)) ? what : true;
	if (a6)
		return (a6.every(function(x) { return x === 0; }) || (a6[0] >> 8) === 0xff) ? what : true;
	return what;
}

/* ADDR/LEN without host bits (a bare address is a host prefix); no IPv4-mapped IPv6. */
function validPrefix(v) {
	var what = 'Expecting a prefix ADDR/LEN, e.g. 192.0.2.0/24 or 2001:db8::/32';
	var parts = String(v).split('/');
	if (parts.length > 2)
		return what;
	var a4 = parseIPv4(parts[0]), a6 = a4 ? null : parseIPv6(parts[0]);
	if (!a4 && !a6)
		return what;
	var max = a4 ? 32 : 128;
	var len = parts.length === 2 ? number(parts[1], 0, max) : max;
	if (len === null)
		return what;
	if (a6 && a6.slice(0, 5).every(function(x) { return x === 0; }) && a6[5] === 0xffff)
		return 'Expecting the IPv4 prefix instead of an IPv4-mapped address';
	/* host bits: every bit at position >= len must be zero */
	var groups = a4 || a6, width = a4 ? 8 : 16;
	for (var i = 0; i < groups.length; i++) {
		var keep = Math.max(0, Math.min(width, len - i * width));
		var mask = keep === width ? 0 : ((1 << (width - keep)) - 1);
		if (groups[i] & mask)
			return 'The address has host bits set for /' + len;
	}
	return true;
}

/* UCI section names the daemon accepts for uplinks. */
function validSectionName(v) {
	return /^[A-Za-z0-9_]+$/.test(String(v)) ? true
		: 'Expecting a name of letters, digits and _';
}

/* Shared with the concentrator: at least 16 characters (code points). */
function validSecret(v) {
	return Array.from(String(v)).length >= 16 ? true : 'Expecting at least 16 characters';
}

/*
 * Seconds with up to three decimals ('1', '0.5', '.25', '2.125'), in lo..hi seconds; as
 * the daemon reads them: at most 7 integer digits, no sign, exponent or trailing dot.
 */
function validSeconds(v, lo, hi) {
	var what = 'Expecting seconds from ' + lo + ' to ' + hi + ' (decimals allowed, e.g. 0.5)';
	var m = /^([0-9]{0,7})(?:\.([0-9]{1,3}))?$/.exec(String(v));
	if (!m || (m[1] === '' && m[2] === undefined))
		return what;
	var frac = ((m[2] || '') + '000').substr(0, 3);
	var ms = (m[1] === '' ? 0 : parseInt(m[1], 10)) * 1000 + parseInt(frac, 10);
	return (ms >= Math.round(lo * 1000) && ms <= Math.round(hi * 1000)) ? true : what;
}

/* option probe: one of PROBE.kinds (a hand-edited file may hold something else). */
function validProbeKind(v) {
	return PROBE.kinds.indexOf(String(v)) >= 0 ? true
		: 'Expecting a probe kind: ' + PROBE.kinds.join(', ');
}

/* The port a probe target gets when it names none, by probe kind (null: takes none). */
var PROBE_PORT = { icmp: null, tcp: 443, dns: 53, none: null };

/*
 * One probe target, as the daemon reads it: 'IP' (IPv4 or IPv6), '[IPv6]', 'IPv4:PORT' or
 * '[IPv6]:PORT' with a port from 1 to 65535; icmp probes take no port. The address must be
 * usable as a destination (not unspecified, broadcast or multicast; an IPv4-mapped IPv6
 * address counts as the IPv4 one). Returns {key} (address and port, to find duplicates)
 * or {error}.
 */
function probeTarget(v, kind) {
	var what = "Expecting IP, IP:PORT or [IPv6]:PORT (e.g. 192.0.2.1, 192.0.2.1:443 or [2001:db8::1]:53)";
	v = String(v);
	var m, a4 = null, a6 = null, port = null;
	if ((m = /^\[([^\]]*)\](?::([0-9]+))?$/.exec(v)) !== null) {
		a6 = parseIPv6(m[1]);
		if (!a6 || m[1].indexOf(':') < 0)
			return { error: what };
		port = m[2] !== undefined ? m[2] : null;
	}
	else if ((m = /^([0-9.]+):([0-9]+)$/.exec(v)) !== null) {
		a4 = parseIPv4(m[1]);
		port = m[2];
	}
	else {
		a4 = parseIPv4(v);
		a6 = a4 ? null : parseIPv6(v);
	}
	if (!a4 && !a6)
		return { error: what };
	if (port !== null && !isDecimal(port))
		return { error: what };
	/* ::ffff:a.b.c.d is a.b.c.d */
	if (a6 && a6.slice(0, 5).every(function(x) { return x === 0; }) && a6[5] === 0xffff) {
		a4 = [ a6[6] >> 8, a6[6] & 255, a6[7] >> 8, a6[7] & 255 ];
		a6 = null;
	}
	var unusable = a4
		? (a4.every(function(x) { return x === 0; }) || a4.every(function(x) { return x === 255; }) || (a4[0] >= 224 && a4[0] <= 239))
		: (a6.every(function(x) { return x === 0; }) || (a6[0] >> 8) === 0xff);
	if (unusable)
		return { error: 'Not a usable probe target (unspecified, broadcast or multicast)' };
	var p;
	if (port !== null) {
		if ((kind || 'icmp') === 'icmp')
			return { error: "ICMP probes take no port (choose the TCP or DNS probe to probe a port)" };
		p = parseInt(port, 10);
		if (!(p >= 1 && p <= 65535))
			return { error: p === 0 ? 'Port 0 cannot be probed' : what };
	}
	else {
		p = PROBE_PORT[kind || 'icmp'] || 0;
	}
	return { key: (a4 ? a4.join('.') : a6.join(':')) + '/' + p };
}

function validProbeTarget(v, kind) {
	var t = probeTarget(v, kind);
	return t.error ? t.error : true;
}

/*
 * The probe targets of an uplink (one value or the list) for probe kind `kind`: each
 * valid, none twice (also when written differently, e.g. 1.1.1.1 and 1.1.1.1:53 for dns),
 * at most PROBE.targets.
 */
function validProbeTargets(v, kind) {
	var items = Array.isArray(v) ? v : (v == null || v === '' ? [] : [ v ]);
	var seen = {};
	for (var i = 0; i < items.length; i++) {
		var t = probeTarget(items[i], kind);
		if (t.error)
			return items[i] + ': ' + t.error;
		if (seen[t.key])
			return items[i] + ' is listed twice' + (seen[t.key] !== items[i] ? ' (as ' + seen[t.key] + ')' : '');
		seen[t.key] = items[i];
		if (i >= PROBE.targets)
			return 'At most ' + PROBE.targets + ' probe targets';
	}
	return true;
}

/* Reserved (scheduler weight; the daemon ignores it for now); UI-side rule only. */
function validWeight(v) {
	return number(v, 1, 100) !== null ? true : 'Expecting a weight from 1 to 100';
}

var UNITS = [ 'B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB' ];

function fmtBytes(n) {
	if (typeof n !== 'number' || !isFinite(n) || n < 0)
		return '-';
	var i = 0;
	while (n >= 1024 && i < UNITS.length - 1) {
		n /= 1024;
		i++;
	}
	return (i === 0 ? String(Math.round(n)) : n.toFixed(n < 10 ? 2 : (n < 100 ? 1 : 0))) + ' ' + UNITS[i];
}

function fmtRate(bytesPerSec) {
	var s = fmtBytes(bytesPerSec);
	return s === '-' ? s : s + '/s';
}

/* 1234567 -> '1 234 567' (thin grouping, locale independent). */
function fmtCount(n) {
	if (typeof n !== 'number' || !isFinite(n))
		return '-';
	var s = String(Math.round(Math.abs(n)));
	s = s.replace(/\B(?=(\d{3})+(?!\d))/g, '\u202f');
	return (n < 0 ? '-' : '') + s;
}

/* Decimal SI scale for packet rates: 950 -> '950', 12300 -> '12.3 k'. */
function fmtScaled(n) {
	if (typeof n !== 'number' || !isFinite(n))
		return '-';
	var a = Math.abs(n);
	if (a >= 1e6) return (n / 1e6).toFixed(a >= 1e7 ? 0 : 1) + ' M';
	if (a >= 1e3) return (n / 1e3).toFixed(a >= 1e4 ? 0 : 1) + ' k';
	return String(Math.round(n * 10) / 10);
}

/*
 * What the graph of an uplink shows. When the daemon reports per-uplink byte
 * counters (tx_bytes/rx_bytes, not in the status yet) the graph plots their
 * rate; until then it plots the uplink's subflow count.
 */
function uplinkMetric(u) {
	var tx = u && u.tx_bytes, rx = u && u.rx_bytes;
	if (typeof tx === 'number' || typeof rx === 'number')
		return { kind: 'bytes', counter: true, value: (+tx || 0) + (+rx || 0) };
	return { kind: 'subflows', counter: false, value: (u && typeof u.subflows === 'number') ? u.subflows : 0 };
}

/* Status reply of the rpcd plugin -> {running, error}. */
function daemonState(reply) {
	if (!reply || typeof reply !== 'object')
		return { running: false, error: 'no answer' };
	if (reply.running === false || reply.error)
		return { running: false, error: reply.error || 'not running' };
	return { running: true, error: null };
}

function uplinkState(u) {
	if (u.state)
		return String(u.state);
	if (!u.addr4 && !u.addr6)
		return 'no address';
	return u.subflows > 0 ? 'active' : 'idle';
}

/*
 * The state badge of an uplink: {state, label, cls}. The daemon's health state (up,
 * degraded, down) when it reports one, else what the older status allows (active, idle,
 * no address). cls is a LuCI label class: success, warning, danger or notice.
 */
var BADGE = { up: 'success', active: 'success', degraded: 'warning', down: 'danger', 'no address': 'danger', idle: 'notice' };

function uplinkBadge(u) {
	var st = uplinkState(u || {});
	return { state: st, label: st, cls: BADGE[st] || 'notice' };
}

/* Microseconds -> '850 µs', '12.3 ms', '1.25 s'; 0 or missing -> '-' (no answer yet). */
function fmtRtt(us) {
	if (typeof us !== 'number' || !isFinite(us) || us <= 0)
		return '-';
	if (us < 1000)
		return Math.round(us) + ' \u00b5s';
	if (us < 1e6)
		return (us / 1000).toFixed(us < 1e4 ? 2 : (us < 1e5 ? 1 : 0)) + ' ms';
	return (us / 1e6).toFixed(2) + ' s';
}

/* Loss 0.0..1.0 -> '0 %', '2.5 %', '100 %'. */
function fmtLoss(x) {
	if (typeof x !== 'number' || !isFinite(x) || x < 0)
		return '-';
	var p = Math.min(1, x) * 100;
	return (p === 0 || p === 100 || p >= 10 ? String(Math.round(p)) : p.toFixed(1)) + ' %';
}

/*
 * What the probe column shows for an uplink: {kind, active, rtt, loss}. active is false
 * when the daemon does not probe it (probe 'none', or a status without probe fields).
 */
function probeSummary(u) {
	u = u || {};
	var kind = typeof u.probe === 'string' ? u.probe : null;
	if (!kind || kind === 'none')
		return { kind: kind || '-', active: false, rtt: '-', loss: '-' };
	return { kind: kind, active: true, rtt: fmtRtt(u.probe_rtt_us), loss: fmtLoss(u.probe_loss) };
}

/*
 * The answer of ubus `mpconv handover` ({"ok":true,"uplink":N,"connections":N} or
 * {"error":...}) -> {ok, text} for a notification.
 */
function handoverResult(name, res) {
	if (res && res.ok === true && !res.error) {
		var n = typeof res.connections === 'number' ? res.connections : 0;
		var to = typeof res.uplink === 'string' && res.uplink ? res.uplink : name;
		return { ok: true, text: 'Handover to ' + to + ': ' +
			(n === 1 ? '1 connection moved' : n + ' connections moved') + '.' };
	}
	var err = res && res.error ? String(res.error) : 'no answer from the daemon';
	return { ok: false, text: 'Handover to ' + name + ' failed: ' + err };
}

function nonZeroCounters(counters) {
	return Object.keys(counters || {}).filter(function(k) {
		return typeof counters[k] === 'number' && counters[k] !== 0;
	}).sort().map(function(k) { return [ k, counters[k] ]; });
}

/* {uplink name: [subflow, ...]} of one connection, for every uplink named in `names`. */
function subflowsByUplink(conn, names) {
	var out = {};
	(names || []).forEach(function(n) { out[n] = []; });
	((conn && conn.subflows) || []).forEach(function(sf) {
		(out[sf.uplink] = out[sf.uplink] || []).push(sf);
	});
	return out;
}

/*
 * Successive status samples -> per-series points. Series: one per uplink
 * ('uplink:NAME', see uplinkMetric) and 'io:sent' (packets the daemon sent
 * per second, the only throughput-like counter the status has today).
 * Counters become rates between samples; a counter that went down (daemon
 * restart) gives a gap (null) rather than a negative rate.
 */
function History(maxPoints) {
	this.max = maxPoints || 60;
	this.prev = null;
	this.series = {};
	this.kinds = {};
}

History.prototype.point = function(key, kind, t, v) {
	var s = this.series[key] = this.series[key] || [];
	this.kinds[key] = kind;
	s.push({ t: t, v: v });
	while (s.length > this.max)
		s.shift();
};

History.prototype.push = function(status, tMs) {
	var prev = this.prev, dt = prev ? (tMs - prev.t) / 1000 : 0;
	var self = this;
	function rate(now, before) {
		if (!prev || dt <= 0 || typeof before !== 'number' || typeof now !== 'number' || now < before)
			return null;
		return (now - before) / dt;
	}
	var cur = { t: tMs, uplinks: {}, sent: status && status.io ? status.io.sent : undefined };
	((status && status.uplinks) || []).forEach(function(u) {
		var m = uplinkMetric(u);
		cur.uplinks[u.name] = m;
		var before = prev && prev.uplinks[u.name];
		var v = m.counter ? rate(m.value, before && before.counter ? before.value : undefined) : m.value;
		if (!m.counter || prev)
			self.point('uplink:' + u.name, m.kind, tMs, v);
	});
	if (prev)
		this.point('io:sent', 'packets', tMs, rate(cur.sent, prev.sent));
	this.prev = cur;
	return this;
};

History.prototype.get = function(key) {
	return this.series[key] || [];
};

History.prototype.kind = function(key) {
	return this.kinds[key];
};

/* A round "nice" upper bound >= v (1, 2, 5 x 10^n), at least 1. */
function niceMax(v) {
	if (!(v > 0))
		return 1;
	var p = Math.pow(10, Math.floor(Math.log(v) / Math.LN10));
	var steps = [ 1, 2, 5, 10 ];
	for (var i = 0; i < steps.length; i++)
		if (steps[i] * p >= v)
			return steps[i] * p;
	return 10 * p;
}

/*
 * SVG path data for points [{t, v}] in a width x height box (y down), with the
 * time axis spanning `spanMs` back from the newest point. Null values break
 * the line. Returns {line, area, max, last}.
 */
function chartPaths(points, width, height, spanMs) {
	var vals = points.filter(function(p) { return typeof p.v === 'number'; });
	var max = niceMax(Math.max.apply(null, [ 0 ].concat(vals.map(function(p) { return p.v; }))));
	var last = vals.length ? vals[vals.length - 1].v : null;
	if (!points.length)
		return { line: '', area: '', max: max, last: last };
	var tEnd = points[points.length - 1].t;
	var span = spanMs || Math.max(1, tEnd - points[0].t);
	function x(t) { return Math.max(0, width - (tEnd - t) / span * width); }
	function y(v) { return height - v / max * height; }
	function r(n) { return Math.round(n * 10) / 10; }
	var line = '', area = '', run = [];
	function flush() {
		if (!run.length)
			return;
		line += run.map(function(p, i) { return (i ? 'L' : 'M') + r(x(p.t)) + ',' + r(y(p.v)); }).join('');
		area += 'M' + r(x(run[0].t)) + ',' + height
			+ run.map(function(p) { return 'L' + r(x(p.t)) + ',' + r(y(p.v)); }).join('')
			+ 'L' + r(x(run[run.length - 1].t)) + ',' + height + 'Z';
		run = [];
	}
	points.forEach(function(p) {
		if (typeof p.v === 'number')
			run.push(p);
		else
			flush();
	});
	flush();
	return { line: line, area: area, max: max, last: last };
}

return baseclass.extend({
	RESERVED: RESERVED,
	MAX_UPLINKS: MAX_UPLINKS,
	PROBE: PROBE,
	number: number,
	validNumber: validNumber,
	validPortRange: validPortRange,
	localPortClash: localPortClash,
	validPortRangeFor: validPortRangeFor,
	validHostPort: validHostPort,
	validConcentrator: validConcentrator,
	validPrefix: validPrefix,
	validGateway4: validGateway4,
	validGateway6: validGateway6,
	validDevice: validDevice,
	validInterface: validInterface,
	validMtu: validMtu,
	validMark: validMark,
	validTable: validTable,
	validSectionName: validSectionName,
	validSecret: validSecret,
	validWeight: validWeight,
	validSeconds: validSeconds,
	validProbeKind: validProbeKind,
	probeTarget: probeTarget,
	validProbeTarget: validProbeTarget,
	validProbeTargets: validProbeTargets,
	parseIPv4: parseIPv4,
	parseIPv6: parseIPv6,
	fmtBytes: fmtBytes,
	fmtRate: fmtRate,
	fmtCount: fmtCount,
	fmtScaled: fmtScaled,
	uplinkMetric: uplinkMetric,
	daemonState: daemonState,
	uplinkState: uplinkState,
	uplinkBadge: uplinkBadge,
	fmtRtt: fmtRtt,
	fmtLoss: fmtLoss,
	probeSummary: probeSummary,
	handoverResult: handoverResult,
	nonZeroCounters: nonZeroCounters,
	subflowsByUplink: subflowsByUplink,
	History: History,
	niceMax: niceMax,
	chartPaths: chartPaths
});
