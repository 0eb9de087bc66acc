#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian 12 machine, as root or as a user
# with passwordless sudo (what needs root goes through `sudo -n`: scripts/privilege.sh).
# Idempotent and non-interactive: steps that are already satisfied are skipped, so a re-run
# takes a second or two.
#
#   bash scripts/install-test-deps.sh
#
# What it installs:
#   apt:  dovecot-core dovecot-imapd (the reference IMAP server every protocol test also runs
#         against), isync (mbsync), offlineimap3, curl, util-linux (setpriv), sudo (a normal
#         user's run, and the e2e test that runs the test command as one), time (GNU time:
#         the backup tests' peak-memory figures), age (the age CLI that
#         tests/backup_crypt_age.rs checks pimap's backup encryption against; 1.1.1 on Debian 12)
#   pip:  tests/e2e/requirements.txt (pinned; python3-pip from Debian if pip is missing)
#   user: `pimaptest`, a system user that owns the Maildirs Dovecot serves in the tests
#         (Dovecot refuses to access mail as uid 0).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DEBIAN_FRONTEND=noninteractive

log() { printf '[install-test-deps] %s\n' "$*"; }

# shellcheck source=scripts/privilege.sh
. "$here/scripts/privilege.sh"

# ---- Debian packages --------------------------------------------------------------------
apt_packages=(dovecot-core dovecot-imapd isync offlineimap3 curl util-linux sudo time age)
missing=()
for p in "${apt_packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    apt_get update -qq
    # Installing dovecot-core may try to start the system-wide service; on a machine without
    # systemd as PID 1 that fails harmlessly, and the tests run their own private instance.
    apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    log "apt packages present: ${apt_packages[*]}"
fi

# The package starts a system-wide Dovecot on some machines; the tests never use it. Leave
# it alone (it listens on 143/993, the tests use free high ports).

# ---- the unprivileged mail user for Dovecot ----------------------------------------------
if ! getent passwd pimaptest >/dev/null; then
    log "creating system user pimaptest"
    as_root useradd --system --user-group --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin pimaptest
else
    log "user pimaptest present"
fi

# ---- Python packages ---------------------------------------------------------------------
# Where they go and why: pip_install in scripts/privilege.sh.
if ! python3 -m pip --version >/dev/null 2>&1; then
    log "apt-get install python3-pip"
    apt_get update -qq
    apt_get install -y -qq --no-install-recommends python3-pip >/dev/null
fi
req="$here/tests/e2e/requirements.txt"
need_pip=0
while read -r line; do
    line="${line%%#*}"
    line="$(echo "$line" | tr -d '[:space:]')"
    [ -z "$line" ] && continue
    name="${line%%==*}"
    want="${line#*==}"
    have="$(python3 -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p' || true)"
    if [ "$have" != "$want" ]; then
        need_pip=1
    fi
done <"$req"
if [ "$need_pip" -eq 1 ]; then
    log "pip install -r tests/e2e/requirements.txt"
    pip_install -r "$req"
else
    log "python packages present"
fi

# ---- S3 test tools ---------------------------------------------------------------------
# s3s-fs (validates SigV4) and moto (AWS behaviour), pinned, for the sync tests.
bash "$(dirname "$0")/install-s3-tools.sh"

log "done"
