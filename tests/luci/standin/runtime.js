/*
 * STAND-IN FOR LuCI's CLIENT RUNTIME (luci.js, form.js, rpc.js, uci.js, ui.js,
 * dom.js, poll.js, tools/widgets.js) -- written for these tests, because LuCI
 * itself cannot be installed here. It is NOT LuCI: it implements only the
 * public API surface the mpconv views use, with the same names, arguments and
 * semantics as far as these views can tell (module loading with 'require'
 * directives, baseclass.extend/super, view.load/render/handleSave*,
 * form.Map/TypedSection/GridSection/Value/ListValue/Flag, option.validate,
 * depends, rmempty, uci.load/get/set/unset/add/remove/sections/save, rpc.declare
 * with params/expect over ubus JSON-RPC, poll.add, ui.addNotification,
 * ui.createHandlerFn, dom.content, L.bind/toArray/resolveDefault, E, _ and
 * String.prototype.format). Markup uses LuCI's class names (cbi-map,
 * cbi-section, cbi-value, cbi-input-invalid, table/tr/td, alert-message) but the
 * look and some behaviour differ: validation errors are shown inline in a
 * .cbi-value-error element instead of a tooltip, GridSection rows are edited
 * inline (no modal; options with modalonly = true, which LuCI shows only in the
 * row's edit dialog, are in a second row under it), DeviceSelect is a plain <select>/<input list>, tabs are a
 * plain tab bar.
 *
 * Works in a browser (document present) and in node (document null; then
 * Map.render() resolves to the Map itself, so a test can walk the declared
 * sections and options).
 */
(function(root) {
'use strict';

function createRuntime(opts) {
	var doc = opts.document || null;
	var fetchText = opts.fetchText;        /* url path -> Promise<string> */
	var rpcTransport = opts.rpcTransport;  /* request object -> Promise<reply object> */
	var manualPoll = !!opts.manualPoll;
	var rpcId = 1;
	var maps = [];
	var polls = [];
	var modules = {};

	/* ------------------------------------------------------------ helpers */
	function isObject(v) { return v != null && typeof v === 'object'; }

	function toArray(v) {
		if (Array.isArray(v)) return v.slice();
		if (v == null || v === '') return [];
		if (isObject(v)) return [ v ];
		return String(v).trim().split(/\s+/).filter(function(s) { return s !== ''; });
	}

	function isEqual(a, b) {
		if (Array.isArray(a) || Array.isArray(b))
			return JSON.stringify(toArray(a)) === JSON.stringify(toArray(b));
		return (a == null ? '' : String(a)) === (b == null ? '' : String(b));
	}

	function escapeHTML(s) {
		return String(s).replace(/[&<>"']/g, function(c) {
			return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
		});
	}

	/* LuCI extends String.prototype.format (sprintf-like); the subset used here. */
	if (!String.prototype.format) {
		Object.defineProperty(String.prototype, 'format', {
			configurable: true, writable: true,
			value: function() {
				var args = arguments, i = 0;
				return this.replace(/%(%|[0-9]*\.?[0-9]*[sdhf])/g, function(m, spec) {
					if (spec === '%') return '%';
					var a = args[i++], conv = spec[spec.length - 1];
					if (conv === 'd') return String(Math.trunc(+a));
					if (conv === 'f') { var p = /\.([0-9]+)/.exec(spec); return (+a).toFixed(p ? +p[1] : 6); }
					if (conv === 'h') return escapeHTML(a == null ? '' : a);
					return a == null ? '' : String(a);
				});
			}
		});
	}

	function _(s) { return s; }

	/* ------------------------------------------------------------ baseclass */
	function Class() {}
	Class.extend = function(props) {
		var Super = this;
		function C() {
			if (typeof this.__init__ === 'function')
				this.__init__.apply(this, arguments);
		}
		C.prototype = Object.create(Super.prototype);
		C.prototype.constructor = C;
		Object.keys(props || {}).forEach(function(k) { C.prototype[k] = props[k]; });
		C.extend = Class.extend;
		C.instantiate = function(args) { var o = Object.create(C.prototype); C.apply(o, args); return o; };
		return C;
	};
	/* this.super('method', [args]): the next implementation up the chain from the caller's. */
	Class.prototype.super = function(key, args) {
		var impls = [];
		for (var o = this; o; o = Object.getPrototypeOf(o))
			if (Object.prototype.hasOwnProperty.call(o, key) && impls.indexOf(o[key]) < 0)
				impls.push(o[key]);
		var dk = '__superdepth_' + key, depth = this[dk] || 0;
		var fn = impls[depth + 1];
		if (typeof fn !== 'function')
			throw new ReferenceError('super: no parent implementation of ' + key);
		this[dk] = depth + 1;
		try { return fn.apply(this, args || []); }
		finally { this[dk] = depth; }
	};
	Class.isSubclass = function(C) { return typeof C === 'function' && C.prototype instanceof Class; };

	/* ------------------------------------------------------------ dom / E */
	function appendChildren(node, children) {
		if (children == null || children === false)
			return node;
		if (Array.isArray(children)) {
			children.forEach(function(c) { appendChildren(node, c); });
		}
		else if (isObject(children) && children.nodeType) {
			node.appendChild(children);
		}
		else {
			/* LuCI inserts plain strings as markup (descriptions carry <code> etc.). */
			var t = doc.createElement('template');
			t.innerHTML = String(children);
			node.appendChild(t.content);
		}
		return node;
	}

	function E(tag, attrs, children) {
		if (!doc)
			return { tag: tag };
		if (Array.isArray(attrs) || typeof attrs === 'string' || (isObject(attrs) && attrs.nodeType)) {
			children = attrs;
			attrs = null;
		}
		var el = doc.createElement(tag);
		Object.keys(attrs || {}).forEach(function(k) {
			var v = attrs[k];
			if (v == null || v === false) return;
			if (typeof v === 'function') el.addEventListener(k, v);
			else if (k === 'style' && isObject(v)) Object.keys(v).forEach(function(p) { el.style[p] = v[p]; });
			else el.setAttribute(k, v === true ? '' : String(v));
		});
		return appendChildren(el, children);
	}

	var dom = {
		content: function(node, children) {
			while (node.firstChild) node.removeChild(node.firstChild);
			return appendChildren(node, children);
		},
		append: function(node, children) { return appendChildren(node, children); },
		elem: function(v) { return isObject(v) && v.nodeType === 1; }
	};

	/* ------------------------------------------------------------ rpc */
	var rpc = {
		declare: function(d) {
			var params = d.params || [];
			return function() {
				var args = {}, callArgs = arguments;
				params.forEach(function(p, i) { if (callArgs[i] !== undefined) args[p] = callArgs[i]; });
				var req = { jsonrpc: '2.0', id: rpcId++, method: 'call',
					params: [ '00000000000000000000000000000000', d.object, d.method, args ] };
				return rpcTransport(req).then(function(reply) {
					if (reply.error)
						throw new Error('RPC call to ' + d.object + '/' + d.method + ' failed: ' + reply.error.message);
					var res = reply.result || [];
					if (res[0] !== 0)
						throw new Error('RPC call to ' + d.object + '/' + d.method + ' failed with ubus code ' + res[0]);
					var data = res[1];
					if (d.expect) {
						var key = Object.keys(d.expect)[0], def = d.expect[key];
						var v = key === '' ? data : (isObject(data) ? data[key] : undefined);
						if (v == null || (def != null && typeof v !== typeof def))
							v = def;
						data = v;
					}
					return typeof d.filter === 'function' ? d.filter(data, args) : data;
				});
			};
		}
	};

	/* ------------------------------------------------------------ uci */
	var uciGet = rpc.declare({ object: 'uci', method: 'get', params: [ 'config' ], expect: { values: {} } });
	var uciAdd = rpc.declare({ object: 'uci', method: 'add', params: [ 'config', 'type', 'name', 'values' ] });
	var uciSet = rpc.declare({ object: 'uci', method: 'set', params: [ 'config', 'section', 'values' ] });
	var uciDel = rpc.declare({ object: 'uci', method: 'delete', params: [ 'config', 'section', 'options' ] });
	var uciApply = rpc.declare({ object: 'uci', method: 'apply', params: [ 'timeout', 'rollback' ] });
	var uciConfirm = rpc.declare({ object: 'uci', method: 'confirm' });

	var uci = {
		state: { values: {}, creates: {}, changes: {}, deletes: {} },
		load: function(conf) {
			var self = this;
			return Promise.all(toArray(conf).map(function(c) {
				return uciGet(c).then(function(v) { self.state.values[c] = v; });
			}));
		},
		unload: function(conf) { delete this.state.values[conf]; },
		section: function(conf, sid) {
			var c = this.state.creates[conf] || {}, v = this.state.values[conf] || {};
			return c[sid] || v[sid] || null;
		},
		sections: function(conf, type, cb) {
			var all = Object.assign({}, this.state.values[conf] || {}, this.state.creates[conf] || {});
			var dels = this.state.deletes[conf] || {};
			var list = Object.keys(all).map(function(k) { return all[k]; }).filter(function(s) {
				return (!type || s['.type'] === type) && dels[s['.name']] !== true;
			}).sort(function(a, b) { return (a['.index'] || 0) - (b['.index'] || 0); });
			if (cb) list.forEach(cb);
			return list;
		},
		get: function(conf, sid, opt) {
			var s = this.section(conf, sid);
			if (!s || (this.state.deletes[conf] || {})[sid] === true) return null;
			if (opt == null) return s;
			var ch = (this.state.changes[conf] || {})[sid] || {};
			if (Object.prototype.hasOwnProperty.call(ch, opt)) return ch[opt];
			var d = (this.state.deletes[conf] || {})[sid];
			if (d && d[opt]) return null;
			return s[opt] != null ? s[opt] : null;
		},
		set: function(conf, sid, opt, val) {
			if (val == null || (Array.isArray(val) && !val.length))
				return this.unset(conf, sid, opt);
			if (isEqual(this.get(conf, sid, opt), val) && this.get(conf, sid, opt) != null)
				return;
			var ch = this.state.changes[conf] = this.state.changes[conf] || {};
			(ch[sid] = ch[sid] || {})[opt] = Array.isArray(val) ? val.slice() : String(val);
			var d = (this.state.deletes[conf] || {})[sid];
			if (d && d !== true) delete d[opt];
		},
		unset: function(conf, sid, opt) {
			var ch = (this.state.changes[conf] || {})[sid];
			if (ch) delete ch[opt];
			var s = this.section(conf, sid);
			if (s && s[opt] != null) {
				var dl = this.state.deletes[conf] = this.state.deletes[conf] || {};
				if (dl[sid] !== true) (dl[sid] = dl[sid] || {})[opt] = true;
			}
		},
		add: function(conf, type, name) {
			var c = this.state.creates[conf] = this.state.creates[conf] || {};
			var n = Object.keys(this.state.values[conf] || {}).length + Object.keys(c).length;
			var sid = name || ('new' + n.toString(16));
			c[sid] = { '.name': sid, '.type': type, '.anonymous': !name, '.index': 1000 + n };
			return sid;
		},
		remove: function(conf, sid) {
			var c = this.state.creates[conf] || {};
			if (c[sid]) { delete c[sid]; return; }
			(this.state.deletes[conf] = this.state.deletes[conf] || {})[sid] = true;
		},
		changes: function() {
			var st = this.state, n = 0;
			[ st.creates, st.changes, st.deletes ].forEach(function(o) {
				Object.keys(o).forEach(function(c) { n += Object.keys(o[c]).length; });
			});
			return n;
		},
		/* Sends the staged changes like LuCI's uci.save(): add, set, delete, then reloads. */
		save: function() {
			var st = this.state, calls = [], confs = {};
			Object.keys(st.creates).forEach(function(c) {
				confs[c] = true;
				Object.keys(st.creates[c]).forEach(function(sid) {
					var s = st.creates[c][sid], vals = {};
					var ch = (st.changes[c] || {})[sid] || {};
					Object.keys(ch).forEach(function(k) { vals[k] = ch[k]; });
					if (st.changes[c]) delete st.changes[c][sid];
					calls.push(function() { return uciAdd(c, s['.type'], s['.anonymous'] ? undefined : sid, vals); });
				});
			});
			Object.keys(st.changes).forEach(function(c) {
				confs[c] = true;
				Object.keys(st.changes[c]).forEach(function(sid) {
					if (Object.keys(st.changes[c][sid]).length)
						calls.push(function() { return uciSet(c, sid, st.changes[c][sid]); });
				});
			});
			Object.keys(st.deletes).forEach(function(c) {
				confs[c] = true;
				Object.keys(st.deletes[c]).forEach(function(sid) {
					var d = st.deletes[c][sid];
					calls.push(function() { return uciDel(c, sid, d === true ? undefined : Object.keys(d)); });
				});
			});
			var self = this;
			return calls.reduce(function(p, f) { return p.then(f); }, Promise.resolve()).then(function() {
				self.state.creates = {}; self.state.changes = {}; self.state.deletes = {};
				return self.load(Object.keys(confs));
			});
		},
		apply: function(timeout) {
			return uciApply(timeout || 10, true).then(function() { return uciConfirm(); });
		}
	};

	/* ------------------------------------------------------------ ui */
	var ui = {
		addNotification: function(title, children) {
			var classes = Array.prototype.slice.call(arguments, 2);
			if (!doc) return null;
			var n = E('div', { 'class': 'alert-message fade-in ' + classes.join(' ') }, [
				title ? E('h4', title) : '',
				E('div', children),
				E('div', { 'class': 'right' }, E('button', { 'class': 'btn', 'click': function() { n.remove(); } }, _('Dismiss')))
			]);
			doc.getElementById('tooltip-notifications').appendChild(n);
			return n;
		},
		createHandlerFn: function(ctx, fn) {
			var args = Array.prototype.slice.call(arguments, 2);
			if (typeof fn === 'string') fn = ctx[fn];
			return function(ev) {
				var btn = ev && ev.currentTarget;
				if (btn) { btn.classList.add('spinning'); btn.disabled = true; }
				return Promise.resolve(fn.apply(ctx, args.concat([ ev ]))).catch(function(e) {
					/* errors already shown to the user (refused save) end here; others propagate */
					if (!(e && e.shownToUser)) throw e;
				}).finally(function() {
					if (btn) { btn.classList.remove('spinning'); btn.disabled = false; }
				});
			};
		},
		changes: {
			apply: function(checked) {
				return uci.apply(10).then(function() {
					ui.addNotification(null, E('p', _('Configuration changes applied.')), 'info');
				});
			}
		}
	};

	/* ------------------------------------------------------------ poll */
	var poll = {
		add: function(fn, interval) {
			var e = { fn: fn, interval: interval || 5 };
			polls.push(e);
			if (!manualPoll)
				e.timer = setInterval(function() { fn(); }, e.interval * 1000);
			return true;
		},
		remove: function(fn) {
			polls = polls.filter(function(e) { if (e.fn === fn) clearInterval(e.timer); return e.fn !== fn; });
		},
		/* stand-in only: run every poll function once, now */
		runAll: function() { return Promise.all(polls.map(function(e) { return e.fn(); })); },
		intervals: function() { return polls.map(function(e) { return e.interval; }); }
	};

	/* ------------------------------------------------------------ form */
	var CBIMap = Class.extend({
		__init__: function(config, title, description) {
			this.config = config;
			this.title = title || '';
			this.description = description || '';
			this.children = [];
			this.data = uci;
			maps.push(this);
		},
		section: function(Cls) {
			var s = Cls.instantiate([ this ].concat(Array.prototype.slice.call(arguments, 1)));
			this.children.push(s);
			return s;
		},
		load: function() { return uci.load(this.config); },
		lookupOption: function(name, section_id) {
			for (var i = 0; i < this.children.length; i++) {
				var s = this.children[i];
				if (section_id != null && s.cfgsections().indexOf(section_id) < 0) continue;
				for (var j = 0; j < s.children.length; j++)
					if (s.children[j].option === name)
						return [ s.children[j], section_id ];
			}
			return null;
		},
		checkDepends: function() {
			this.children.forEach(function(s) { s.checkDepends(); });
		},
		render: function() {
			var self = this;
			return this.load().then(function() {
				if (!doc) return self;
				return self.renderContents();
			});
		},
		renderContents: function() {
			var self = this;
			var node = this.node || (this.node = E('div', { 'class': 'cbi-map', 'id': 'cbi-' + this.config }));
			node.__map = this;
			dom.content(node, [
				this.title ? E('h2', { 'name': 'content' }, this.title) : '',
				this.description ? E('div', { 'class': 'cbi-map-descr' }, this.description) : '',
				this.children.map(function(s) { return s.render(); })
			]);
			this.checkDepends();
			this.children.forEach(function(s) { s.validateAll(); });
			return node;
		},
		/* Validates everything active and writes it into uci, like LuCI's Map.parse(). */
		parse: function() {
			var errors = [];
			this.checkDepends();
			this.children.forEach(function(s) {
				s.cfgsections().forEach(function(sid) {
					s.children.forEach(function(o) {
						try { o.parse(sid); }
						catch (e) { errors.push(e.message); }
					});
				});
			});
			if (errors.length)
				return Promise.reject(new Error(errors.join('\n')));
			return Promise.resolve();
		},
		save: function(cb, silent) {
			var self = this;
			return this.parse().then(cb).then(function() { return uci.save(); }).then(function() {
				if (doc) self.renderContents();
			}).catch(function(e) {
				if (!silent) {
					ui.addNotification(_('Save error'), E('p', [ _('One or more invalid/required values: '), E('em', { 'style': 'white-space:pre-wrap' }, [ doc ? doc.createTextNode(e.message) : '' ]) ]), 'danger');
					e.shownToUser = true;
				}
				throw e;
			});
		},
		reset: function() {
			return uci.load(this.config).then(this.renderContents.bind(this));
		}
	});

	var AbstractSection = Class.extend({
		__init__: function(map, sectiontype, title, description) {
			this.map = map;
			this.config = map.config;
			this.sectiontype = sectiontype;
			this.title = title || '';
			this.description = description || '';
			this.children = [];
			this.tabs = null;
			this.anonymous = false;
			this.addremove = false;
		},
		tab: function(name, title) {
			(this.tabs = this.tabs || []).push({ name: name, title: title });
		},
		option: function(Cls, name, title, description) {
			var o = Cls.instantiate([ this.map, this, name, title, description ]);
			this.children.push(o);
			return o;
		},
		taboption: function(tab) {
			var o = this.option.apply(this, Array.prototype.slice.call(arguments, 1));
			o.tab = tab;
			return o;
		},
		cfgsections: function() {
			return uci.sections(this.config, this.sectiontype).map(function(s) { return s['.name']; });
		},
		formvalue: function(section_id, option) {
			for (var i = 0; i < this.children.length; i++)
				if (this.children[i].option === option)
					return this.children[i].formvalue(section_id);
			return null;
		},
		checkDepends: function() {
			var self = this;
			this.cfgsections().forEach(function(sid) {
				self.children.forEach(function(o) { o.applyActive(sid); });
			});
		},
		validateAll: function() {
			var self = this;
			this.cfgsections().forEach(function(sid) {
				self.children.forEach(function(o) { o.triggerValidation(sid, true); });
			});
		},
		handleAdd: function(ev, name) {
			var self = this;
			if (!this.anonymous) {
				if (!/^[A-Za-z0-9_]+$/.test(name || '') || uci.get(this.config, name)) {
					ui.addNotification(null, E('p', _('Invalid or duplicate section name')), 'warning');
					return Promise.resolve();
				}
			}
			return this.map.save(function() {
				uci.add(self.config, self.sectiontype, self.anonymous ? null : name);
			}, false);
		},
		handleRemove: function(section_id) {
			var self = this;
			return this.map.save(function() { uci.remove(self.config, section_id); }, false);
		},
		renderAddRow: function() {
			var self = this;
			if (!this.addremove) return '';
			var input = this.anonymous ? null : E('input', { 'type': 'text', 'class': 'cbi-section-create-name', 'placeholder': _('name') });
			return E('div', { 'class': 'cbi-section-create' }, [
				input || '',
				E('button', { 'class': 'cbi-button cbi-button-add', 'title': this.addbtntitle || _('Add'),
					'click': ui.createHandlerFn(this, function(ev) { return self.handleAdd(ev, input ? input.value.trim() : null); }) },
					this.addbtntitle || _('Add'))
			]);
		}
	});

	var TypedSection = AbstractSection.extend({
		renderOptionRows: function(sid, opts) {
			return opts.map(function(o) { return o.renderRow(sid); });
		},
		render: function() {
			var self = this;
			var node = E('div', { 'class': 'cbi-section', 'id': 'cbi-' + this.config + '-' + this.sectiontype }, [
				this.title ? E('h3', this.title) : '',
				this.description ? E('div', { 'class': 'cbi-section-descr' }, this.description) : ''
			]);
			this.cfgsections().forEach(function(sid) {
				var body = E('div', { 'class': 'cbi-section-node', 'id': 'cbi-' + self.config + '-' + sid, 'data-section-id': sid });
				if (!self.anonymous) body.appendChild(E('h4', sid));
				if (self.tabs) {
					var menu = E('ul', { 'class': 'cbi-tabmenu' });
					body.appendChild(menu);
					self.tabs.forEach(function(t, i) {
						var pane = E('div', { 'class': 'cbi-tab-pane', 'data-tab': t.name, 'style': i ? 'display:none' : '' },
							self.renderOptionRows(sid, self.children.filter(function(o) { return o.tab === t.name; })));
						var li = E('li', { 'class': i ? 'cbi-tab-disabled' : 'cbi-tab', 'data-tab': t.name }, E('a', {
							'href': '#', 'click': function(ev) {
								ev.preventDefault();
								menu.querySelectorAll('li').forEach(function(l) { l.className = l === li ? 'cbi-tab' : 'cbi-tab-disabled'; });
								body.querySelectorAll('.cbi-tab-pane').forEach(function(p) { p.style.display = p === pane ? '' : 'none'; });
							} }, t.title));
						menu.appendChild(li);
						body.appendChild(pane);
					});
				}
				else {
					appendChildren(body, self.renderOptionRows(sid, self.children));
				}
				node.appendChild(body);
			});
			appendChildren(node, this.renderAddRow());
			return node;
		}
	});

	var NamedSection = TypedSection.extend({
		__init__: function(map, section, sectiontype, title, description) {
			this.super('__init__', [ map, sectiontype, title, description ]);
			this.section = section;
		},
		cfgsections: function() { return uci.get(this.config, this.section) ? [ this.section ] : []; }
	});

	var GridSection = TypedSection.extend({
		render: function() {
			var self = this;
			var cols = this.children.filter(function(o) { return !o.modalonly; });
			var table = E('table', { 'class': 'table cbi-section-table' }, [
				E('tr', { 'class': 'tr cbi-section-table-titles' }, [
					this.anonymous ? '' : E('th', { 'class': 'th cbi-section-table-cell' }, _('Name'))
				].concat(cols.map(function(o) {
					return E('th', { 'class': 'th cbi-section-table-cell', 'data-widget': o.option,
						'title': self.nodescriptions ? null : (o.description || null) }, o.title);
				}), [ E('th', { 'class': 'th cbi-section-actions' }) ]))
			]);
			/* LuCI shows options with modalonly = true only in the row's edit dialog; the
			 * stand-in renders them inline too, in a second row under the section's row. */
			var modal = this.children.filter(function(o) { return o.modalonly === true; });
			this.cfgsections().forEach(function(sid) {
				table.appendChild(E('tr', { 'class': 'tr cbi-section-table-row', 'id': 'cbi-' + self.config + '-' + sid, 'data-sid': sid },
					[ self.anonymous ? '' : E('td', { 'class': 'td cbi-value-field', 'data-title': _('Name') }, E('strong', [ doc.createTextNode(sid) ])) ]
					.concat(cols.map(function(o) { return o.renderCell(sid); }), [
						E('td', { 'class': 'td cbi-section-table-cell nowrap cbi-section-actions' },
							self.addremove ? E('button', { 'class': 'cbi-button cbi-button-remove', 'title': _('Delete'),
								'click': ui.createHandlerFn(self, 'handleRemove', sid) }, _('Delete')) : '')
					])));
				if (modal.length)
					table.appendChild(E('tr', { 'class': 'tr cbi-section-table-modal', 'data-modal-sid': sid },
						E('td', { 'class': 'td', 'colspan': cols.length + 2 },
							E('div', { 'class': 'cbi-section-node standin-modal' }, [ E('h4', _('%s: more settings').format(sid)) ].concat(
								modal.map(function(o) { return o.renderRow(sid); }))))));
			});
			if (!this.cfgsections().length)
				table.appendChild(E('tr', { 'class': 'tr placeholder' }, E('td', { 'class': 'td' }, E('em', _('This section contains no values yet')))));
			return E('div', { 'class': 'cbi-section cbi-tblsection', 'id': 'cbi-' + this.config + '-' + this.sectiontype }, [
				this.title ? E('h3', this.title) : '',
				this.description ? E('div', { 'class': 'cbi-section-descr' }, this.description) : '',
				table,
				this.renderAddRow()
			]);
		}
	});

	var AbstractValue = Class.extend({
		__init__: function(map, section, option, title, description) {
			this.map = map;
			this.section = section;
			this.option = option;
			this.title = title || '';
			this.description = description || '';
			this.deps = [];
			this.rmempty = true;
			this.optional = false;
			this.default = null;
			this.widgets = {};
			this.rows = {};
		},
		depends: function(field, value) {
			var d = isObject(field) ? field : (function() { var o = {}; o[field] = value; return o; })();
			this.deps.push(d);
		},
		ucikey: function() { return this.ucioption || this.option; },
		cfgvalue: function(sid) { return uci.get(this.map.config, sid, this.ucikey()); },
		textvalue: function(sid) { var v = this.cfgvalue(sid); return v == null ? this.default : v; },
		/* The widget's value when rendered, else the stored one. */
		formvalue: function(sid) {
			var w = this.widgets[sid];
			if (w) return this.readWidget(w);
			var v = this.cfgvalue(sid);
			return v == null ? (this.default != null ? this.default : null) : v;
		},
		isActive: function(sid) {
			if (!this.deps.length) return true;
			var sec = this.section;
			return this.deps.some(function(d) {
				return Object.keys(d).every(function(k) {
					var o = null;
					sec.children.forEach(function(c) { if (c.option === k) o = c; });
					var v = o ? o.formvalue(sid) : uci.get(sec.config, sid, k);
					return isEqual(v, d[k]);
				});
			});
		},
		/* true, or the error message */
		check: function(sid, value) {
			if (typeof this.validate === 'function') {
				var r = this.validate(sid, value);
				if (r !== true) return r === false ? _('Invalid value') : String(r);
			}
			return true;
		},
		isValid: function(sid) {
			if (!this.isActive(sid)) return true;
			return this.check(sid, this.formvalue(sid)) === true;
		},
		write: function(sid, val) { uci.set(this.map.config, sid, this.ucikey(), val); },
		remove: function(sid) { uci.unset(this.map.config, sid, this.ucikey()); },
		parse: function(sid) {
			var active = this.isActive(sid);
			var cval = this.cfgvalue(sid), fval = active ? this.formvalue(sid) : null;
			if (active) {
				var ok = this.check(sid, fval);
				if (ok !== true)
					throw new Error((this.title || this.option) + ' (' + sid + '): ' + ok);
			}
			var empty = fval == null || fval === '' || (Array.isArray(fval) && !fval.length);
			if (!empty) {
				if (!isEqual(cval, fval) || cval == null) this.write(sid, fval);
			}
			else if (!this.retain) {
				if (!active || this.rmempty || this.optional) this.remove(sid);
				else throw new Error((this.title || this.option) + ' (' + sid + '): ' + _('required'));
			}
		},
		/* ---- rendering */
		makeWidget: function(sid) {
			var v = this.formvalue(sid);
			return E('input', { 'type': this.password ? 'password' : 'text', 'class': 'cbi-input-text',
				'id': 'widget.cbid.' + this.map.config + '.' + sid + '.' + this.option,
				'name': 'cbid.' + this.map.config + '.' + sid + '.' + this.option,
				'placeholder': this.placeholder || null, 'value': v == null ? '' : v });
		},
		readWidget: function(w) { return w.value.trim(); },
		bindWidget: function(sid, w) {
			var self = this;
			this.widgets[sid] = w;
			[ 'input', 'change' ].forEach(function(evn) {
				w.addEventListener(evn, function() {
					self.map.checkDepends();
					self.map.children.forEach(function(s) { s.validateAll(); });
				});
			});
			return w;
		},
		triggerValidation: function(sid, quiet) {
			var w = this.widgets[sid], row = this.rows[sid];
			if (!w || !row) return true;
			var ok = this.isActive(sid) ? this.check(sid, this.formvalue(sid)) : true;
			var err = row.querySelector('.cbi-value-error');
			w.classList.toggle('cbi-input-invalid', ok !== true);
			err.textContent = ok === true ? '' : ok;
			err.style.display = ok === true ? 'none' : '';
			return ok;
		},
		applyActive: function(sid) {
			var row = this.rows[sid];
			if (row) row.style.display = this.isActive(sid) ? '' : 'none';
		},
		renderRow: function(sid) {
			var w = this.bindWidget(sid, this.makeWidget(sid));
			var row = E('div', { 'class': 'cbi-value', 'id': 'cbi-' + this.map.config + '-' + sid + '-' + this.option, 'data-name': this.option }, [
				E('label', { 'class': 'cbi-value-title', 'for': w.id || null }, this.title),
				E('div', { 'class': 'cbi-value-field' }, [
					w,
					E('div', { 'class': 'cbi-value-error', 'style': 'display:none' }),
					this.description ? E('div', { 'class': 'cbi-value-description' }, this.description) : ''
				])
			]);
			this.rows[sid] = row;
			return row;
		},
		renderCell: function(sid) {
			var w = this.bindWidget(sid, this.makeWidget(sid));
			var cell = E('td', { 'class': 'td cbi-value-field', 'data-name': this.option, 'data-title': this.title,
				'id': 'cbi-' + this.map.config + '-' + sid + '-' + this.option }, [
				w, E('div', { 'class': 'cbi-value-error', 'style': 'display:none' })
			]);
			this.rows[sid] = cell;
			return cell;
		}
	});

	var Value = AbstractValue.extend({});

	var ListValue = AbstractValue.extend({
		__init__: function() {
			this.super('__init__', arguments);
			this.keylist = [];
			this.vallist = [];
		},
		value: function(key, label) {
			this.keylist.push(String(key));
			this.vallist.push(label != null ? label : String(key));
		},
		makeWidget: function(sid) {
			var v = this.formvalue(sid), self = this;
			return E('select', { 'class': 'cbi-input-select', 'id': 'widget.cbid.' + this.map.config + '.' + sid + '.' + this.option },
				this.keylist.map(function(k, i) {
					return E('option', { 'value': k, 'selected': isEqual(k, v) ? true : null }, self.vallist[i]);
				}));
		},
		readWidget: function(w) { return w.value; }
	});

	var Flag = AbstractValue.extend({
		__init__: function() {
			this.super('__init__', arguments);
			this.enabled = '1';
			this.disabled = '0';
			this.default = this.disabled;
		},
		formvalue: function(sid) {
			var w = this.widgets[sid];
			if (w) return w.checked ? this.enabled : this.disabled;
			var v = this.cfgvalue(sid);
			if (v == null) v = this.default;
			return [ '1', 'yes', 'on', 'true', 'enabled' ].indexOf(String(v)) >= 0 ? this.enabled : this.disabled;
		},
		makeWidget: function(sid) {
			var el = E('input', { 'type': 'checkbox', 'class': 'cbi-input-checkbox',
				'id': 'widget.cbid.' + this.map.config + '.' + sid + '.' + this.option });
			el.checked = this.formvalue(sid) === this.enabled;
			return el;
		},
		parse: function(sid) {
			if (this.isActive(sid)) {
				var fval = this.formvalue(sid), ok = this.check(sid, fval);
				if (ok !== true)
					throw new Error((this.title || this.option) + ' (' + sid + '): ' + ok);
				if (fval === this.default && (this.optional || this.rmempty)) this.remove(sid);
				else if (!isEqual(this.cfgvalue(sid), fval)) this.write(sid, fval);
			}
			else if (!this.retain) {
				this.remove(sid);
			}
		}
	});

	var DynamicList = AbstractValue.extend({
		makeWidget: function(sid) {
			return E('textarea', { 'class': 'cbi-dynlist', 'rows': Math.max(2, toArray(this.formvalue(sid)).length), 'cols': 36,
				'id': 'widget.cbid.' + this.map.config + '.' + sid + '.' + this.option,
				'placeholder': this.placeholder || null }, toArray(this.formvalue(sid)).join('\n'));
		},
		readWidget: function(w) { return w.value.split('\n').map(function(s) { return s.trim(); }).filter(Boolean); }
	});

	var form = {
		Map: CBIMap, AbstractSection: AbstractSection, TypedSection: TypedSection, NamedSection: NamedSection,
		GridSection: GridSection, AbstractValue: AbstractValue, Value: Value, ListValue: ListValue,
		Flag: Flag, DynamicList: DynamicList
	};

	/* ------------------------------------------------------------ tools.widgets */
	var getDevices = rpc.declare({ object: 'luci-rpc', method: 'getNetworkDevices', expect: { '': {} } });
	var devicesPromise = null;
	var DeviceSelect = Value.extend({
		__init__: function() {
			this.super('__init__', arguments);
			this.multiple = false;
		},
		load: function() { return devicesPromise = devicesPromise || getDevices(); },
		formvalue: function(sid) {
			var v = Value.prototype.formvalue.call(this, sid);
			return this.multiple ? toArray(v) : v;
		},
		makeWidget: function(sid) {
			var self = this, v = toArray(this.formvalue(sid));
			var devs = Object.keys(this.devices || {}).filter(function(d) {
				return d !== 'lo' && !(self.noaliases && d.charAt(0) === '@');
			}).sort();
			v.forEach(function(d) { if (devs.indexOf(d) < 0) devs.push(d); });
			var id = 'widget.cbid.' + this.map.config + '.' + sid + '.' + this.option;
			if (this.multiple)
				return E('select', { 'multiple': true, 'class': 'cbi-input-select', 'id': id, 'size': Math.min(6, Math.max(2, devs.length)) },
					devs.map(function(d) { return E('option', { 'value': d, 'selected': v.indexOf(d) >= 0 ? true : null }, [ doc.createTextNode(d) ]); }));
			var listId = id + '.list';
			var wrap = E('span', { 'class': 'cbi-device-select' }, [
				E('input', { 'type': 'text', 'class': 'cbi-input-text', 'id': id, 'list': listId, 'value': v[0] || '', 'placeholder': _('device') }),
				E('datalist', { 'id': listId }, devs.map(function(d) { return E('option', { 'value': d }); }))
			]);
			return wrap;
		},
		readWidget: function(w) {
			if (this.multiple)
				return Array.prototype.filter.call(w.options, function(o) { return o.selected; }).map(function(o) { return o.value; });
			return w.querySelector('input').value.trim();
		},
		bindWidget: function(sid, w) {
			var r = Value.prototype.bindWidget.call(this, sid, w);
			if (!w.classList.contains('cbi-input-select'))
				w.classList.add('cbi-device-wrap');
			return r;
		},
		triggerValidation: function(sid, quiet) {
			var r = Value.prototype.triggerValidation.call(this, sid, quiet);
			var w = this.widgets[sid];
			if (w && !this.multiple) w.querySelector('input').classList.toggle('cbi-input-invalid', r !== true);
			return r;
		}
	});
	/* Devices come from luci-rpc getNetworkDevices before the map renders (LuCI's widget loads them itself). */
	var origMapLoad = CBIMap.prototype.load;
	CBIMap.prototype.load = function() {
		var self = this;
		return origMapLoad.call(this).then(function() {
			var ds = [];
			self.children.forEach(function(s) { s.children.forEach(function(o) { if (o instanceof DeviceSelect) ds.push(o); }); });
			return Promise.all(ds.map(function(o) { return o.load().then(function(d) { o.devices = d; }); }));
		});
	};
	var widgets = Class.extend({ DeviceSelect: DeviceSelect });

	/* ------------------------------------------------------------ view */
	var view = Class.extend({
		__init__: function() {
			if (!doc) return;
			var self = this, vp = doc.getElementById('view');
			dom.content(vp, E('div', { 'class': 'spinning' }, _('Loading view…')));
			this.__ready = Promise.resolve(this.load()).then(function(data) { return self.render(data); }).then(function(nodes) {
				dom.content(vp, nodes);
				vp.appendChild(self.addFooter());
			}).catch(function(e) {
				dom.content(vp, E('div', { 'class': 'alert-message danger', 'id': 'view-error' }, [ doc.createTextNode(String(e && e.stack || e)) ]));
				throw e;
			});
		},
		load: function() {},
		render: function() {},
		handleSave: function(ev) {
			return Promise.all(maps.map(function(m) { return m.save(); }));
		},
		handleSaveApply: function(ev, mode) {
			return this.handleSave(ev).then(function() { return ui.changes.apply(mode == '0'); });
		},
		handleReset: function(ev) {
			return Promise.all(maps.map(function(m) { return m.reset(); }));
		},
		addFooter: function() {
			var footer = E('div', { 'class': 'cbi-page-actions' });
			if (this.handleSaveApply)
				footer.appendChild(E('button', { 'class': 'cbi-button cbi-button-apply', 'id': 'btn-save-apply',
					'click': ui.createHandlerFn(this, 'handleSaveApply', '1') }, _('Save & Apply')));
			if (this.handleSave)
				footer.appendChild(E('button', { 'class': 'cbi-button cbi-button-save', 'id': 'btn-save',
					'click': ui.createHandlerFn(this, 'handleSave') }, _('Save')));
			if (this.handleReset)
				footer.appendChild(E('button', { 'class': 'cbi-button cbi-button-reset', 'id': 'btn-reset',
					'click': ui.createHandlerFn(this, 'handleReset') }, _('Reset')));
			return footer;
		}
	});

	/* ------------------------------------------------------------ L and the module loader */
	var builtins = {
		baseclass: Class, view: view, rpc: rpc, uci: uci, ui: ui, dom: dom, poll: poll, form: form,
		'tools.widgets': widgets
	};

	var L = {
		env: { pollinterval: 5 },
		bind: function(fn, self) {
			var args = Array.prototype.slice.call(arguments, 2);
			return function() { return fn.apply(self, args.concat(Array.prototype.slice.call(arguments))); };
		},
		toArray: toArray,
		isObject: isObject,
		resolveDefault: function(p, def) { return Promise.resolve(p).catch(function() { return def; }); },
		resource: function(p) { return '/luci-static/resources/' + p; },
		error: function(type, msg) { var e = new Error(msg); e.name = type; throw e; },
		require: function(name) {
			if (modules[name]) return modules[name];
			if (Object.prototype.hasOwnProperty.call(builtins, name)) {
				var b = builtins[name];
				return modules[name] = Promise.resolve(Class.isSubclass(b) && name !== 'baseclass' && name !== 'view' ? new b() : b);
			}
			var url = L.resource(name.replace(/\./g, '/') + '.js');
			return modules[name] = fetchText(url).then(function(src) {
				/* 'require NAME [as ALIAS]' directives at the top, like luci.js. */
				var deps = [], re = /^\s*(?:'use strict'|"use strict");?|^\s*'require\s+([A-Za-z0-9_.\-]+)(?:\s+as\s+([A-Za-z_$][\w$]*))?';/gm, m, last = 0;
				var head = src.replace(/^\s*\/\*[\s\S]*?\*\/|^\s*\/\/.*$/gm, function(c) { return c.replace(/[^\n]/g, ' '); });
				var lines = head.split('\n');
				for (var i = 0; i < lines.length; i++) {
					var line = lines[i].trim();
					if (line === '' || /^['"]use strict['"];?$/.test(line)) continue;
					var r = /^'require\s+([A-Za-z0-9_.\-]+)(?:\s+as\s+([A-Za-z_$][\w$]*))?';$/.exec(line);
					if (!r) break;
					deps.push({ name: r[1], as: r[2] || r[1].split('.').pop() });
				}
				return Promise.all(deps.map(function(d) { return L.require(d.name); })).then(function(insts) {
					var fn = new Function([ 'L', 'E', '_' ].concat(deps.map(function(d) { return d.as; })).join(','), src + '\n//# sourceURL=' + url);
					var cls = fn.apply(null, [ L, E, _ ].concat(insts));
					if (!Class.isSubclass(cls))
						throw new TypeError('"' + name + '" factory yields invalid constructor');
					return new cls();
				});
			});
		}
	};

	return { L: L, E: E, _: _, form: form, uci: uci, ui: ui, poll: poll, rpc: rpc, dom: dom, view: view, maps: maps };
}

if (typeof module === 'object' && module.exports)
	module.exports = { createRuntime: createRuntime };
else
	root.LuCIStandin = { createRuntime: createRuntime };
})(typeof window !== 'undefined' ? window : globalThis);
