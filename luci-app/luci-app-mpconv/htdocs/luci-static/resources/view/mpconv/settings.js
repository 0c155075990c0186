'use strict';
'require view';
'require form';
'require uci';
'require ui';
'require rpc';
'require tools.widgets as widgets';
'require mpconv.logic as logic';

/*
 * /etc/config/mpconv: one 'config mpconv' section and up to 8 named
 * 'config uplink' sections. Every rule below mirrors the daemon's loader
 * (src/config/mod.rs), so that what the form accepts `mpconv check` accepts;
 * options marked reserved are accepted and ignored by this daemon version.
 */

/* Empty values are left to rmempty/optional; the rest goes to `fn`. */
function check(fn) {
	var args = Array.prototype.slice.call(arguments, 1);
	return function(section_id, value) {
		if (value == null || value === '')
			return true;
		return fn.apply(null, [ value ].concat(args));
	};
}

/* rpcd's file object; the ACL grants this one file. */
var callReadFile = rpc.declare({
	object: 'file',
	method: 'read',
	params: [ 'path' ],
	expect: { data: '' }
});

var LOCAL_PORTS = '/proc/sys/net/ipv4/ip_local_port_range';

function mainSection() {
	var s = uci.sections('mpconv', 'mpconv')[0];
	return s ? s['.name'] : null;
}

/* Uplink sections that are not disabled, from the form's current values. */
function enabledUplinks(map) {
	var sec = null;
	map.children.forEach(function(s) {
		if (s.sectiontype === 'uplink')
			sec = s;
	});
	if (!sec)
		return [];
	return sec.cfgsections().filter(function(sid) {
		return sec.formvalue(sid, 'disabled') !== '1';
	});
}

return view.extend({
	load: function() {
		return Promise.all([
			uci.load('mpconv'),
			/* Unknown (not readable): the daemon still checks at start. */
			L.resolveDefault(callReadFile(LOCAL_PORTS), '')
		]);
	},

	render: function(data) {
		var m, s, o;
		var localPorts = data ? data[1] : '';

		m = new form.Map('mpconv', _('Bonding (mpconv)'),
			_('mpconv turns the TCP connections of LAN hosts into Multipath TCP connections spread over several uplinks. ' +
			  'Servers that speak MPTCP get one subflow per uplink; the others keep plain TCP.'));

		s = m.section(form.TypedSection, 'mpconv', _('General settings'));
		s.anonymous = true;
		s.addremove = false;
		s.tab('general', _('General'));
		s.tab('advanced', _('Advanced'));

		o = s.taboption('general', form.Flag, 'enabled', _('Enable'),
			_('Needs at least one LAN device and one enabled uplink.'));
		o.rmempty = false;
		o.validate = function(section_id, value) {
			if (value !== '1')
				return true;
			var lan = this.map.lookupOption('lan', section_id);
			if (lan && L.toArray(lan[0].formvalue(section_id)).length === 0)
				return _('Select at least one LAN device to enable mpconv');
			if (enabledUplinks(this.map).length === 0)
				return _('Add at least one enabled uplink to enable mpconv');
			return true;
		};

		o = s.taboption('general', form.ListValue, 'mode', _('Mode'));
		o.value('implicit', _('Implicit: MPTCP straight to servers that support it'));
		o.value('explicit', _('Explicit: every connection through a concentrator (RFC 8803)'));
		o.default = 'implicit';

		o = s.taboption('general', form.Value, 'concentrator', _('Concentrator'),
			_('The concentrator (RFC 8803) as <code>ADDR[:PORT]</code>, an IP address, e.g. <code>192.0.2.10:5124</code> or <code>[2001:db8::10]:5124</code>; port 5124 if left out.'));
		o.depends('mode', 'explicit');
		o.placeholder = '192.0.2.10:5124';
		o.rmempty = false;
		o.validate = function(section_id, value) {
			if (value == null || value === '')
				return _('Required in explicit mode');
			return logic.validConcentrator(value);
		};

		o = s.taboption('general', form.Value, 'secret', _('Concentrator secret'),
			_('Shared with the concentrator, at least 16 characters.'));
		o.depends('mode', 'explicit');
		o.password = true;
		o.validate = check(logic.validSecret);

		o = s.taboption('general', form.ListValue, 'scheduler', _('Scheduler'),
			_('Which subflows carry the data. Implicit mode always uses a single subflow.'));
		o.depends('mode', 'explicit');
		o.value('weighted', _('weighted: all subflows, by their measured delivery rate'));
		o.value('single', _('single: one active subflow'));
		o.default = 'weighted';

		o = s.taboption('general', form.DynamicList, 'exclude', _('Not through the concentrator'),
			_('Destination prefixes (<code>ADDR/LEN</code>) reached directly instead of through the concentrator.'));
		o.depends('mode', 'explicit');
		o.placeholder = '192.0.2.0/24';
		o.validate = function(section_id, value) {
			var seen = {}, items = L.toArray(value);
			for (var i = 0; i < items.length; i++) {
				var ok = logic.validPrefix(items[i]);
				if (ok !== true)
					return ok;
				if (seen[items[i]])
					return _('%s is listed twice').format(items[i]);
				seen[items[i]] = true;
			}
			return true;
		};

		o = s.taboption('general', form.DynamicList, 'exclude_port', _('Ports not through the concentrator'),
			_('Destination ports (1 to 65535) reached directly.'));
		o.depends('mode', 'explicit');
		o.placeholder = '5060';
		o.validate = function(section_id, value) {
			var items = L.toArray(value);
			for (var i = 0; i < items.length; i++) {
				var ok = logic.validNumber(items[i], 1, 65535);
				if (ok !== true)
					return ok;
			}
			return true;
		};

		o = s.taboption('general', widgets.DeviceSelect, 'lan', _('LAN devices'),
			_('Devices whose hosts\' outgoing TCP connections are converted (usually <code>br-lan</code>).'));
		o.multiple = true;
		o.noaliases = true;
		o.nocreate = false;
		o.validate = function(section_id, value) {
			var seen = {}, devs = L.toArray(value);
			for (var i = 0; i < devs.length; i++) {
				var ok = logic.validDevice(devs[i]);
				if (ok !== true)
					return ok;
				if (seen[devs[i]])
					return _('%s is listed twice').format(devs[i]);
				seen[devs[i]] = true;
			}
			return true;
		};

		o = s.taboption('general', form.Flag, 'checksum', _('Data checksums'),
			_('Ask for MPTCP data checksums: safer through middleboxes that rewrite payload, but costs CPU.'));
		o.default = '0';

		o = s.taboption('general', form.Value, 'max_connections', _('Maximum connections'),
			_('Most connections converted at once (1 to 65536); more are left as plain TCP.'));
		o.placeholder = '4096';
		o.validate = check(logic.validNumber, 1, 65536);

		o = s.taboption('general', form.Value, 'port_range', _('Subflow source ports'),
			_('<code>LO-HI</code>, at least 64 ports from 1024 up. Keep it outside the ports your LAN forwards.'));
		o.placeholder = '61000-65535';
		o.validate = check(logic.validPortRangeFor, localPorts);

		o = s.taboption('general', form.ListValue, 'log_level', _('Log level'));
		[ 'error', 'warn', 'info', 'debug', 'trace' ].forEach(function(l) { o.value(l); });
		o.default = 'info';

		o = s.taboption('advanced', form.Value, 'queue', _('NFQUEUE number'),
			_('0 to 65535. Change it only if another program already uses queue 0.'));
		o.placeholder = '0';
		o.validate = check(logic.validNumber, 0, 65535);

		o = s.taboption('advanced', form.Value, 'idle_timeout', _('Idle timeout'),
			_('Seconds without traffic before an idle connection is forgotten (10 to 86400).'));
		o.placeholder = '7440';
		o.validate = check(logic.validNumber, 10, 86400);

		o = s.taboption('advanced', form.ListValue, 'firewall', _('Firewall'));
		o.value('auto', _('auto (nftables when available)'));
		o.value('nftables', 'nftables');
		o.value('iptables', 'iptables');
		o.default = 'auto';

		o = s.taboption('advanced', form.Value, 'mark', _('Firewall mark'),
			_('Base mark, decimal or 0x hex, low 8 bits zero; uplink N uses mark + 1 + N. Change it if it clashes with mwan3 or SQM.'));
		o.placeholder = '0x6d70000';
		o.validate = check(logic.validMark);

		o = s.taboption('advanced', form.Value, 'table', _('First routing table'),
			_('Uplink N uses table + N; the tables must not reach 253, 254 or 255.'));
		o.placeholder = '6170';
		o.validate = function(section_id, value) {
			if (value == null || value === '')
				return true;
			return logic.validTable(value, enabledUplinks(this.map).length);
		};

		s = m.section(form.GridSection, 'uplink', _('Uplinks'),
			_('One row per internet connection, at most %d. The first one carries the start of each connection; the others add subflows.').format(logic.MAX_UPLINKS));
		s.anonymous = false;
		s.addremove = true;
		s.nodescriptions = true;
		s.addbtntitle = _('Add uplink');
		s.handleAdd = function(ev, name) {
			if (this.cfgsections().length >= logic.MAX_UPLINKS) {
				ui.addNotification(null, E('p', _('At most %d uplinks are supported.').format(logic.MAX_UPLINKS)), 'warning');
				return Promise.resolve();
			}
			var ok = logic.validSectionName(name);
			if (ok !== true) {
				ui.addNotification(null, E('p', _('Uplink name: %s').format(ok)), 'warning');
				return Promise.resolve();
			}
			return this.super('handleAdd', [ ev, name ]);
		};

		/*
		 * An uplink names its netifd interface, its device, or both: with an interface,
		 * the daemon takes the device (unless given), the addresses and the gateways
		 * (unless given) from netifd when it starts, and is restarted on the
		 * interface's events.
		 */
		o = s.option(form.Value, 'interface', _('Interface'),
			_('The network interface (as in Network → Interfaces, e.g. <code>wan</code>): device, addresses and gateways are taken from it.'));
		o.editable = true;
		o.placeholder = 'wan';
		o.validate = function(section_id, value) {
			if (value == null || value === '')
				return true;
			var ok = logic.validInterface(value);
			if (ok !== true || this.section.formvalue(section_id, 'disabled') === '1')
				return ok;
			var sec = this.section, others = sec.cfgsections();
			for (var i = 0; i < others.length; i++)
				if (others[i] !== section_id && sec.formvalue(others[i], 'disabled') !== '1' &&
				    this.formvalue(others[i]) === value)
					return _('%s is already used by uplink %s').format(value, others[i]);
			return true;
		};

		o = s.option(widgets.DeviceSelect, 'device', _('Device'));
		o.editable = true;
		o.noaliases = true;
		o.nocreate = false;
		o.validate = function(section_id, value) {
			var disabled = this.section.formvalue(section_id, 'disabled') === '1';
			if (value == null || value === '') {
				var iface = this.section.formvalue(section_id, 'interface');
				if (disabled || (iface != null && iface !== ''))
					return true;
				return _('Required, unless an interface is set (or disable the uplink)');
			}
			var ok = logic.validDevice(value);
			if (ok !== true || disabled)
				return ok;
			var sec = this.section, others = sec.cfgsections();
			for (var i = 0; i < others.length; i++)
				if (others[i] !== section_id && sec.formvalue(others[i], 'disabled') !== '1' &&
				    this.formvalue(others[i]) === value)
					return _('%s is already used by uplink %s').format(value, others[i]);
			var main = mainSection(), lan = main ? this.map.lookupOption('lan', main) : null;
			if (lan && L.toArray(lan[0].formvalue(main)).indexOf(value) >= 0)
				return _('%s is also a LAN device').format(value);
			return true;
		};

		o = s.option(form.Value, 'gateway', _('IPv4 gateway'));
		o.editable = true;
		o.placeholder = _('none (PPP, LTE)');
		o.validate = check(logic.validGateway4);

		o = s.option(form.Value, 'gateway6', _('IPv6 gateway'));
		o.editable = true;
		o.placeholder = 'fe80::1';
		o.validate = check(logic.validGateway6);

		o = s.option(form.Value, 'mtu', _('MTU'));
		o.editable = true;
		o.placeholder = _('device');
		o.validate = check(logic.validMtu);

		o = s.option(form.Flag, 'backup', _('Backup'),
			_('A backup uplink carries data only while no other uplink is up (its subflows carry the MPTCP backup flag).'));
		o.editable = true;
		o.default = '0';

		/*
		 * Health probes: without targets the uplink follows its link and address events
		 * only. The targets and timings are in the row's edit dialog (modalonly).
		 */
		o = s.option(form.ListValue, 'probe', _('Probe'),
			_('How the uplink is probed: ICMP echo, a TCP connection attempt, a DNS query, or not at all. Only with probe targets.'));
		o.editable = true;
		o.value('icmp', _('ICMP'));
		o.value('tcp', _('TCP'));
		o.value('dns', _('DNS'));
		o.value('none', _('none'));
		o.default = logic.PROBE.kind;
		o.validate = check(logic.validProbeKind);

		o = s.option(form.DynamicList, 'probe_target', _('Probe targets'),
			_('Where the probes go, through this uplink, at most %d: <code>IP</code>; for TCP and DNS also <code>IP:PORT</code> or <code>[IPv6]:PORT</code> (default port 443 for TCP, 53 for DNS), e.g. <code>1.1.1.1</code> or <code>9.9.9.9:53</code>. None: no probes, link events only.').format(logic.PROBE.targets));
		o.modalonly = true;
		o.placeholder = '1.1.1.1';
		o.validate = function(section_id, value) {
			return logic.validProbeTargets(L.toArray(value), this.section.formvalue(section_id, 'probe') || logic.PROBE.kind);
		};

		o = s.option(form.Value, 'probe_interval', _('Probe interval'),
			_('Seconds between probes (%s to %s, decimals allowed).').format(logic.PROBE.interval.lo, logic.PROBE.interval.hi));
		o.modalonly = true;
		o.placeholder = logic.PROBE.interval.def;
		o.validate = check(logic.validSeconds, logic.PROBE.interval.lo, logic.PROBE.interval.hi);

		o = s.option(form.Value, 'probe_timeout', _('Probe timeout'),
			_('Seconds after which a probe counts as lost (%s to %s, decimals allowed).').format(logic.PROBE.timeout.lo, logic.PROBE.timeout.hi));
		o.modalonly = true;
		o.placeholder = logic.PROBE.timeout.def;
		o.validate = check(logic.validSeconds, logic.PROBE.timeout.lo, logic.PROBE.timeout.hi);

		o = s.option(form.Value, 'probe_down', _('Down after'),
			_('Lost probes in a row before the uplink counts as down (%d to %d).').format(logic.PROBE.down.lo, logic.PROBE.down.hi));
		o.modalonly = true;
		o.placeholder = logic.PROBE.down.def;
		o.validate = check(logic.validNumber, logic.PROBE.down.lo, logic.PROBE.down.hi);

		o = s.option(form.Value, 'probe_up', _('Up again after'),
			_('Answered probes in a row before it counts as up again (%d to %d).').format(logic.PROBE.up.lo, logic.PROBE.up.hi));
		o.modalonly = true;
		o.placeholder = logic.PROBE.up.def;
		o.validate = check(logic.validNumber, logic.PROBE.up.lo, logic.PROBE.up.hi);

		o = s.option(form.Value, 'weight', _('Weight'), _('Reserved: not used by this version.'));
		o.editable = true;
		o.placeholder = '1';
		o.validate = check(logic.validWeight);

		o = s.option(form.Flag, 'disabled', _('Disabled'));
		o.editable = true;
		o.default = '0';

		return m.render();
	}
});
