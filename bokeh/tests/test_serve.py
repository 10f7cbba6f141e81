"""Unit tests for the launcher (serve.py and launcher/). Standard library only; Bokeh need not be installed.

`npm run test:python` runs every file in this folder with pytest inside the Bokeh image. This one
also runs on any Python 3 without packages:  python3 -m unittest bokeh/tests/test_serve.py
"""

import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

# serve.py sits next to this folder in the repository and in /app inside the image.
for _candidate in (Path(__file__).resolve().parent.parent, Path("/app")):
    if (_candidate / "serve.py").is_file():
        SERVE_DIR = _candidate
        break
else:
    raise RuntimeError("serve.py not found next to tests/ or in /app")
sys.path.insert(0, str(SERVE_DIR))

from launcher.apps import find_apps  # noqa: E402
from launcher.argv import build_argv, describe  # noqa: E402
from launcher.devmode import app_files  # noqa: E402
from launcher.settings import ConfigError  # noqa: E402
from launcher.settings import load_config as load_config_from  # noqa: E402

APPS = [Path("/app/apps/ping"), Path("/app/apps/sliders")]
KEY = "k3Y-for-the-launcher-tests_0123456789abcdefgh"


def load_config(env):
    """Settings as the launcher reads them, with the secret key that every start needs."""
    return load_config_from({"BOKEH_SECRET_KEY": KEY, **env})


def argv_for(env, extra=()):
    return build_argv(load_config(env), APPS, extra)


def option_values(argv, option):
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == option]


class Defaults(unittest.TestCase):
    def test_default_config(self):
        config = load_config({})
        self.assertEqual(config.port, 5006)
        self.assertEqual(config.prefix, "/bokeh")
        self.assertEqual(
            config.ws_origin_args,
            (
                "localhost:8000",
                "127.0.0.1:8000",
                "localhost:8443",
                "127.0.0.1:8443",
                "localhost:8444",
                "127.0.0.1:8444",
            ),
        )
        self.assertTrue(config.nodelay)
        self.assertEqual(config.log_level, "info")
        self.assertEqual(
            dict(config.env_updates),
            {"BOKEH_SECRET_KEY": KEY, "BOKEH_SIGN_SESSIONS": "true", "BOKEH_LOG_LEVEL": None},
        )

    def test_default_argv(self):
        self.assertEqual(
            argv_for({}),
            [
                "bokeh",
                "serve",
                "/app/apps/ping",
                "/app/apps/sliders",
                "--port",
                "5006",
                "--address",
                "0.0.0.0",
                "--use-xheaders",
                "--session-ids",
                "external-signed",
                "--log-level",
                "info",
                "--prefix",
                "/bokeh",
                "--allow-websocket-origin",
                "localhost:8000",
                "--allow-websocket-origin",
                "127.0.0.1:8000",
                "--allow-websocket-origin",
                "localhost:8443",
                "--allow-websocket-origin",
                "127.0.0.1:8443",
                "--allow-websocket-origin",
                "localhost:8444",
                "--allow-websocket-origin",
                "127.0.0.1:8444",
            ],
        )

    def test_blank_values_mean_default(self):
        env = {"BOKEH_PORT": "", "PUBLIC_ORIGINS": " ", "BOKEH_NODELAY": "", "BOKEH_LOG_LEVEL": ""}
        self.assertEqual(load_config(env), load_config({}))

    def test_empty_prefix_means_the_default(self):
        # As for the gateway and NGINX, which both need a prefix (tests/rules/cases.json).
        for value in ("", "  "):
            with self.subTest(value=value):
                self.assertEqual(option_values(argv_for({"BOKEH_PREFIX": value}), "--prefix"), ["/bokeh"])

    def test_settings_are_used(self):
        argv = argv_for({"BOKEH_PORT": " 6000 ", "BOKEH_PREFIX": "/apps/v2", "BOKEH_LOG_LEVEL": "DEBUG"})
        self.assertEqual(option_values(argv, "--port"), ["6000"])
        self.assertEqual(option_values(argv, "--prefix"), ["/apps/v2"])
        self.assertEqual(option_values(argv, "--log-level"), ["debug"])

    def test_xheaders_and_address_always_on(self):
        argv = argv_for({"BOKEH_PREFIX": "", "BOKEH_NODELAY": "false"})
        self.assertIn("--use-xheaders", argv)
        self.assertEqual(option_values(argv, "--address"), ["0.0.0.0"])


class OriginDerivation(unittest.TestCase):
    def hosts(self, value):
        return load_config({"PUBLIC_ORIGINS": value}).ws_origin_args

    def test_explicit_port_is_kept(self):
        self.assertEqual(self.hosts("http://localhost:8000"), ("localhost:8000",))
        self.assertEqual(self.hosts("https://dash.example.com:8443"), ("dash.example.com:8443",))

    def test_default_ports_are_left_out(self):
        # Browsers omit default ports from Origin and Bokeh then compares host:80 with host:80.
        self.assertEqual(self.hosts("https://dash.example.com"), ("dash.example.com",))
        self.assertEqual(self.hosts("https://dash.example.com:443"), ("dash.example.com",))
        self.assertEqual(self.hosts("http://dash.example.com:80"), ("dash.example.com",))
        self.assertEqual(self.hosts("http://dash.example.com"), ("dash.example.com",))

    def test_other_scheme_default_port_is_kept(self):
        self.assertEqual(self.hosts("http://example.com:443"), ("example.com:443",))
        self.assertEqual(self.hosts("https://example.com:80"), ("example.com:80",))

    def test_several_origins(self):
        value = "http://localhost:8000, https://Dash.Example.com ,http://10.0.0.5:8080,,"
        self.assertEqual(self.hosts(value), ("localhost:8000", "dash.example.com", "10.0.0.5:8080"))

    def test_duplicates_collapse(self):
        self.assertEqual(self.hosts("https://a.example, https://a.example:443, http://a.example"), ("a.example",))

    def test_each_origin_becomes_one_option(self):
        argv = argv_for({"PUBLIC_ORIGINS": "http://localhost:8000,https://dash.example.com"})
        self.assertEqual(option_values(argv, "--allow-websocket-origin"), ["localhost:8000", "dash.example.com"])

    def assertRejected(self, value, *fragments):
        with self.assertRaises(ConfigError) as caught:
            load_config({"PUBLIC_ORIGINS": value})
        message = str(caught.exception)
        self.assertTrue(message.startswith("PUBLIC_ORIGINS "), message)
        self.assertNotIn("\n", message)
        for fragment in fragments:
            self.assertIn(fragment, message)

    def test_bad_origins(self):
        self.assertRejected("localhost:8000", '(got "localhost:8000")', "set PUBLIC_ORIGINS=http://localhost:8000")
        self.assertRejected("ws://localhost:8000", "http or https", "set PUBLIC_ORIGINS=http://localhost:8000")
        self.assertRejected("wss://dash.example.com", "set PUBLIC_ORIGINS=https://dash.example.com")
        self.assertRejected("http://localhost:8000/", "no path", "set PUBLIC_ORIGINS=http://localhost:8000")
        self.assertRejected("https://dash.example.com/app", "set PUBLIC_ORIGINS=https://dash.example.com")
        self.assertRejected("http://localhost:8000?x=1", "no path")
        self.assertRejected("http://user:pw@localhost:8000", "user info", "set PUBLIC_ORIGINS=http://localhost:8000")
        self.assertRejected("http://localhost:99999", "port")
        self.assertRejected("http://localhost:0", "port")
        self.assertRejected("http://localhost:abc", "port")
        self.assertRejected("http://[::1]:8000", "IPv6", "BOKEH_ALLOW_WS_ORIGIN=[::1]:8000")
        self.assertRejected("http://*.example.com", "BOKEH_ALLOW_WS_ORIGIN")
        self.assertRejected("http://bad host", "host name")

    def test_bad_entry_among_good_ones(self):
        self.assertRejected("http://localhost:8000,dash.example.com", '(got "dash.example.com")')


class AllowWsOriginOverride(unittest.TestCase):
    def test_override_wins(self):
        config = load_config(
            {"BOKEH_ALLOW_WS_ORIGIN": "a.example:443, b.example", "PUBLIC_ORIGINS": "http://localhost:8000"}
        )
        argv = build_argv(config, APPS)
        self.assertNotIn("--allow-websocket-origin", argv)
        self.assertEqual(config.ws_origins, ("a.example:443", "b.example"))
        self.assertEqual(config.ws_origins_from, "BOKEH_ALLOW_WS_ORIGIN")
        # Bokeh reads the variable itself and does not trim spaces.
        self.assertEqual(config.env_updates["BOKEH_ALLOW_WS_ORIGIN"], "a.example:443,b.example")

    def test_override_makes_public_origins_unused(self):
        config = load_config({"BOKEH_ALLOW_WS_ORIGIN": "*", "PUBLIC_ORIGINS": "not-an-origin"})
        self.assertEqual(config.ws_origins, ("*",))

    def test_blank_override_is_dropped(self):
        config = load_config({"BOKEH_ALLOW_WS_ORIGIN": "  "})
        self.assertIsNone(config.env_updates["BOKEH_ALLOW_WS_ORIGIN"])
        self.assertEqual(
            config.ws_origin_args,
            (
                "localhost:8000",
                "127.0.0.1:8000",
                "localhost:8443",
                "127.0.0.1:8443",
                "localhost:8444",
                "127.0.0.1:8444",
            ),
        )

    def test_url_in_override_is_rejected(self):
        with self.assertRaises(ConfigError) as caught:
            load_config({"BOKEH_ALLOW_WS_ORIGIN": "https://dash.example.com"})
        self.assertEqual(
            str(caught.exception),
            "BOKEH_ALLOW_WS_ORIGIN entries are host[:port], not URLs "
            '(got "https://dash.example.com"); set BOKEH_ALLOW_WS_ORIGIN=dash.example.com',
        )

    def test_only_commas_is_rejected(self):
        with self.assertRaises(ConfigError):
            load_config({"BOKEH_ALLOW_WS_ORIGIN": ", ,"})


class PrefixValidation(unittest.TestCase):
    def message(self, value):
        with self.assertRaises(ConfigError) as caught:
            load_config({"BOKEH_PREFIX": value})
        return str(caught.exception)

    def test_missing_leading_slash(self):
        self.assertEqual(
            self.message("bokeh"), 'BOKEH_PREFIX must start with "/" (got "bokeh"); set BOKEH_PREFIX=/bokeh'
        )

    def test_trailing_slash(self):
        self.assertEqual(
            self.message("/bokeh/"), 'BOKEH_PREFIX must not end with "/" (got "/bokeh/"); set BOKEH_PREFIX=/bokeh'
        )

    def test_lone_slash(self):
        message = self.message("/")
        self.assertIn('(got "/")', message)
        self.assertIn("set BOKEH_PREFIX=/bokeh", message)

    def test_not_a_plain_path(self):
        for value in ("//bokeh", "/a//b", "/a b", "/a/../b", "/./a", "/bokeh?x", "/bo#keh", "/(bokeh)", "/bokeh.*"):
            with self.subTest(value=value):
                message = self.message(value)
                self.assertTrue(message.startswith("BOKEH_PREFIX "), message)
                self.assertIn(f'(got "{value}")', message)
                self.assertIn("set BOKEH_PREFIX=", message)

    def test_good_prefixes(self):
        for value in ("/bokeh", "/a/b-c_d.e~f", "/v2"):
            with self.subTest(value=value):
                self.assertEqual(load_config({"BOKEH_PREFIX": value}).prefix, value)


class OtherSettings(unittest.TestCase):
    def test_nodelay_words(self):
        for word, expected in (
            ("true", True),
            ("TRUE", True),
            ("1", True),
            ("yes", True),
            ("on", True),
            ("false", False),
            ("False", False),
            ("0", False),
            ("no", False),
            ("off", False),
        ):
            with self.subTest(word=word):
                self.assertIs(load_config({"BOKEH_NODELAY": word}).nodelay, expected)

    def test_nodelay_bad_word(self):
        with self.assertRaises(ConfigError) as caught:
            load_config({"BOKEH_NODELAY": "maybe"})
        self.assertEqual(
            str(caught.exception), 'BOKEH_NODELAY must be true or false (got "maybe"); set BOKEH_NODELAY=true'
        )

    def test_bad_port(self):
        for value in ("abc", "0", "65536", "-1", "5006.0"):
            with self.subTest(value=value):
                with self.assertRaises(ConfigError) as caught:
                    load_config({"BOKEH_PORT": value})
                self.assertIn(
                    f'BOKEH_PORT must be a whole number from 1 to 65535 (got "{value}")', str(caught.exception)
                )

    def test_log_level_reaches_bokeh_as_an_option_only(self):
        # Bokeh would read BOKEH_LOG_LEVEL itself and refuse "warning" and "critical".
        config = load_config({"BOKEH_LOG_LEVEL": "warning"})
        self.assertIsNone(config.env_updates["BOKEH_LOG_LEVEL"])
        self.assertEqual(option_values(build_argv(config, APPS), "--log-level"), ["warning"])

    def test_bad_log_level(self):
        with self.assertRaises(ConfigError) as caught:
            load_config({"BOKEH_LOG_LEVEL": "verbose"})
        self.assertIn('(got "verbose"); set BOKEH_LOG_LEVEL=info', str(caught.exception))


class DrainTimeout(unittest.TestCase):
    def test_default_and_given_and_in_the_log_line(self):
        self.assertEqual(load_config({}).drain_timeout_s, 20)
        config = load_config({"BOKEH_DRAIN_TIMEOUT_S": "0"})
        self.assertEqual(config.drain_timeout_s, 0)
        self.assertIn(" drain=0s", describe(config, APPS))

    def test_bad_values(self):
        for value in ("-1", "1.5", "soon", "3601", "\u00b2"):
            with self.subTest(value=value):
                with self.assertRaises(ConfigError) as caught:
                    load_config({"BOKEH_DRAIN_TIMEOUT_S": value})
                self.assertEqual(
                    str(caught.exception),
                    f'BOKEH_DRAIN_TIMEOUT_S must be a whole number of seconds from 0 to 3600 (got "{value}"); '
                    "set BOKEH_DRAIN_TIMEOUT_S=20, below the container's stop grace period",
                )


class SecretKey(unittest.TestCase):
    def test_key_is_required_and_the_message_says_how_to_make_one(self):
        with self.assertRaises(ConfigError) as caught:
            load_config_from({})
        self.assertIn("BOKEH_SECRET_KEY is not set", str(caught.exception))
        self.assertIn("secrets.token_urlsafe", str(caught.exception))

    def test_sessions_are_signed_with_the_key(self):
        config = load_config({})
        self.assertEqual(config.env_updates["BOKEH_SECRET_KEY"], KEY)
        self.assertEqual(config.env_updates["BOKEH_SIGN_SESSIONS"], "true")
        self.assertEqual(option_values(build_argv(config, APPS), "--session-ids"), ["external-signed"])

    def test_weak_keys_are_refused_without_showing_them(self):
        for key, fragment in (("short-key", "too short (9 characters"), ("a" * 40, "not random enough")):
            with self.subTest(key=key), self.assertRaises(ConfigError) as caught:
                load_config({"BOKEH_SECRET_KEY": key})
            self.assertIn(fragment, str(caught.exception))
            self.assertNotIn(key, str(caught.exception))

    def test_key_from_a_file(self):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "key"
            path.write_text(KEY + "\n")
            config = load_config_from({"BOKEH_SECRET_KEY_FILE": str(path)})
            self.assertEqual(config.env_updates["BOKEH_SECRET_KEY"], KEY)
            self.assertEqual(config.secret_key_from, f"BOKEH_SECRET_KEY_FILE={path}")
            # The variable wins over the file, so one value can override a mounted key.
            other = KEY[::-1]
            config = load_config_from({"BOKEH_SECRET_KEY_FILE": str(path), "BOKEH_SECRET_KEY": other})
            self.assertEqual(config.env_updates["BOKEH_SECRET_KEY"], other)

    def test_unreadable_key_file(self):
        with self.assertRaises(ConfigError) as caught:
            load_config_from({"BOKEH_SECRET_KEY_FILE": "/nonexistent/key"})
        self.assertIn("BOKEH_SECRET_KEY_FILE=/nonexistent/key cannot be read", str(caught.exception))

    def test_log_line_names_the_source_not_the_key(self):
        line = describe(load_config({}), APPS)
        self.assertIn("sessions=external-signed (key from BOKEH_SECRET_KEY)", line)
        self.assertNotIn(KEY, line)


class Passthrough(unittest.TestCase):
    def test_extra_args_come_last(self):
        extra = ["--num-procs", "2", "--session-ids", "external-signed"]
        argv = argv_for({}, extra)
        self.assertEqual(argv[-4:], extra)
        self.assertEqual(argv[: len(argv) - 4], argv_for({}))

    def test_log_line_hides_option_values(self):
        config = load_config({"BOKEH_NODELAY": "off"})
        line = describe(config, APPS, ["--num-procs", "2", "--something=hidden-value"])
        self.assertNotIn("hidden-value", line)
        self.assertIn("extra=--num-procs,--something", line)
        self.assertIn("nodelay=off", line)
        self.assertIn(
            "ws_origins=localhost:8000,127.0.0.1:8000,localhost:8443,127.0.0.1:8443,localhost:8444,127.0.0.1:8444 (from PUBLIC_ORIGINS)",
            line,
        )
        self.assertNotIn("\n", line)


class DevMode(unittest.TestCase):
    def test_off_by_default_and_named_in_the_log_line_when_on(self):
        self.assertFalse(load_config({}).dev)
        self.assertNotIn("dev=on", describe(load_config({}), APPS))
        config = load_config({"BOKEH_DEV": "true"})
        self.assertTrue(config.dev)
        self.assertIn("dev=on", describe(config, APPS))

    def test_bad_value(self):
        with self.assertRaises(ConfigError) as caught:
            load_config({"BOKEH_DEV": "sometimes"})
        self.assertEqual(
            str(caught.exception), 'BOKEH_DEV must be true or false (got "sometimes"); set BOKEH_DEV=false'
        )

    def test_app_files_see_edits_new_and_deleted_files_but_not_bytecode(self):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "app" / "__pycache__").mkdir(parents=True)
            main = root / "app" / "main.py"
            main.write_text("x = 1\n")
            (root / "app" / "__pycache__" / "main.cpython-313.pyc").write_bytes(b"")
            before = app_files(root)
            self.assertEqual(set(before), {main})
            os.utime(main, ns=(before[main] + 1_000_000, before[main] + 1_000_000))
            self.assertNotEqual(app_files(root), before)
            (root / "app" / "theme.yaml").write_text("")
            self.assertEqual(len(app_files(root)), 2)


class FindApps(unittest.TestCase):
    def test_only_app_folders_sorted(self):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for name in ("zeta", "alpha", "__pycache__", ".hidden"):
                (root / name).mkdir()
                (root / name / "main.py").write_text("")
            (root / "notebook").mkdir()
            (root / "notebook" / "main.ipynb").write_text("{}")
            (root / "empty").mkdir()
            (root / "loose.py").write_text("")
            self.assertEqual([p.name for p in find_apps(root)], ["alpha", "notebook", "zeta"])

    def test_missing_folder(self):
        self.assertEqual(find_apps(Path("/nonexistent/apps")), [])


class Launcher(unittest.TestCase):
    """Runs serve.py as a program; these paths exit before Bokeh is imported."""

    def run_serve(self, args=(), **env):
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("BOKEH_", "PUBLIC_"))}
        full_env.update(env)
        return subprocess.run(
            [sys.executable, str(SERVE_DIR / "serve.py"), *args],
            env=full_env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def test_bad_setting_exits_2_with_one_line(self):
        result = self.run_serve(BOKEH_PREFIX="bokeh", BOKEH_SECRET_KEY=KEY)
        self.assertEqual(result.returncode, 2)
        self.assertEqual(
            result.stderr, 'serve: BOKEH_PREFIX must start with "/" (got "bokeh"); set BOKEH_PREFIX=/bokeh\n'
        )

    def test_command_instead_of_options(self):
        result = self.run_serve([sys.executable, "-c", "print('ran')"])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout, "ran\n")

    def test_import_does_not_load_bokeh(self):
        code = f"import sys; sys.path.insert(0, {str(SERVE_DIR)!r}); import serve; print('bokeh' in sys.modules)"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False)
        self.assertEqual(result.stdout.strip(), "False", result.stderr)

    def test_helpers_use_the_settings_not_the_launcher(self):
        # The healthcheck runs every few seconds and keygen before Bokeh: neither needs serve.py.
        code = (
            f"import sys; sys.path.insert(0, {str(SERVE_DIR)!r}); import healthcheck, keygen; "
            "print(sorted(m for m in ('serve', 'bokeh', 'launcher.settings') if m in sys.modules))"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False)
        self.assertEqual(result.stdout.strip(), "['launcher.settings']", result.stderr)


if __name__ == "__main__":
    unittest.main()
