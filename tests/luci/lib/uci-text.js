'use strict';
// UCI text <-> the `values` object of ubus `uci get` ({sid: {".name", ".type",
// ".anonymous", ".index", option: "v" | ["v", ...]}}). Enough of the syntax for
// /etc/config/mpconv (config/option/list lines, '...' and "..." quoting, comments).

function tokens(line) {
  const out = [];
  let i = 0;
  while (i < line.length) {
    const c = line[i];
    if (c === ' ' || c === '\t') { i++; continue; }
    if (c === '#') break;
    let tok = '';
    while (i < line.length && line[i] !== ' ' && line[i] !== '\t') {
      const q = line[i];
      if (q === "'" || q === '"') {
        const j = line.indexOf(q, i + 1);
        if (j < 0) throw new Error('unterminated quote: ' + line);
        tok += line.slice(i + 1, j);
        i = j + 1;
      } else if (q === '\\' && i + 1 < line.length) {
        tok += line[i + 1];
        i += 2;
      } else {
        tok += q;
        i++;
      }
    }
    out.push(tok);
  }
  return out;
}

function parse(text) {
  const values = {};
  let cur = null, anon = 0, index = 0;
  for (const raw of text.split('\n')) {
    const t = tokens(raw);
    if (!t.length) continue;
    if (t[0] === 'package') continue;
    if (t[0] === 'config') {
      const name = t[2] || ('cfg' + (++anon).toString(16).padStart(6, '0'));
      cur = values[name] = { '.anonymous': !t[2], '.type': t[1], '.name': name, '.index': index++ };
    } else if (t[0] === 'option') {
      cur[t[1]] = t[2] === undefined ? '' : t[2];
    } else if (t[0] === 'list') {
      (cur[t[1]] = Array.isArray(cur[t[1]]) ? cur[t[1]] : []).push(t[2]);
    } else {
      throw new Error('bad UCI line: ' + raw);
    }
  }
  return values;
}

function quote(v) {
  return "'" + String(v).replace(/'/g, "'\\''") + "'";
}

function serialize(values) {
  const secs = Object.values(values).sort((a, b) => (a['.index'] || 0) - (b['.index'] || 0));
  const out = [];
  for (const s of secs) {
    out.push('config ' + s['.type'] + (s['.anonymous'] ? '' : ' ' + quote(s['.name'])));
    for (const [k, v] of Object.entries(s)) {
      if (k[0] === '.') continue;
      if (Array.isArray(v)) v.forEach((x) => out.push('\tlist ' + k + ' ' + quote(x)));
      else out.push('\toption ' + k + ' ' + quote(v));
    }
    out.push('');
  }
  return out.join('\n');
}

module.exports = { parse, serialize, quote };
