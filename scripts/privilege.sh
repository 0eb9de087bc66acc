# Sourced (not run) by the test scripts: how they do what needs root, so the test command
# works the same as root and as a normal user with passwordless sudo (README "Running the
# tests"). POSIX sh, because scripts/install-s3-tools.sh is a sh script.

# Runs "$@" as root: directly when we are root, else through `sudo -n` (never a password
# prompt: the test command runs unattended, and scripts/test.sh checks `sudo -n true` first).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

# Installs Python packages (pip arguments) for the python3 on PATH, where every user of that
# python3 sees them: a normal user's run hands the end-to-end tests to root (scripts/test.sh),
# and root must find the same pytest, so a user site-packages (pip's fallback for a normal
# user) would not do. An interpreter whose site-packages the user may write (a venv, pyenv)
# gets them directly; Debian's python3 gets them under /usr/local through sudo.
pip_install() {
    # Debian 12's python3 is "externally managed" (PEP 668): its pip refuses to install
    # packages unless told to. They then go to /usr/local, beside Debian's own, never over
    # them; a python3 from a venv or pyenv ignores this.
    if [ "$(id -u)" -eq 0 ] || python3 -c 'import os, sys, sysconfig
sys.exit(0 if os.access(sysconfig.get_paths()["purelib"], os.W_OK) else 1)'; then
        PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check \
            --root-user-action=ignore "$@"
    else
        sudo -n env PIP_BREAK_SYSTEM_PACKAGES=1 "$(command -v python3)" -m pip install --quiet \
            --disable-pip-version-check --root-user-action=ignore "$@"
    fi
}

# apt-get as root, never asking (sudo does not pass DEBIAN_FRONTEND through).
apt_get() {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get "$@"
}
