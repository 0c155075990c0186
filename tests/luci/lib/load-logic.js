'use strict';
// Loads luci-app-mpconv's mpconv/logic.js (a LuCI module: 'require baseclass';
// return baseclass.extend({...})) in node. The shim stands in for LuCI's
// baseclass: extend() makes a constructor and LuCI's require() instantiates it.
const fs = require('fs');
const path = require('path');

const FILE = path.join(__dirname, '..', '..', '..', 'luci-app', 'luci-app-mpconv',
  'htdocs', 'luci-static', 'resources', 'mpconv', 'logic.js');

const baseclass = {
  extend(props) {
    function C() {}
    Object.assign(C.prototype, props);
    return C;
  },
};

function loadLogic() {
  const src = fs.readFileSync(FILE, 'utf8');
  const Cls = new Function('baseclass', src + '\n//# sourceURL=' + FILE)(baseclass);
  return new Cls();
}

module.exports = { loadLogic, FILE };
