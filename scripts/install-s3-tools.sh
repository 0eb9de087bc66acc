#!/bin/sh
# Installs the real S3-compatible peers used by the sync integration tests:
#   - s3s-fs 0.14.1 (validates SigV4 signatures) from crates.io
#   - moto[server] 5.2.1 (AWS-like behaviour: ETags in listings, delete/copy) from PyPI
# Both pinned; each step is skipped when the pinned version is already installed.
set -eu

# s3s-fs goes to the user's cargo bin dir; moto where pip_install (scripts/privilege.sh) puts
# it, so the end-to-end tests find it when they run as root.
. "$(dirname "$0")/privilege.sh"
S3S_VERSION=0.14.1
MOTO_VERSION=5.2.1

if command -v s3s-fs >/dev/null 2>&1 && cargo install --list | grep -q "^s3s-fs v${S3S_VERSION}:"; then
    echo "s3s-fs ${S3S_VERSION} already installed"
else
    echo "installing s3s-fs ${S3S_VERSION} (takes a few minutes)"
    cargo install --locked "s3s-fs@${S3S_VERSION}" --features binary
fi

if python3 -c "import moto, sys; sys.exit(0 if moto.__version__ == '${MOTO_VERSION}' else 1)" 2>/dev/null \
    && command -v moto_server >/dev/null 2>&1; then
    echo "moto ${MOTO_VERSION} already installed"
else
    echo "installing moto[server] ${MOTO_VERSION}"
    pip_install "moto[server]==${MOTO_VERSION}"
fi
