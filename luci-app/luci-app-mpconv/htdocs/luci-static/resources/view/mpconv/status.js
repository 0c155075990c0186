'use strict';
'require view';
'require rpc';
'require poll';
'require ui';
'require dom';
'require mpconv.logic as logic';

var callStatus = rpc.declare({
	object: 'mpconv',
	method: 'status',
	expect: { '': {} }
});

var callHandover = rpc.declare({
	object: 'mpconv',
	method: 'handover',
	params: [ 'uplink' ],
	expect: { '': {} }
});

var POLL_INTERVAL = 3;          /* seconds */
var HISTORY_POINTS = 60;        /* 3 minutes at 3 s */
var CHART_W = 240, CHART_H = 48;
var SVGNS = 'http://www.w3.org/2000/svg';
var MAX_CONNECTION_ROWS = 50;

function svg(tag, attrs) {
	var el = document.createElementNS(SVGNS, tag);
	for (var k in attrs)
		el.setAttribute(k, attrs[k]);
	return el;
}

/* Label for the newest value of a series, by what the series measures. */
function seriesLabel(kind, v) {
	if (v == null)
		return '-';
	switch (kind) {
	case 'bytes':    return logic.fmtRate(v);
	case 'packets':  return _('%s pkt/s').format(logic.fmtScaled(v));
	case 'subflows': return _('%d subflows').format(v);
	}
	return String(v);
}

/* Inline SVG chart of one series of the history. */
function renderChart(points, kind, title) {
	/* The time axis spans the history so far (at most HISTORY_POINTS samples). */
	var p = logic.chartPaths(points, CHART_W, CHART_H);
	var el = svg('svg', {
		'class': 'mpconv-chart',
		'width': CHART_W, 'height': CHART_H + 14,
		'viewBox': '0 0 ' + CHART_W + ' ' + (CHART_H + 14),
		'data-kind': kind || '',
		'data-points': String(points.length),
		'role': 'img'
	});
	var t = svg('title', {});
	t.textContent = title;
	el.appendChild(t);
	el.appendChild(svg('rect', { x: 0, y: 0, width: CHART_W, height: CHART_H, fill: '#f4f7fb', stroke: '#c8d3e0' }));
	[ 0.5 ].forEach(function(f) {
		el.appendChild(svg('line', { x1: 0, x2: CHART_W, y1: CHART_H * f, y2: CHART_H * f, stroke: '#dde5ee' }));
	});
	if (p.area)
		el.appendChild(svg('path', { d: p.area, fill: 'rgba(0, 114, 206, 0.18)', stroke: 'none' }));
	if (p.line)
		el.appendChild(svg('path', { 'class': 'mpconv-line', d: p.line, fill: 'none', stroke: '#0072ce', 'stroke-width': 1.5 }));
	var max = svg('text', { x: 3, y: 10, 'font-size': 9, fill: '#567' });
	max.textContent = 'max ' + seriesLabel(kind, p.max);
	el.appendChild(max);
	var last = svg('text', { x: CHART_W, y: CHART_H + 12, 'font-size': 10, fill: '#234', 'text-anchor': 'end' });
	last.textContent = seriesLabel(kind, p.last);
	el.appendChild(last);
	return el;
}

/*
 * Badge colours by logic.uplinkBadge() class, set inline: LuCI themes differ in their
 * label classes (bootstrap has no red one).
 */
var BADGE_STYLE = {
	success: 'background:#2e7d32;color:#fff',
	warning: 'background:#f0ad4e;color:#222',
	danger: 'background:#c62828;color:#fff',
	notice: 'background:#5b6b7b;color:#fff'
};
var LABEL_STYLE = 'display:inline-block;padding:1px 6px;border-radius:3px;font-size:90%;';

/* Text from the daemon goes in as a text node, never as markup. */
function txt(v) {
	return document.createTextNode(v == null ? '-' : String(v));
}

function table(id, titles, rows, empty) {
	var t = E('table', { 'class': 'table', 'id': id }, [
		E('tr', { 'class': 'tr table-titles' }, titles.map(function(h) {
			return E('th', { 'class': 'th' }, h);
		}))
	]);
	rows.forEach(function(r) { t.appendChild(r); });
	if (!rows.length)
		t.appendChild(E('tr', { 'class': 'tr placeholder' }, [
			E('td', { 'class': 'td', 'colspan': titles.length }, E('em', empty))
		]));
	return t;
}

return view.extend({
	load: function() {
		return L.resolveDefault(callStatus(), {});
	},

	/* ubus mpconv handover: {"ok":true,"uplink":N,"connections":N} or {"error":...}. */
	handleHandover: function(name, ev) {
		return callHandover(name).then(function(res) {
			var r = logic.handoverResult(name, res);
			ui.addNotification(null, E('p', { 'class': 'mpconv-handover-result' }, [ txt(r.text) ]), r.ok ? 'info' : 'danger');
		}).catch(function(err) {
			ui.addNotification(null, E('p', { 'class': 'mpconv-handover-result' },
				[ txt(logic.handoverResult(name, { error: err.message || String(err) }).text) ]), 'danger');
		});
	},

	renderDaemon: function(st) {
		var d = logic.daemonState(st);
		if (!d.running)
			return E('div', { 'class': 'alert-message warning', 'id': 'mpconv-daemon' }, [
				E('strong', _('mpconv is not running.')), ' ',
				E('span', { 'class': 'mpconv-error' }, [ txt(d.error || '') ]), ' ',
				E('span', _('Enable it under Settings, or see the system log.'))
			]);
		var up = (st.uplinks || []).length, conns = (st.connections || []).length;
		return E('div', { 'class': 'alert-message success', 'id': 'mpconv-daemon' }, [
			E('strong', _('mpconv is running')), ' ',
			txt(_('(%s mode, %d uplinks, %d converted connections)').format(st.mode || '?', up, conns))
		]);
	},

	renderUplinks: function(st) {
		var self = this, hist = this.history;
		var rows = (st.uplinks || []).map(function(u) {
			var key = 'uplink:' + u.name;
			var addrs = [ u.addr4, u.addr6 ].filter(function(a) { return a; });
			var badge = logic.uplinkBadge(u), probe = logic.probeSummary(u);
			return E('tr', { 'class': 'tr mpconv-uplink', 'data-uplink': u.name, 'data-state': badge.state }, [
				E('td', { 'class': 'td', 'data-title': _('Uplink') }, [
					E('strong', [ txt(u.name) ]),
					u.backup === true ? E('span', { 'class': 'label mpconv-backup', 'style': LABEL_STYLE + 'margin-left:.5em;background:#e3e8ee;color:#234', 'title': _('Backup uplink: carries data only while no other uplink is up') }, _('backup')) : ''
				]),
				E('td', { 'class': 'td', 'data-title': _('Device') }, [ txt(u.device) ]),
				E('td', { 'class': 'td', 'data-title': _('State') },
					E('span', { 'class': 'label mpconv-state ' + badge.cls, 'data-state': badge.state, 'style': LABEL_STYLE + BADGE_STYLE[badge.cls] }, [ txt(badge.label) ])),
				E('td', { 'class': 'td mpconv-probe', 'data-title': _('Probe'), 'data-probe': probe.kind },
					probe.active ? [
						E('span', { 'class': 'mpconv-probe-kind' }, [ txt(probe.kind) ]), ' ',
						E('span', { 'class': 'mpconv-rtt', 'title': _('round-trip time of the last answered probe') }, [ txt(probe.rtt) ]), ', ',
						E('span', { 'class': 'mpconv-loss', 'title': _('probes lost') }, [ txt(_('%s loss').format(probe.loss)) ])
					] : [ txt(probe.kind === 'none' ? _('off') : '-') ]),
				E('td', { 'class': 'td mpconv-subflows', 'data-title': _('Subflows') }, String(u.subflows != null ? u.subflows : '-')),
				E('td', { 'class': 'td', 'data-title': _('Address') }, [ txt(addrs.length ? addrs.join(', ') : '-') ]),
				E('td', { 'class': 'td', 'data-title': _('MTU') }, u.mtu != null ? String(u.mtu) : '-'),
				E('td', { 'class': 'td', 'data-title': _('Activity') },
					renderChart(hist.get(key), hist.kind(key), _('%s: %s').format(u.name, hist.kind(key) === 'bytes' ? _('throughput') : _('subflows')))),
				E('td', { 'class': 'td cbi-section-actions' }, E('button', {
					'class': 'btn cbi-button cbi-button-action mpconv-handover',
					'title': _('Move the connections to %s').format(u.name),
					'click': ui.createHandlerFn(self, 'handleHandover', u.name)
				}, _('Handover')))
			]);
		});
		var bytes = (st.uplinks || []).some(function(u) { return logic.uplinkMetric(u).kind === 'bytes'; });
		return E('div', { 'class': 'cbi-section' }, [
			E('h3', _('Uplinks')),
			bytes ? '' : E('p', { 'class': 'cbi-section-descr' },
				_('The daemon does not report per-uplink byte counters yet: the activity graphs show each uplink\'s subflow count.')),
			table('mpconv-uplinks', [ _('Uplink'), _('Device'), _('State'), _('Probe'), _('Subflows'), _('Address'), _('MTU'), _('Activity'), '' ],
				rows, _('No uplinks'))
		]);
	},

	renderThroughput: function(st) {
		var pts = this.history.get('io:sent');
		return E('div', { 'class': 'cbi-section' }, [
			E('h3', _('Packets sent by the converter')),
			E('div', { 'id': 'mpconv-io-chart' }, renderChart(pts, 'packets', _('packets sent per second'))),
			E('p', { 'class': 'cbi-section-descr' }, _('All uplinks together, per second, sampled every %d s.').format(POLL_INTERVAL))
		]);
	},

	renderConnections: function(st) {
		var names = (st.uplinks || []).map(function(u) { return u.name; });
		var conns = st.connections || [];
		var rows = conns.slice(0, MAX_CONNECTION_ROWS).map(function(c) {
			var by = logic.subflowsByUplink(c, names);
			var cols = [
				E('td', { 'class': 'td', 'data-title': _('Client') }, [ txt(c.client) ]),
				E('td', { 'class': 'td', 'data-title': _('Server') }, [ txt(c.server) ]),
				E('td', { 'class': 'td', 'data-title': _('State') }, [ txt(c.state) ])
			];
			Object.keys(by).forEach(function(n) {
				cols.push(E('td', { 'class': 'td mpconv-sf', 'data-title': n, 'data-uplink': n },
					[ txt(by[n].length ? by[n].map(function(sf) {
						return sf.backup === true ? _('port %d (%s, backup)').format(sf.port, sf.state) : _('port %d (%s)').format(sf.port, sf.state);
					}).join(', ') : '-') ]));
			});
			return E('tr', { 'class': 'tr mpconv-conn' }, cols);
		});
		var extra = Object.keys(conns.length ? logic.subflowsByUplink(conns[0], names) : {}).filter(function(n) {
			return names.indexOf(n) < 0;
		});
		var titles = [ _('Client'), _('Server'), _('State') ].concat(names, extra);
		return E('div', { 'class': 'cbi-section' }, [
			E('h3', _('Converted connections (%d)').format(conns.length)),
			table('mpconv-connections', titles, rows, _('No converted connection right now')),
			conns.length > MAX_CONNECTION_ROWS
				? E('p', { 'class': 'cbi-section-descr' }, _('%d more not shown.').format(conns.length - MAX_CONNECTION_ROWS)) : ''
		]);
	},

	renderCounters: function(st) {
		var rows = logic.nonZeroCounters(st.counters).map(function(kv) {
			return E('tr', { 'class': 'tr mpconv-counter', 'data-counter': kv[0] }, [
				E('td', { 'class': 'td' }, [ txt(kv[0]) ]),
				E('td', { 'class': 'td' }, logic.fmtCount(kv[1]))
			]);
		});
		var io = st.io || {};
		var iorows = Object.keys(io).map(function(k) {
			return E('tr', { 'class': 'tr mpconv-io', 'data-counter': k }, [
				E('td', { 'class': 'td' }, [ txt(k) ]),
				E('td', { 'class': 'td' }, logic.fmtCount(io[k]))
			]);
		});
		return E('div', { 'class': 'cbi-section' }, [
			E('h3', _('Counters')),
			E('div', { 'style': 'display:flex;gap:2em;flex-wrap:wrap;align-items:flex-start' }, [
				E('div', { 'style': 'flex:1 1 20em' }, table('mpconv-counters', [ _('MPTCP counter (non-zero)'), _('Value') ], rows, _('All zero'))),
				E('div', { 'style': 'flex:1 1 20em' }, table('mpconv-io', [ _('Packet I/O'), _('Packets') ], iorows, _('None')))
			])
		]);
	},

	update: function(root, st) {
		st = st || {};
		var d = logic.daemonState(st);
		if (d.running)
			this.history.push(st, Date.now());
		var parts = [ this.renderDaemon(st) ];
		if (d.running)
			parts.push(this.renderUplinks(st), this.renderThroughput(st), this.renderConnections(st), this.renderCounters(st));
		dom.content(root.querySelector('#mpconv-body'), parts);
	},

	render: function(status) {
		this.history = new logic.History(HISTORY_POINTS);
		var root = E('div', { 'class': 'cbi-map', 'id': 'mpconv-status' }, [
			E('h2', _('Bonding (mpconv): status')),
			E('div', { 'class': 'cbi-map-descr' },
				_('Uplinks, converted connections and counters of the TCP to MPTCP converter, refreshed every %d s.').format(POLL_INTERVAL)),
			E('div', { 'id': 'mpconv-body' })
		]);
		this.update(root, status);
		poll.add(L.bind(function() {
			return L.resolveDefault(callStatus(), {}).then(L.bind(this.update, this, root));
		}, this), POLL_INTERVAL);
		return root;
	},

	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
