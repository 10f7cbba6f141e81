# shellcheck shell=bash
# Headless Chromium for the browser tests (tests/integration/browser.test.ts), from Debian's own
# package: Playwright's browser download needs a CDN this kind of machine does not reach, and the
# tests drive whatever CHROMIUM_PATH names through playwright-core.
#
# Reads: CHROMIUM_PATH (environment, optional)
# Sets:  exports CHROMIUM_PATH (default /usr/bin/chromium)
# Uses:  log, die, apt_install (common.sh)

export CHROMIUM_PATH=${CHROMIUM_PATH:-/usr/bin/chromium}

ensure_browser() {
  if [[ -x $CHROMIUM_PATH ]]; then
    log "chromium already installed at $CHROMIUM_PATH"
    return 0
  fi
  [[ $CHROMIUM_PATH == /usr/bin/chromium ]] ||
    die "CHROMIUM_PATH=$CHROMIUM_PATH is not an executable: point it at a Chromium or Chrome binary, or unset it to install Debian's chromium"
  # Without recommends apt brings no fonts, and screenshots would show boxes for text.
  apt_install chromium fonts-liberation
  "$CHROMIUM_PATH" --version >/dev/null 2>&1 || die "$CHROMIUM_PATH does not run after installing Debian's chromium package"
}
