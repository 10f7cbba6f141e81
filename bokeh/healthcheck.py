"""Container health probe: exit 0 when Bokeh answers for the first app, 1 otherwise.

It asks for `{BOKEH_PREFIX}/{app}/metadata`: a small JSON reply that needs no session, so a probe
every few seconds creates no documents. Port and prefix come from the launcher's own settings
(launcher/settings.py), so set BOKEH_PORT rather than passing --port to the launcher.
"""

import os
import sys
import urllib.request

from launcher.apps import find_apps
from launcher.settings import ConfigError, load_config


def main() -> int:
    try:
        config = load_config(os.environ)
    except ConfigError as error:
        print(f"healthcheck: {error}", file=sys.stderr)
        return 1
    apps = find_apps()
    if not apps:
        print("healthcheck: no apps found", file=sys.stderr)
        return 1
    url = f"http://127.0.0.1:{config.port}{config.prefix}/{apps[0].name}/metadata"
    # Straight to loopback, even when the container has HTTP(S)_PROXY set.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as response:
            ok = response.status == 200
    except OSError as error:
        print(f"healthcheck: {url}: {error}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
