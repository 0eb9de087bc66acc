"""The concurrency checker (conc_checker.py), bounded: several client processes, each with
several sessions, on shared mailboxes of several users, for CHECKER_SECONDS (default 25) per
mode. Dovecot alone is the control; pimap alone; pimap and Dovecot on one Maildir at once;
pimap killed with SIGKILL at random moments and restarted (and Dovecot killed the same way,
the control for that mode).

Each mode runs with a fixed seed; `test_checker_random_seed` runs pimap alone with a fresh
seed (printed in its failure). CHECKER_SEED=N replaces every seed (to replay a failure).
"""

import os
import random

import pytest

import conc_checker

SECONDS = float(os.environ.get("CHECKER_SECONDS", "25"))
FIXED_SEEDS = {"dovecot": 1301, "pimap": 1302, "both": 1303, "kill": 1304, "dovecot-kill": 1305}


def seed_for(mode: str) -> int:
    s = os.environ.get("CHECKER_SEED")
    return int(s) if s else FIXED_SEEDS[mode]


def check(mode: str, workdir, seed: int) -> None:
    report = conc_checker.run_mode(mode, workdir, seed, SECONDS)
    print(report.summary())
    if report.errors:
        pytest.fail(f"{report.summary()}\n(replay: CHECKER_SEED={seed}; every error, transcripts and "
                    f"journals: {workdir}/checker-{seed}/)", pytrace=False)
    assert sum(report.counts.values()) > 100, f"the clients hardly ran: {report.counts}"


# Dovecot alone, SIGKILLed at random moments: on these busy 2-core machines Dovecot now and
# then damages its own files under kill -9 ("Broken file dovecot-uidlist ... UIDs not
# ordered", a corrupt cache record, a panic in mail-index-transaction-finish.c, keywords
# remapped to other letters), with no pimap anywhere; the checker rightly reports what the
# clients then see. It stays a control for the checker (run it, read its report), but its
# verdict is Dovecot's, not pimap's. The plain Dovecot control stays strict.
DOVECOT_KILL_DAMAGE = pytest.mark.xfail(
    reason="Dovecot alone under kill -9 sometimes damages its own uidlist/index", strict=False)


MARKS = {"dovecot-kill": DOVECOT_KILL_DAMAGE}


@pytest.mark.parametrize("mode", [pytest.param(m, marks=MARKS[m]) if m in MARKS else m
                                  for m in conc_checker.MODES])
def test_checker(mode, workdir):
    check(mode, workdir, seed_for(mode))


def test_checker_random_seed(workdir):
    seed = int(os.environ.get("CHECKER_SEED") or random.SystemRandom().randrange(1, 10**9))
    check("pimap", workdir, seed)
