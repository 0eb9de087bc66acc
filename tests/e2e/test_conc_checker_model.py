"""The concurrency checker's model of acknowledged writes (conc_checker.final_check and
possible_values), on hand-made journals: each kind of damage a server can do is caught, and
what a correct server may legitimately leave is accepted. No servers needed."""

import conc_checker as cc

KEY = ("demo", "INBOX")


def create(uid, cid, flags=(), s=1.0, e=2.0, mbox="INBOX"):
    return {"ev": "create", "user": "demo", "mbox": mbox, "uid": uid, "cid": cid, "flags": list(flags),
            "s": s, "e": e, "sid": "p0s0"}


def store(uid, flag, val, s, e, certain=True, mbox="INBOX"):
    return {"ev": "store", "user": "demo", "mbox": mbox, "uid": uid, "flag": flag, "val": val, "s": s,
            "e": e if certain else None, "certain": certain}


def listing(msgs, uv=7, work=None):
    return {"srv": {KEY: {"uv": uv, "msgs": msgs}, ("demo", "Work"): {"uv": uv, "msgs": work or {}}}}


def test_possible_values_orders_only_what_the_times_order():
    t = lambda v, s, e: {"val": v, "s": s, "e": e, "certain": True}  # noqa: E731
    assert cc.possible_values([t(True, 1, 2), t(False, 3, 4)], {False}) == {False}
    assert cc.possible_values([t(True, 1, 3), t(False, 2, 4)], {False}) == {True, False}
    assert cc.possible_values([], {True}) == {True}
    # Unknown outcome: either.
    assert cc.possible_values([{"val": True, "s": 1, "e": None, "certain": False}], {False}) == {True, False}
    # Read during [5, 6] (a COPY): a STORE done before is seen; one overlapping may or may not be.
    assert cc.possible_values([t(True, 1, 2)], {False}, (5, 6)) == {True}
    assert cc.possible_values([t(True, 5.5, 7)], {False}, (5, 6)) == {True, False}


def test_dovecot_may_act_on_a_view_missing_pimap_s_last_flag_changes():
    t = lambda v, s, e, srv: {"val": v, "s": s, "e": e, "certain": True, "server": srv}  # noqa: E731
    lag = {("pimap", "dovecot"): 3.0}
    # pimap sets the flag, Dovecot removes it 1 s later, on a view without it: either value.
    ops = [t(True, 1, 2, "pimap"), t(False, 3, 4, "dovecot")]
    assert cc.possible_values(ops, {False}) == {False}
    assert cc.possible_values(ops, {False}, lag=lag) == {True, False}
    # Long enough after, Dovecot has seen it.
    assert cc.possible_values([ops[0], dict(ops[1], s=5.5, e=6)], {False}, lag=lag) == {False}
    # pimap never lags: its STORE after Dovecot's still wins.
    ops = [t(True, 1, 2, "dovecot"), t(False, 3, 4, "pimap")]
    assert cc.possible_values(ops, {False}, lag=lag) == {False}
    # A COPY through Dovecot 1 s after pimap's STORE may copy the flag as it was before.
    assert cc.possible_values([t(True, 1, 2, "pimap")], {False}, (3, 4), "dovecot", lag) == {True, False}
    assert cc.possible_values([t(True, 1, 2, "pimap")], {False}, (3, 4), "pimap", lag) == {True}
    # In final_check: a Dovecot -FLAGS right after pimap's +FLAGS may leave the flag set.
    ev = [create(1, "a"), dict(store(1, "kw01", True, 3, 4), server="pimap"),
          dict(store(1, "kw01", False, 4.5, 5), server="dovecot")]
    assert cc.final_check(ev, listing({1: ({"kw01"}, "a")}), 1)
    assert cc.final_check(ev, listing({1: ({"kw01"}, "a")}), 1, lag=lag) == []


def test_a_correct_store_passes():
    ev = [create(1, "a", ["\\Seen"]), store(1, "kw01", True, 3, 4), store(1, "\\Seen", False, 5, 6)]
    assert cc.final_check(ev, listing({1: ({"kw01"}, "a")}), 1) == []


def test_lost_message_extra_message_wrong_flags_and_identity_are_caught():
    ev = [create(1, "a"), create(2, "b", ["\\Flagged"]), create(3, "c"), store(3, "kw02", True, 3, 4)]
    errs = cc.final_check(ev, listing({2: (set(), "b"), 3: ({"kw02"}, "x"), 9: (set(), "z")}), 1)
    text = "\n".join(errs)
    assert "UID 1 (a) was acknowledged" in text  # lost
    assert "UID 2 (b): flag \\Flagged is clear" in text  # flag lost
    assert "holds message x" in text  # wrong message behind a UID
    assert "UID 9 (z) is there, but no acknowledged" in text  # appeared from nowhere
    assert len(errs) == 4, errs


def test_expunged_message_must_stay_gone_and_may_go_when_deleted():
    gone = {"ev": "gone", "user": "demo", "mbox": "INBOX", "uid": 1}
    assert cc.final_check([create(1, "a"), gone], listing({1: (set(), "a")}), 1)
    # \Deleted and an EXPUNGE after it: gone without any client seeing it is fine.
    ev = [create(1, "a"), store(1, "\\Deleted", True, 3, 4),
          {"ev": "expunge", "user": "demo", "mbox": "INBOX", "s": 5, "e": 6, "uids": None}]
    assert cc.final_check(ev, listing({}), 1) == []


def test_copy_carries_identity_and_flags_at_copy_time():
    ev = [create(1, "a", ["\\Seen"]), store(1, "kw03", True, 3, 4),
          {"ev": "copy", "user": "demo", "src": "INBOX", "dest": "Work", "suid": 1, "duid": 5, "s": 5,
           "e": 6, "move": False}, store(1, "kw03", False, 7, 8)]
    ok = listing({1: ({"\\Seen"}, "a")}, work={5: ({"\\Seen", "kw03"}, "a")})
    assert cc.final_check(ev, ok, 1) == []
    bad = listing({1: ({"\\Seen"}, "a")}, work={5: ({"\\Seen"}, "a")})
    assert any("flag kw03 is clear" in e for e in cc.final_check(ev, bad, 1))


def test_unknown_outcome_append_may_or_may_not_be_there():
    ev = [{"ev": "unknown_create", "user": "demo", "mbox": "INBOX", "cids": ["u"]}]
    assert cc.final_check(ev, listing({}), 1) == []
    assert cc.final_check(ev, listing({4: (set(), "u")}), 1) == []
    assert cc.final_check(ev, listing({4: (set(), "v")}), 1)


def test_two_servers_must_agree():
    ev = [create(1, "a")]
    two = {"pimap": {KEY: {"uv": 7, "msgs": {1: (set(), "a")}}},
           "dovecot": {KEY: {"uv": 7, "msgs": {1: ({"kw09"}, "a")}}}}
    errs = cc.final_check(ev, two, 1)
    assert any(e.startswith("cross:") for e in errs), errs


def test_keywords_without_a_letter_are_asked_of_pimap_only():
    # kw30 has no file-name letter (only kw01 has): Dovecot cannot show it, pimap must.
    ev = [create(1, "a", ["kw01", "kw30"])]
    lettered = {KEY: {"kw01"}, ("demo", "Work"): set()}
    both = {"pimap": {KEY: {"uv": 7, "msgs": {1: ({"kw01", "kw30"}, "a")}}},
            "dovecot": {KEY: {"uv": 7, "msgs": {1: ({"kw01"}, "a")}}}}
    assert cc.final_check(ev, both, 1, lettered) == []
    # Without the letter map that is a difference (and so in "both" mode, where every
    # keyword has a letter).
    assert cc.final_check(ev, both, 1)
    # pimap losing the keyword without a letter is still caught.
    lost = {"pimap": {KEY: {"uv": 7, "msgs": {1: ({"kw01"}, "a")}}},
            "dovecot": {KEY: {"uv": 7, "msgs": {1: ({"kw01"}, "a")}}}}
    assert any("pimap demo/INBOX UID 1 (a): flag kw30 is clear" in e for e in cc.final_check(ev, lost, 1, lettered))
    # A lettered keyword lost in Dovecot's view, or one Dovecot shows that nobody set
    # (a letter it maps to another name), is caught, in the listing and the comparison.
    for dv in (set(), {"kw01", "unknown-8"}):
        bad = {"pimap": both["pimap"], "dovecot": {KEY: {"uv": 7, "msgs": {1: (set(dv), "a")}}}}
        errs = cc.final_check(ev, bad, 1, lettered)
        assert any(e.startswith("final: seed=1: dovecot demo/INBOX UID 1") for e in errs), errs
        assert any(e.startswith("cross:") for e in errs), errs


def test_lettered_keywords_reads_dovecot_keywords(tmp_path):
    (tmp_path / "demo" / ".Work").mkdir(parents=True)
    (tmp_path / "demo" / "dovecot-keywords").write_text("0 KW01\n1 kw05\nbad\n30 kw99\n")
    assert cc.lettered_keywords(tmp_path, ["demo"]) == {KEY: {"kw01", "kw05"}, ("demo", "Work"): set()}


def test_a_keyword_dovecot_lost_to_a_kill_is_accepted_only_after_a_store_in_doubt():
    # Killed during STORE +FLAGS (kw01): the letter made it into the file name, the keyword
    # did not reach dovecot-keywords, and Dovecot names the letter unknown-3.
    doubt = store(1, "kw01", True, 3, None, certain=False)
    listed = listing({1: ({"unknown-3"}, "a")})
    assert cc.final_check([create(1, "a"), doubt], listed, 1) == []
    errs = cc.final_check([create(1, "a"), store(1, "kw01", True, 3, 4)], listed, 1)
    assert any("unknown-3 is set" in e for e in errs), errs


def test_an_uncertain_copy_of_a_message_from_an_uncertain_copy_is_allowed_once():
    # Work 73 ("a") moved to INBOX by a command cut by a kill: it shows up as INBOX 139, which
    # has no record; 139 is copied to Work 153 and that to INBOX 452 (acknowledged), and 452
    # moved to Work by a command cut by a kill: its copy, Work 581, names "a". Nothing else
    # may appear.
    def copy(src, suid, dest, duid, s):
        return {"ev": "copy", "user": "demo", "src": src, "dest": dest, "suid": suid, "duid": duid,
                "s": s, "e": s + 1, "move": False}

    def cut(src, uids, dest):
        return {"ev": "unknown_copy", "user": "demo", "src": src, "dest": dest, "uids": uids,
                "move": True}

    ev = [create(73, "a", mbox="Work"), cut("Work", [73], "INBOX"),
          copy("INBOX", 139, "Work", 153, 5), copy("Work", 153, "INBOX", 452, 7),
          cut("INBOX", [452], "Work")]
    ok = listing({139: (set(), "a"), 452: (set(), "a")},
                 work={153: (set(), "a"), 581: (set(), "a")})
    assert cc.final_check(ev, ok, 1) == []
    stray = listing({139: (set(), "a"), 452: (set(), "a")},
                    work={153: (set(), "a"), 581: (set(), "a"), 582: (set(), "zzz")})
    errs = cc.final_check(ev, stray, 1)
    assert len(errs) == 1 and "582" in errs[0], errs
