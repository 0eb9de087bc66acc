"""pimap and Dovecot serving the SAME Maildir (a migration, or running both side by side).

Both run as the unprivileged mail user over one mail root. Changes made through one server
must be seen identically through the other: UIDVALIDITY, UIDs, UIDNEXT, flags, keywords,
subscriptions, message bytes. This is the file-format contract in
shared/notes/dovecot-compat.md checked end to end.
"""

from imapwire import append, flags, listing
from msgs import MULTIPART, SIMPLE, message


def snapshot(c, mailbox):
    r = c.ok(f"EXAMINE {mailbox}")
    codes = r.codes()
    msgs = {}
    if r.number("EXISTS") != [0]:
        for v in c.ok("UID FETCH 1:* (FLAGS RFC822.SIZE BODY.PEEK[])").fetches().values():
            msgs[int(v["UID"])] = (flags(v["FLAGS"]) - {"\\Recent"}, int(v["RFC822.SIZE"]), v["BODY[]"])
    subs = set(listing(c.ok('LSUB "" "*"'), "LSUB"))
    # Selectable mailboxes only: whether LIST "*" also shows a non-existent parent (like
    # "Lists" for "Lists.Rust") is up to the server (RFC 3501 §6.3.8, RFC 5258 §3).
    boxes = {n for n, (attrs, _) in listing(c.ok('LIST "" "*"')).items()
             if not attrs & {"\\noselect", "\\nonexistent"}}
    c.ok("CLOSE")
    return {"uidvalidity": codes["UIDVALIDITY"], "uidnext": codes["UIDNEXT"], "msgs": msgs,
            "subs": subs, "boxes": boxes}


def test_dovecot_then_pimap_then_dovecot(both):
    dv, pm = both
    # 1. Dovecot writes.
    d = dv.login(name="dovecot")
    d.ok("CREATE Work")
    d.ok("CREATE Work.Sub")
    d.ok("SUBSCRIBE Work")
    d.ok("SUBSCRIBE Work.Sub")
    append(d, "Work", SIMPLE, flags="\\Seen", date="17-Jul-1996 02:44:25 -0700")
    append(d, "Work", message("to be expunged"))
    append(d, "Work", MULTIPART, flags="$Label1 \\Answered")
    append(d, "INBOX", message("inbox msg"), flags="\\Flagged")
    d.ok("SELECT Work")
    d.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    d.ok("EXPUNGE")
    d.ok("CLOSE")
    before_work = snapshot(d, "Work")
    before_inbox = snapshot(d, "INBOX")
    d.logout()
    assert sorted(before_work["msgs"]) == [1, 3]

    # 2. pimap reads the same state.
    p = pm.login(name="pimap")
    assert snapshot(p, "Work") == before_work
    assert snapshot(p, "INBOX") == before_inbox

    # 3. pimap writes.
    append(p, "Work", message("from pimap"), flags="Project-X")
    p.ok("SELECT Work")
    p.ok("UID STORE 1 +FLAGS.SILENT (\\Flagged)")
    p.ok("UID STORE 3 -FLAGS.SILENT ($Label1)")
    p.ok("UID STORE 3 +FLAGS.SILENT (\\Deleted)")
    p.ok("EXPUNGE")
    p.ok("CLOSE")
    p.ok("UNSUBSCRIBE Work.Sub")
    p.ok("CREATE Archive")
    p.ok("SUBSCRIBE Archive")
    after = snapshot(p, "Work")
    after_inbox = snapshot(p, "INBOX")
    p.logout()
    assert after["uidvalidity"] == before_work["uidvalidity"]
    assert sorted(after["msgs"]) == [1, 4]
    assert after["msgs"][1][0] == {"\\Seen", "\\Flagged"}
    assert after["msgs"][4][0] == {"Project-X"}
    assert after["subs"] == {"Work", "Archive"}

    # 4. Dovecot sees exactly what pimap did.
    d2 = dv.login(name="dovecot-again")
    assert snapshot(d2, "Work") == after
    assert snapshot(d2, "INBOX") == after_inbox
    # And Dovecot can keep going: its next UID is pimap's UIDNEXT.
    r = append(d2, "Work", message("after pimap"))
    if r.code and r.code.startswith("APPENDUID"):
        assert r.code.split()[2] == after["uidnext"]


def test_pimap_first_then_dovecot(both):
    dv, pm = both
    p = pm.login(name="pimap")
    p.ok("CREATE Lists.Rust")
    p.ok("SUBSCRIBE Lists.Rust")
    append(p, "INBOX", SIMPLE, flags="\\Seen $Important")
    append(p, "INBOX", MULTIPART)
    append(p, "Lists.Rust", message("rust news"), flags="\\Answered")
    mine = {"INBOX": snapshot(p, "INBOX"), "Lists.Rust": snapshot(p, "Lists.Rust")}
    p.logout()
    d = dv.login(name="dovecot")
    assert snapshot(d, "INBOX") == mine["INBOX"]
    assert snapshot(d, "Lists.Rust") == mine["Lists.Rust"]
    # Dovecot's writes are then visible to a new pimap session.
    d.ok("SELECT INBOX")
    d.ok("STORE 2 +FLAGS.SILENT (\\Seen Later)")
    d.ok("CLOSE")
    theirs = snapshot(d, "INBOX")
    d.logout()
    p2 = pm.login(name="pimap-again")
    assert snapshot(p2, "INBOX") == theirs
