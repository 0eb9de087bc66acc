"""The README's test command, `bash scripts/test.sh`, works as root from a 0700 directory and
as a normal user with passwordless sudo, like the quick start (test_firstrun.py).

Each test runs the real command on a fresh copy of this checkout, with the stages that meet
paths and privileges: install (apt, useradd and pip through sudo for a normal user), build,
and an e2e subset that runs Dovecot's mail processes as `pimaptest` and pimap's privilege
drop. The whole command would take 20+ minutes and run this file again, so the stages are
chosen with `--only` and PIMAP_TEST_COMMAND_INNER keeps the inner run from recursing. Every
selected test must pass and none may be skipped: a root-only test skipped as a normal user
is the failure this file is about.

Root's copy has its target/debug seeded from this checkout's (a fresh debug build takes minutes
on 2 cores). The normal user builds from scratch (its own CARGO_HOME makes cargo rebuild every
dependency anyway, ≈2 minutes), with a copy of root's cargo registry and s3s-fs, and root's
rustup toolchains through a bind mount in a private mount namespace: root's home is 0700 and
its modes are left alone.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import REPO, attach

GUARD = "PIMAP_TEST_COMMAND_INNER"
STAGES = "install,build,e2e"
# Dovecot as `pimaptest` beside pimap (cross_server), the quick start as root and as a normal
# user from 0700 directories (firstrun), pimap's privilege drop (privdrop).
SUBSET = "firstrun or cross_server or privdrop"
USER = "pimap-testcmd"
SUDOERS = Path("/etc/sudoers.d/pimap-test-command")
TIMEOUT = 1200

pytestmark = [
    pytest.mark.skipif(os.environ.get(GUARD) == "1", reason="inside the test command this file runs"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make the 0700 copy and the user "
                       "(scripts/test.sh runs the e2e suite as root)"),
]


def tree_files() -> list[str]:
    """The checkout's files as git sees them (tracked and new, not ignored); without git, every
    file but build output and caches."""
    if (REPO / ".git").exists() and shutil.which("git"):
        out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", "-z"],
                             capture_output=True, check=True, timeout=60)
        return [f for f in out.stdout.decode().split("\0") if f and (REPO / f).exists()]
    skip = {".git", "target", "__pycache__", ".pytest_cache", "artifacts", "pimap-data"}
    files = []
    for top, dirs, names in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in skip]
        files += [os.path.relpath(os.path.join(top, n), REPO) for n in names if n not in skip]
    return files


def copy_checkout(dest: Path, with_build: bool = True) -> None:
    """This checkout's files into `dest`, and with `with_build` its debug build without
    incremental/ (cp -a keeps the mtimes cargo's freshness checks compare)."""
    listing = dest.parent / f"{dest.name}.files"
    listing.write_text("\0".join(tree_files()))
    subprocess.run(f"tar -C {shlex.quote(str(REPO))} --null -T {shlex.quote(str(listing))} -cf - | "
                   f"tar -C {shlex.quote(str(dest))} -xf -", shell=True, check=True, timeout=300)
    listing.unlink()
    debug = REPO / "target" / "debug"
    if with_build and debug.is_dir():
        (dest / "target" / "debug").mkdir(parents=True)
        for entry in debug.iterdir():
            if entry.name != "incremental":
                subprocess.run(["cp", "-a", str(entry), str(dest / "target" / "debug")], check=True,
                               timeout=600)


def outer_env() -> dict[str, str]:
    """This process's environment without the suite's PIMAP_* settings (the inner command sets
    its own PIMAP_BIN), plus the recursion guard."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIMAP_")}
    env[GUARD] = "1"
    return env


def run_logged(request, name: str, cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> str:
    attach(request.node, name, lambda: log.read_text(errors="replace"))
    with open(log, "wb") as out:
        p = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                           stderr=subprocess.STDOUT, timeout=TIMEOUT)
    text = log.read_text(errors="replace")
    assert p.returncode == 0, f"the test command exited with {p.returncode} (its output: below, and {log})"
    return text


def assert_all_passed(text: str) -> None:
    """pytest's last summary line shows passes only, and test.sh says its stages passed."""
    summary = [line for line in text.splitlines() if re.search(r"\d+ (passed|failed|skipped|errors?)\b", line)]
    assert summary, "no pytest summary in the output"
    assert re.search(r"\b[1-9]\d* passed\b", summary[-1]), summary[-1]
    for bad in ("failed", "error", "skipped"):
        assert bad not in summary[-1], summary[-1]
    assert f"{STAGES.replace(',', ' ')} passed" in text, "test.sh did not report its stages passed"


def test_readme_test_command_as_root_from_a_0700_directory(request, workdir):
    home = Path(tempfile.mkdtemp(prefix="clone-", dir=workdir))  # mode 0700, like /root
    request.addfinalizer(lambda: shutil.rmtree(home, ignore_errors=True))
    assert home.stat().st_mode & 0o777 == 0o700
    copy_checkout(home)
    cmd = ["bash", "scripts/test.sh", "--only", STAGES, "-k", SUBSET]
    text = run_logged(request, "test command as root", cmd, home, outer_env(), workdir / "test-command.log")
    assert_all_passed(text)


def remove_user() -> None:
    SUDOERS.unlink(missing_ok=True)
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return
    subprocess.run(["userdel", USER], check=True, timeout=60)


@pytest.fixture
def sudo_user(request, workdir) -> pwd.struct_passwd:
    """A throwaway normal user with passwordless sudo and a 0700 home (Debian 12's adduser
    default) in the test's temp dir; removed afterwards, with its sudoers drop-in."""
    assert shutil.which("sudo"), "sudo is not installed (scripts/install-test-deps.sh installs it)"
    remove_user()  # left by an interrupted run
    home = workdir / "home"
    subprocess.run(["useradd", "--user-group", "--no-create-home", "--home-dir", str(home), "--shell",
                    "/bin/bash", USER], check=True, timeout=60)
    request.addfinalizer(remove_user)
    pw = pwd.getpwnam(USER)
    home.mkdir(mode=0o700)
    os.chown(home, pw.pw_uid, pw.pw_gid)
    SUDOERS.write_text(f"{USER} ALL=(ALL) NOPASSWD: ALL\n")
    SUDOERS.chmod(0o440)
    subprocess.run(["visudo", "-cf", str(SUDOERS)], check=True, capture_output=True, timeout=60)
    return pw


def rust_homes() -> tuple[Path, Path, Path]:
    """(rustup binary, RUSTUP_HOME, CARGO_HOME) of the toolchain this suite runs with."""
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    rustup = shutil.which("rustup")
    rustup_home = Path(os.environ.get("RUSTUP_HOME") or home / ".rustup")
    cargo_home = Path(os.environ.get("CARGO_HOME") or home / ".cargo")
    assert rustup and rustup_home.is_dir(), "needs a rustup toolchain to lend to the test user"
    return Path(rustup).resolve(), rustup_home, cargo_home


def lend_toolchain(home: Path) -> Path:
    """The user's ~/.cargo, as `rustup` would make it: rustup and its proxies, plus a copy of
    the cargo registry and of s3s-fs (`cargo install` would build it for 5 minutes). Returns
    RUSTUP_HOME, to bind-mount on ~/.rustup."""
    rustup, rustup_home, cargo_home = rust_homes()
    bin_dir = home / ".cargo" / "bin"
    bin_dir.mkdir(parents=True)
    shutil.copy2(rustup, bin_dir / "rustup")
    for proxy in ("cargo", "rustc", "rustdoc", "rustfmt", "cargo-fmt", "cargo-clippy", "clippy-driver"):
        (bin_dir / proxy).symlink_to("rustup")
    s3s = shutil.which("s3s-fs")
    if s3s:
        shutil.copy2(s3s, bin_dir / "s3s-fs")
        for name in (".crates.toml", ".crates2.json"):
            if (cargo_home / name).exists():
                shutil.copy2(cargo_home / name, home / ".cargo" / name)
    if (cargo_home / "registry").is_dir():
        subprocess.run(["cp", "-a", str(cargo_home / "registry"), str(home / ".cargo")], check=True, timeout=600)
    (home / ".rustup").mkdir()
    return rustup_home


def test_readme_test_command_as_a_normal_user_with_sudo(request, workdir, sudo_user):
    home = Path(sudo_user.pw_dir)
    clone = home / "pimap"
    clone.mkdir()
    # No seeded build: with another CARGO_HOME cargo rebuilds every dependency anyway (≈2 min).
    copy_checkout(clone, with_build=False)
    rustup_home = lend_toolchain(home)
    subprocess.run(["chown", "-R", f"{sudo_user.pw_uid}:{sudo_user.pw_gid}", str(home)], check=True, timeout=600)
    # A login's environment on Debian (no sbin in PATH), plus rustup's ~/.cargo/bin.
    env = ["env", "-i", f"HOME={home}", f"USER={USER}", f"LOGNAME={USER}", "LANG=C.UTF-8", f"{GUARD}=1",
           f"PATH={home}/.cargo/bin:/usr/local/bin:/usr/bin:/bin"]
    mount = 'mount --bind "$1" "$2" && mount -o remount,bind,ro "$2" && shift 2 && exec "$@"'
    cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, "sh", str(rustup_home),
           str(home / ".rustup"), "runuser", "-u", USER, "--", *env,
           "bash", "scripts/test.sh", "--only", STAGES, "-k", SUBSET]
    text = run_logged(request, "test command as a normal user", cmd, clone, outer_env(),
                      workdir / "test-command.log")
    assert_all_passed(text)
    left = subprocess.run(["find", str(clone), "!", "-user", USER], capture_output=True, text=True, timeout=60)
    assert left.stdout == "", f"files in the checkout that are not the user's:\n{left.stdout}"
