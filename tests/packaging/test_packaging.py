"""Packaging checks that need no root: the .ipk's layout, modes and control data, the
shipped configuration against the daemon's own loader, the uci-defaults script and the
rpcd plugin's JSON (with stand-ins for the mpconv binary).

Run by tests/packaging/run (which builds the .ipk first and passes it in MPCONV_IPK), or
alone: MPCONV_IPK=target/ipk/mpconv_….ipk python3 -m unittest tests/packaging/test_packaging.py
Env: MPCONV_IPK (the package to check; its tests are skipped without it),
     MPCONV_DEBUG_BIN (the daemon for `check`, default target/debug/mpconv).
"""
import io
import json
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FILES = os.path.join(ROOT, "openwrt", "mpconv", "files")
CONFIG = os.path.join(FILES, "mpconv.config")
RPCD = os.path.join(FILES, "mpconv.rpcd")
HOTPLUG = os.path.join(FILES, "mpconv.hotplug")
UCI_DEFAULTS = os.path.join(FILES, "mpconv.uci-defaults")
DEBUG_BIN = os.environ.get("MPCONV_DEBUG_BIN", os.path.join(ROOT, "target", "debug", "mpconv"))


def cargo_version():
    with open(os.path.join(ROOT, "Cargo.toml")) as f:
        return re.search(r'^version\s*=\s*"([^"]+)"', f.read(), re.M).group(1)


def json_object(text, what):
    """Parse `text` as exactly one JSON object (what rpcd requires), or fail."""
    try:
        v = json.loads(text)
    except ValueError as e:
        raise AssertionError("%s: not JSON (%s): %r" % (what, e, text))
    if not isinstance(v, dict):
        raise AssertionError("%s: top level is not an object: %r" % (what, text))
    return v


# The data files of the package: path -> (mode, source file in the tree or None).
EXPECTED_DATA = {
    "usr/sbin/mpconv": (0o755, None),
    "etc/config/mpconv": (0o600, "mpconv.config"),
    "etc/init.d/mpconv": (0o755, "mpconv.init"),
    "etc/uci-defaults/90-mpconv": (0o755, "mpconv.uci-defaults"),
    "etc/hotplug.d/iface/95-mpconv": (0o644, "mpconv.hotplug"),
    "usr/libexec/rpcd/mpconv": (0o755, "mpconv.rpcd"),
}
EXPECTED_CONTROL = {"control": 0o644, "conffiles": 0o644, "postinst": 0o755, "prerm": 0o755}


def norm(name):
    return name[2:] if name.startswith("./") else name


@unittest.skipUnless(os.environ.get("MPCONV_IPK"), "MPCONV_IPK not set (tests/packaging/run sets it)")
class Ipk(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.path = os.environ["MPCONV_IPK"]
        with open(cls.path, "rb") as f:
            cls.raw = f.read()
        outer = tarfile.open(fileobj=io.BytesIO(cls.raw), mode="r:gz")
        cls.outer_members = outer.getmembers()
        cls.members = {m.name: outer.extractfile(m).read() for m in cls.outer_members}
        cls.data = tarfile.open(fileobj=io.BytesIO(cls.members["./data.tar.gz"]), mode="r:gz")
        cls.control = tarfile.open(fileobj=io.BytesIO(cls.members["./control.tar.gz"]), mode="r:gz")

    def test_outer(self):
        self.assertEqual([m.name for m in self.outer_members],
                         ["./debian-binary", "./data.tar.gz", "./control.tar.gz"])
        self.assertEqual(self.members["./debian-binary"], b"2.0\n")
        for m in self.outer_members:
            self.assertTrue(m.isfile(), m.name)
            self.assertEqual((m.uid, m.gid), (0, 0), m.name)
        # gzip, and the mtime in the gzip header is zero (gzip -n: reproducible)
        self.assertEqual(self.raw[:2], b"\x1f\x8b")
        self.assertEqual(self.raw[4:8], b"\0\0\0\0")

    def check_tree(self, tar, files):
        names = {}
        for m in tar.getmembers():
            self.assertEqual((m.uid, m.gid, m.uname, m.gname), (0, 0, "", ""),
                             "%s: not root-owned numerically" % m.name)
            self.assertTrue(m.name == "." or m.name.startswith("./"), m.name)
            names[norm(m.name)] = m
        got_files = {n for n, m in names.items() if m.isfile()}
        self.assertEqual(got_files, set(files), "files in the archive")
        for n, m in names.items():
            self.assertFalse(m.issym() or m.islnk(), n)
            if m.isdir():
                self.assertEqual(stat.S_IMODE(m.mode), 0o755, "directory %s" % n)
        return names

    def test_data_tree(self):
        names = self.check_tree(self.data, EXPECTED_DATA)
        for path, (mode, src) in EXPECTED_DATA.items():
            m = names[path]
            self.assertEqual(stat.S_IMODE(m.mode), mode, "mode of %s: %o" % (path, m.mode))
            if src:
                with open(os.path.join(FILES, src), "rb") as f:
                    self.assertEqual(self.data.extractfile(m).read(), f.read(),
                                     "%s differs from openwrt/mpconv/files/%s" % (path, src))
        # every parent directory is in the archive (opkg creates them with these modes)
        for path in EXPECTED_DATA:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                self.assertIn("/".join(parts[:i]), names)

    def test_control(self):
        names = self.check_tree(self.control, EXPECTED_CONTROL)
        for n, mode in EXPECTED_CONTROL.items():
            self.assertEqual(stat.S_IMODE(names[n].mode), mode, n)
        text = self.control.extractfile(names["control"]).read().decode()
        fields = {}
        for line in text.splitlines():
            if line.startswith(" "):
                continue
            k, _, v = line.partition(":")
            fields[k] = v.strip()
        for k in ["Package", "Version", "Depends", "Architecture", "Maintainer", "Section",
                  "Description", "Installed-Size"]:
            self.assertTrue(fields.get(k), "control field %s missing or empty: %r" % (k, text))
        self.assertEqual(fields["Package"], "mpconv")
        self.assertRegex(fields["Version"], r"^%s-r\d+$" % re.escape(cargo_version()))
        deps = [d.strip() for d in fields["Depends"].split(",")]
        for d in ["kmod-nft-queue", "kmod-nfnetlink-queue", "ip-full", "nftables", "jsonfilter"]:
            self.assertIn(d, deps)
        size = sum(m.size for m in self.data.getmembers() if m.isfile())
        self.assertEqual(int(fields["Installed-Size"]), size)
        self.assertIn("_%s.ipk" % fields["Architecture"], os.path.basename(self.path))
        self.assertIn("_%s_" % fields["Version"], os.path.basename(self.path))
        conffiles = self.control.extractfile(names["conffiles"]).read().decode().split()
        self.assertEqual(conffiles, ["/etc/config/mpconv"])
        for script in ["postinst", "prerm"]:
            body = self.control.extractfile(names[script]).read().decode()
            self.assertTrue(body.startswith("#!/bin/sh\n"), script)
            self.assertIn("IPKG_INSTROOT", body, script)

    def extract_data(self, into):
        self.data.extractall(into, filter="data") if hasattr(tarfile, "data_filter") \
            else self.data.extractall(into)

    def test_binary_version(self):
        with tempfile.TemporaryDirectory() as d:
            self.extract_data(d)
            binary = os.path.join(d, "usr", "sbin", "mpconv")
            for arg in ["--version", "version"]:
                out = subprocess.run([binary, arg], capture_output=True, text=True, timeout=10)
                self.assertEqual(out.returncode, 0, out.stderr)
                self.assertEqual(out.stdout.strip(), "mpconv %s" % cargo_version())
            # the shipped config as installed passes the packaged binary's check
            out = subprocess.run([binary, "check", "-c", os.path.join(d, "etc/config/mpconv")],
                                 capture_output=True, text=True, timeout=10)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_binary_size(self):
        m = self.data.getmember("./usr/sbin/mpconv")
        self.assertLessEqual(m.size, 1500000, "stripped binary larger than 1.5 MB")


class Config(unittest.TestCase):
    def check(self, path):
        return subprocess.run([DEBUG_BIN, "check", "-c", path], capture_output=True, text=True,
                              timeout=10)

    def test_shipped_config_is_valid_and_disabled(self):
        out = self.check(CONFIG)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("valid", out.stdout)
        self.assertIn("enabled: no", out.stdout)
        self.assertIn("lan: br-lan", out.stdout)
        self.assertEqual(out.stderr, "", "warnings for the shipped file")

    def test_shipped_examples_are_valid_when_enabled(self):
        """Uncommenting the example uplinks and enabling gives a valid configuration."""
        with open(CONFIG) as f:
            text = f.read()
        text = text.replace("option enabled '0'", "option enabled '1'")
        text = re.sub(r"^#(config uplink )", r"\1", text, flags=re.M)
        text = re.sub(r"^#(\toption )", r"\1", text, flags=re.M)
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write(text)
        try:
            out = self.check(f.name)
        finally:
            os.unlink(f.name)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("enabled: yes", out.stdout)
        self.assertIn("uplink wan: device eth1 gateway 192.168.100.1", out.stdout)
        self.assertIn("uplink wwan0: device wwan0", out.stdout)

    def check_text(self, text):
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write(text)
        try:
            return self.check(f.name)
        finally:
            os.unlink(f.name)

    def test_every_commented_option_is_known(self):
        """Each `#option NAME` / `#list NAME` in the main section is a valid option with a
        valid value: all of them at once in explicit mode, the general ones in implicit mode."""
        with open(CONFIG) as f:
            text = f.read()
        main = text.split("\n# One 'config uplink' section")[0]
        general, _, explicit = main.partition("\t# Explicit mode")
        self.assertTrue(explicit, "the main section documents explicit mode")
        pat = r"^\t#((?:option|list) \w+ '[^']*')$"
        opts = re.findall(pat, main, flags=re.M)
        self.assertGreaterEqual(len(opts), 13, opts)
        explicit_keys = {o.split()[1] for o in re.findall(pat, explicit, flags=re.M)}
        self.assertEqual(explicit_keys, {"concentrator", "secret", "scheduler", "exclude", "exclude_port"})
        self.assertNotIn("not implemented", main)
        for mode, part in [("explicit", main), ("implicit", general)]:
            text = re.sub(pat, r"\t\1", part, flags=re.M) + "\n"
            text = text.replace("option mode 'implicit'", "option mode '%s'" % mode)
            text = text.replace("option enabled '0'", "option enabled '1'")
            text += "config uplink 'wan'\n\toption device 'eth1'\n"
            out = self.check_text(text)
            self.assertEqual(out.returncode, 0, mode + ":\n" + text + out.stdout + out.stderr)
            self.assertEqual(out.stderr, "", mode)
            self.assertIn("mode: " + mode, out.stdout)

    def test_uplink_examples_every_option(self):
        """The example uplinks with every commented option uncommented too (probes, backup;
        not 'disabled') are valid and give no warning: the daemon understands every key."""
        with open(CONFIG) as f:
            text = f.read()
        text = text.replace("option enabled '0'", "option enabled '1'")
        text = re.sub(r"^#(config uplink )", r"\1", text, flags=re.M)
        text = re.sub(r"^#\t(?:#)?((?:option|list) (?!disabled)\w+ )", r"\t\1", text, flags=re.M)
        up = text.split("\n# One 'config uplink' section")[1]
        for key in ["backup", "probe", "probe_target", "probe_interval", "probe_timeout",
                    "probe_down", "probe_up"]:
            self.assertRegex(up, r"(?m)^\t(option|list) %s '" % key, key)
        out = self.check_text(text)
        self.assertEqual(out.returncode, 0, text + out.stdout + out.stderr)
        self.assertEqual(out.stderr, "", "warnings")
        self.assertIn("uplink wan: device eth1 gateway 192.168.100.1", out.stdout)
        self.assertIn("uplink wwan0: device wwan0", out.stdout)

    def test_uci_defaults(self):
        with tempfile.TemporaryDirectory() as d:
            conf = os.path.join(d, "mpconv")
            env = dict(os.environ, MPCONV_CONF=conf)
            r = subprocess.run(["sh", UCI_DEFAULTS], env=env, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            out = self.check(conf)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            self.assertIn("enabled: no", out.stdout)
            # idempotent, and an existing file is never touched
            with open(conf, "w") as f:
                f.write("# mine\n")
            r = subprocess.run(["sh", UCI_DEFAULTS], env=env, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(conf) as f:
                self.assertEqual(f.read(), "# mine\n")


SAMPLE_STATUS = {
    "mode": "implicit",
    "uplinks": [
        {"name": "dsl", "device": "eth1", "addr4": "100.64.1.2", "addr6": None, "subflows": 2},
        {"name": "lte", "device": "wwan0", "addr4": "100.64.2.2", "addr6": None, "subflows": 1},
    ],
    "connections": [{"client": "10.10.0.2:40000", "server": "203.0.113.10:80",
                     "state": "established", "subflows": []}],
    "counters": {"MPCapableSYNTX": 1},
    "io": {"rx": 10, "tx": 12},
}


class Rpcd(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.log = os.path.join(self.dir, "argv")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def stub(self, body):
        """A fake `mpconv` on PATH that records its arguments and runs `body` (sh)."""
        path = os.path.join(self.dir, "mpconv")
        with open(path, "w") as f:
            f.write('#!/bin/sh\nprintf "%%s\\n" "$*" >> "%s"\n%s\n' % (self.log, body))
        os.chmod(path, 0o755)

    def plugin(self, *args, stdin="", env=None):
        e = dict(os.environ, PATH=self.dir + os.pathsep + os.environ.get("PATH", ""))
        e.pop("MPCONV", None)
        e.pop("MPCONV_SOCKET", None)
        e.update(env or {})
        r = subprocess.run(["sh", RPCD] + list(args), input=stdin, env=e, capture_output=True,
                           text=True, timeout=20)
        return r

    def argv_log(self):
        with open(self.log) as f:
            return f.read().splitlines()

    def test_list(self):
        r = self.plugin("list")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json_object(r.stdout, "list"),
                         {"status": {}, "handover": {"uplink": "str"}})

    def test_status_running(self):
        with open(os.path.join(self.dir, "status.json"), "w") as f:
            json.dump(SAMPLE_STATUS, f, separators=(",", ":"))
        self.stub('cat "%s"' % os.path.join(self.dir, "status.json"))
        r = self.plugin("call", "status", stdin="{}")
        self.assertEqual(r.returncode, 0, r.stderr)
        v = json_object(r.stdout, "call status")
        self.assertIs(v.pop("running"), True)
        self.assertEqual(v, SAMPLE_STATUS)
        self.assertEqual(self.argv_log(), ["status --json -s /var/run/mpconv.sock"])
        # validate with the tool named in the brief too
        j = subprocess.run(["python3", "-m", "json.tool"], input=r.stdout, capture_output=True,
                           text=True)
        self.assertEqual(j.returncode, 0, j.stderr)

    def test_status_socket_env(self):
        self.stub("echo '{\"mode\":\"implicit\",\"uplinks\":[]}'")
        r = self.plugin("call", "status", env={"MPCONV_SOCKET": "/tmp/x y.sock"})
        v = json_object(r.stdout, "call status")
        self.assertTrue(v["running"])
        self.assertEqual(self.argv_log(), ["status --json -s /tmp/x y.sock"])

    def test_status_daemon_down(self):
        self.stub('echo \'mpconv: cannot reach mpconv at /var/run/mpconv.sock: "No such\' >&2\n'
                  'printf \'file\\tor\\\\directory\\n\' >&2\nexit 1')
        r = self.plugin("call", "status", stdin="{}")
        self.assertEqual(r.returncode, 0, r.stderr)
        v = json_object(r.stdout, "call status (daemon down)")
        self.assertIs(v["running"], False)
        self.assertIsInstance(v["error"], str)
        self.assertIn("cannot reach", v["error"])
        self.assertIn('"No such', v["error"])
        self.assertIn("\\directory", v["error"])

    def test_status_garbage_reply(self):
        self.stub("echo 'not json'")
        v = json_object(self.plugin("call", "status").stdout, "call status (garbage)")
        self.assertIs(v["running"], False)
        self.assertIsInstance(v["error"], str)

    def test_status_silent_failure(self):
        self.stub("exit 3")
        v = json_object(self.plugin("call", "status").stdout, "call status (silent)")
        self.assertIs(v["running"], False)
        self.assertIn("3", v["error"])

    def test_status_no_binary(self):
        r = self.plugin("call", "status", env={"MPCONV": os.path.join(self.dir, "nope")})
        v = json_object(r.stdout, "call status (no binary)")
        self.assertIs(v["running"], False)

    def handover(self, stdin, env=None):
        r = self.plugin("call", "handover", stdin=stdin, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        return json_object(r.stdout, "call handover %r" % stdin)

    def test_handover_ok(self):
        self.stub('echo \'{"ok":true,"uplink":"lte","connections":3}\'')
        v = self.handover('{"uplink":"lte"}')
        self.assertEqual(v, {"ok": True, "uplink": "lte", "connections": 3})
        self.assertEqual(self.argv_log(), ["handover lte --json -s /var/run/mpconv.sock"])

    def test_handover_spacing_and_socket_env(self):
        self.stub('echo \'{"ok":true,"uplink":"wan_2","connections":0}\'')
        v = self.handover('{ "uplink" : "wan_2" }\n', env={"MPCONV_SOCKET": "/tmp/x y.sock"})
        self.assertEqual(v, {"ok": True, "uplink": "wan_2", "connections": 0})
        self.assertEqual(self.argv_log(), ["handover wan_2 --json -s /tmp/x y.sock"])

    def test_handover_daemon_error_passed_on(self):
        """The CLI's own error object (exit 1) is the answer, unchanged."""
        self.stub('echo \'{"error":"no uplink named \\"sat\\""}\'; exit 1')
        v = self.handover('{"uplink":"sat"}')
        self.assertEqual(v, {"error": 'no uplink named "sat"'})

    def test_handover_daemon_down(self):
        self.stub('echo \'mpconv: cannot reach mpconv at /var/run/mpconv.sock: "No such\' >&2\n'
                  'printf \'file\\tor\\\\directory\\n\' >&2\nexit 1')
        v = self.handover('{"uplink":"lte"}')
        self.assertEqual(list(v), ["error"])
        self.assertIn("cannot reach", v["error"])
        self.assertIn('"No such', v["error"])
        self.assertIn("\\directory", v["error"])

    def test_handover_silent_failure_and_garbage(self):
        self.stub("exit 3")
        v = self.handover('{"uplink":"lte"}')
        self.assertIn("3", v["error"])
        for body in ["echo 'not json'", "echo '{\"ok\":true'", "printf '{\"ok\":true}\\n}\\n'",
                     "echo '{\"ok\":true,\"uplink\":\"lte\",\"connections\":1}'; exit 1"]:
            self.stub(body)
            v = self.handover('{"uplink":"lte"}')
            self.assertEqual(list(v), ["error"], body)
            self.assertIsInstance(v["error"], str)

    def test_handover_no_binary(self):
        v = self.handover('{"uplink":"lte"}', env={"MPCONV": os.path.join(self.dir, "nope")})
        self.assertIsInstance(v["error"], str)

    def test_handover_bad_names_never_reach_the_binary(self):
        self.stub('echo \'{"ok":true,"uplink":"x","connections":0}\'')
        marker = os.path.join(self.dir, "pwned")
        for stdin in ['{"uplink":"lte; touch %s"}' % marker,
                      '{"uplink":"$(touch %s)"}' % marker,
                      '{"uplink":"`touch %s`"}' % marker,
                      '{"uplink":"lte\\" ; touch %s; \\""}' % marker,
                      '{"uplink":"a b"}', '{"uplink":"../lte"}', '{"uplink":"-h"}',
                      '{"uplink":"--json"}', '{"uplink":"lte\\n"}', '{"uplink":"l\u00e4"}',
                      '{"uplink":"*"}', '{"uplink":""}', '{"uplink":3}', '{"uplink":null}',
                      '{}', '', 'not json', '{"name":"lte"}']:
            v = self.handover(stdin)
            self.assertEqual(list(v), ["error"], stdin)
            self.assertIsInstance(v["error"], str, stdin)
            self.assertRegex(v["error"], "uplink", stdin)
        self.assertFalse(os.path.exists(self.log), "the binary was called for a bad name")
        self.assertFalse(os.path.exists(marker), "shell injection")

    def test_unknown_method(self):
        v = json_object(self.plugin("call", "bogus'\"").stdout, "call bogus")
        self.assertIn("error", v)


# Stand-ins for the hotplug script: OpenWrt's /lib/functions.sh (config_* read FAKE_*
# variables), the init script, the daemon, `ip`, `logger` and `jsonfilter` (only the
# expression the script uses: @.uplinks[@.name='NAME'].KEY; it prints nothing for null).
FAKE_FUNCTIONS = r"""
config_load() { :; }
config_foreach() {
	local cb="$1" list s
	eval "list=\${FAKE_TYPE_$2-}"
	for s in $list; do "$cb" "$s"; done
}
config_get() {
	local __fake_v
	eval "__fake_v=\${FAKE_$2_$3-}"
	[ -n "$__fake_v" ] || __fake_v="$4"
	eval "$1=\$__fake_v"
}
config_get_bool() {
	local __fake_b
	config_get __fake_b "$2" "$3" "$4"
	case "$__fake_b" in 1|yes|on|true|enabled) __fake_b=1 ;; *) __fake_b=0 ;; esac
	eval "$1=$__fake_b"
}
"""
FAKE_JSONFILTER = r"""#!/usr/bin/env python3
import json, re, sys
a = sys.argv
st, e = json.loads(a[a.index("-s") + 1]), a[a.index("-e") + 1]
m = re.fullmatch(r"@\.uplinks\[@\.name='(\w+)'\]\.(\w+)", e)
assert m, e
for u in st["uplinks"]:
    if u["name"] == m[1] and u.get(m[2]) is not None:
        print(u[m[2]])
        sys.exit(0)
sys.exit(1)
"""
HOTPLUG_STATUS = {"mode": "implicit", "uplinks": [
    {"name": "wan", "device": "eth1", "addr4": "192.0.2.10", "addr6": None},
    {"name": "lte", "device": "wwan0", "addr4": "198.51.100.7", "addr6": "2001:db8::7"}]}


class Hotplug(unittest.TestCase):
    """/etc/hotplug.d/iface/95-mpconv: restart only when the daemon cannot follow."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.bin = os.path.join(self.dir, "bin")
        os.mkdir(self.bin)
        self.calls = os.path.join(self.dir, "calls")
        self.write("functions.sh", FAKE_FUNCTIONS)
        rec = 'printf "%%s %%s\\n" "%s" "$*" >> "%s"\n'
        self.write("init", "#!/bin/sh\n" + rec % ("init", self.calls) +
                   '[ "$1" != enabled ] || [ -z "$NOT_ENABLED" ]\n', mode=0o755)
        self.write("bin/logger", "#!/bin/sh\n" + rec % ("logger", self.calls), mode=0o755)
        self.write("bin/jsonfilter", FAKE_JSONFILTER, mode=0o755)
        # ip -F -o addr show dev DEV: the file ip-F-DEV, if any
        self.write("bin/ip", '#!/bin/sh\ncat "%s/ip$1-$6" 2>/dev/null\n' % self.dir, mode=0o755)
        self.daemon_running(True)
        self.addresses("eth1", "4", "192.0.2.10/24")
        self.addresses("wwan0", "4", "198.51.100.7/32")
        self.addresses("wwan0", "6", "2001:db8::7/64", "fe80::1/64")
        self.env = {"FAKE_TYPE_mpconv": "main", "FAKE_main_enabled": "1",
                    "FAKE_TYPE_uplink": "wan lte spare",
                    "FAKE_wan_device": "eth1",
                    "FAKE_lte_interface": "wwan", "FAKE_lte_device": "wwan0",
                    "FAKE_spare_device": "eth9", "FAKE_spare_disabled": "1"}

    def tearDown(self):
        shutil.rmtree(self.dir)

    def write(self, name, text, mode=0o644):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def daemon_running(self, running):
        body = ("cat '%s'" % self.write("status.json", json.dumps(HOTPLUG_STATUS))) if running \
            else "echo 'mpconv: cannot reach mpconv' >&2; exit 1"
        self.write("bin/mpconv", '#!/bin/sh\n[ "$1 $2 $3" = "status --json -c" ] || exit 9\n' + body + "\n",
                   mode=0o755)

    def addresses(self, dev, fam, *addrs):
        self.write("ip-%s-%s" % (fam, dev), "".join(
            "3: %s    inet%s %s scope global %s\\       valid_lft forever\n"
            % (dev, "" if fam == "4" else "6", a, dev) for a in addrs))

    def event(self, action, interface, device=None, no_jsonfilter=False, **extra):
        env = dict(os.environ, PATH=self.bin + os.pathsep + os.environ.get("PATH", ""),
                   ACTION=action, INTERFACE=interface, MPCONV_INIT=os.path.join(self.dir, "init"),
                   MPCONV_FUNCTIONS=os.path.join(self.dir, "functions.sh"),
                   MPCONV=os.path.join(self.bin, "mpconv"), MPCONV_CONF="/etc/config/mpconv")
        env.pop("DEVICE", None)
        if device:
            env["DEVICE"] = device
        env.update(self.env)
        env.update(extra)
        if no_jsonfilter:
            os.unlink(os.path.join(self.bin, "jsonfilter"))
        if os.path.exists(self.calls):
            os.unlink(self.calls)
        r = subprocess.run(["sh", HOTPLUG], env=env, capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        if not os.path.exists(self.calls):
            return []
        with open(self.calls) as f:
            return [line for line in f.read().splitlines() if line != "init enabled"]

    def restarted(self, calls):
        return "init restart" in calls

    def test_ifdown_left_to_the_daemon(self):
        calls = self.event("ifdown", "wan", "eth1")
        self.assertFalse(self.restarted(calls), calls)
        self.assertRegex(calls[0], r"^logger -t mpconv uplink 'wan': ifdown of wan \(eth1\): left to the running daemon$")
        self.daemon_running(False)
        self.assertEqual(self.event("ifdown", "wan", "eth1"), [])

    def test_ifup_same_addresses_left_to_the_daemon(self):
        for iface, dev, name in [("wan", "eth1", "wan"), ("wwan", "wwan0", "lte"), ("wwan", None, "lte"),
                                 ("wan", None, "wan")]:
            calls = self.event("ifup", iface, dev)
            self.assertFalse(self.restarted(calls), (iface, calls))
            self.assertIn("uplink '%s'" % name, calls[0])
            self.assertIn("same addresses", calls[0])

    def test_ifup_address_changed_restarts(self):
        self.addresses("wwan0", "4", "198.51.100.99/32")
        calls = self.event("ifup", "wwan", "wwan0")
        self.assertTrue(self.restarted(calls), calls)
        self.assertIn("its address changed, restarting", calls[0])
        # the IPv6 address gone, IPv4 kept: restart too
        self.addresses("wwan0", "4", "198.51.100.7/32")
        self.addresses("wwan0", "6", "2001:db8::8/64")
        self.assertTrue(self.restarted(self.event("ifup", "wwan", "wwan0")))
        # an IPv6 address added to an uplink the daemon uses without one: left alone
        self.addresses("eth1", "6", "2001:db8:1::10/64")
        self.assertFalse(self.restarted(self.event("ifup", "wan", "eth1")))

    def test_ifupdate_only_with_addresses(self):
        self.addresses("eth1", "4", "192.0.2.11/24")
        self.assertEqual(self.event("ifupdate", "wan", "eth1"), [])
        self.assertTrue(self.restarted(self.event("ifupdate", "wan", "eth1", IFUPDATE_ADDRESSES="1")))

    def test_not_running_is_started(self):
        self.daemon_running(False)
        calls = self.event("ifup", "wan", "eth1")
        self.assertTrue(self.restarted(calls), calls)
        self.assertIn("mpconv not running: starting it", calls[0])

    def test_without_jsonfilter_restarts(self):
        self.assertTrue(self.restarted(self.event("ifup", "wan", "eth1", no_jsonfilter=True)))

    def test_other_events_and_uplinks_are_ignored(self):
        self.addresses("eth1", "4", "192.0.2.11/24")    # would restart if it matched
        for args, extra in [(("ifup", "lan", "br-lan"), {}), (("ifup", "spare", "eth9"), {}),
                            (("ifup", "lte", None), {}),      # has option interface: matched by that
                            (("ifdown", "lan", None), {}), (("iflink", "wan", "eth1"), {}),
                            (("ifup", "wan", "eth1"), {"FAKE_main_enabled": "0"}),
                            (("ifup", "wan", "eth1"), {"NOT_ENABLED": "1"})]:
            self.assertEqual(self.event(*args, **extra), [], (args, extra))
        self.assertEqual(self.event("ifup", "", "eth1"), [])


if __name__ == "__main__":
    unittest.main()
