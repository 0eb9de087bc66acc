"""NOTIFY (RFC 5465): unsolicited STATUS / LIST / EXISTS / FETCH for the mailboxes a client
names, during IDLE and between commands, compared with Dovecot 2.3 (mailbox_list_index on).

C: A1 NOTIFY SET STATUS (SELECTED (MessageNew (UID FLAGS) MessageExpunge))
      (PERSONAL (MessageNew MessageExpunge MailboxName SubscriptionChange))
S: * STATUS Foo (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 7 UNSEEN 1)
S: A1 OK NOTIFY completed
   (another session appends to Foo)
S: * STATUS Foo (MESSAGES 2 UIDNEXT 3 UNSEEN 2)
   (another session creates Bar)
S: * LIST () "." Bar

UIDVALIDITY and HIGHESTMODSEQ values differ between the servers (each picks its own) and
are compared as numbers; everything else byte for byte. Notifications are awaited with a
timeout (`wait_for`), never slept for; Dovecot alone gets a short pause after NOTIFY / IDLE
to arm its own watch, as in test_ext_idle.py (pimap looks once more after arming).
"""

import os
import re
import time

import pytest

from conftest import MAIL_GID, MAIL_UID
from imapwire import append
from msgs import deliver, message
from test_ext_idle import done, idle, wait_for

TIMEOUT = 5.0
NUMBERS = re.compile(rb"(UIDVALIDITY|HIGHESTMODSEQ) \d+")


def norm(lines: list[bytes]) -> list[bytes]:
    """The server's own UIDVALIDITY / HIGHESTMODSEQ values become N."""
    return [NUMBERS.sub(rb"\1 N", x) for x in lines]


def arm(server):
    """Dovecot starts watching a moment after it answers; pimap before it reads on."""
    if not server.is_pimap:
        time.sleep(0.3)


def caps(c) -> set[str]:
    return {str(x).upper() for x in c.ok("CAPABILITY").data("CAPABILITY")[0]}


def two(server):
    a, b = server.login(name="A"), server.login(name="B")
    a.ok("CREATE Foo")
    a.ok("CREATE Bar")
    append(a, "Foo", message("one"))
    return a, b


def test_advertised(server):
    assert "NOTIFY" in caps(server.login())


def test_set_status(server):
    a, _ = two(server)
    r = a.ok("NOTIFY SET STATUS (PERSONAL (MessageNew MessageExpunge))")
    assert norm(r.untagged) == [
        b"* STATUS INBOX (MESSAGES 0 UIDNEXT 1 UIDVALIDITY N UNSEEN 0)\r\n",
        b"* STATUS Bar (MESSAGES 0 UIDNEXT 1 UIDVALIDITY N UNSEEN 0)\r\n",
        b"* STATUS Foo (MESSAGES 1 UIDNEXT 2 UIDVALIDITY N UNSEEN 1)\r\n",
    ]
    # HIGHESTMODSEQ with CONDSTORE, where flag changes are asked for.
    a.ok("ENABLE CONDSTORE")
    r = a.ok("NOTIFY SET STATUS (MAILBOXES Foo (MessageNew MessageExpunge FlagChange))")
    assert norm(r.untagged) == [
        b"* STATUS Foo (MESSAGES 1 UIDNEXT 2 UIDVALIDITY N UNSEEN 1 HIGHESTMODSEQ N)\r\n",
    ]
    # Without STATUS: nothing now.
    assert a.ok("NOTIFY SET (PERSONAL (MessageNew MessageExpunge))").untagged == []


def test_append_elsewhere_is_told_by_status_during_idle(server):
    a, b = two(server)
    a.ok("NOTIFY SET STATUS (PERSONAL (MessageNew MessageExpunge))")
    tag, before = idle(a)
    assert before == []
    arm(server)
    append(b, "Foo", message("two"))
    got = wait_for(a, b"STATUS", TIMEOUT)
    # UIDVALIDITY was told by NOTIFY SET STATUS: not again.
    assert got == [b"* STATUS Foo (MESSAGES 2 UIDNEXT 3 UNSEEN 2)\r\n"]
    b.ok("SELECT Foo")
    b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    got = wait_for(a, b"STATUS Foo", TIMEOUT)
    # Dovecot 2.3 may also send an unchanged STATUS for another mailbox here (its index
    # was touched): only Foo's are compared.
    assert [g for g in got if b" Foo " in g] == [b"* STATUS Foo (MESSAGES 1 UIDNEXT 3 UNSEEN 1)\r\n"]
    assert done(a, tag).status == "OK"


def test_first_status_carries_uidvalidity_between_commands(server):
    """Not told by NOTIFY SET: the first notification includes UIDVALIDITY; it comes
    without IDLE too."""
    a, b = two(server)
    a.ok("NOTIFY SET (MAILBOXES (Foo Bar) (MessageNew MessageExpunge))")
    arm(server)
    append(b, "Bar", message("two"))
    got = wait_for(a, b"STATUS", TIMEOUT)
    assert norm(got) == [b"* STATUS Bar (MESSAGES 1 UIDNEXT 2 UIDVALIDITY N UNSEEN 1)\r\n"]
    assert a.ok("NOOP").untagged == []


def test_message_new_fetches_attributes_of_the_selected_mailbox(server):
    a, b = two(server)
    a.ok("SELECT INBOX")
    a.ok("NOTIFY SET (SELECTED (MessageNew (UID FLAGS ENVELOPE) MessageExpunge FlagChange))")
    tag, _ = idle(a)
    arm(server)
    m = message("new one")
    msgid = re.search(rb"Message-ID: (\S+)", m).group(1)
    append(b, "INBOX", m)
    got = wait_for(a, b"1 FETCH", TIMEOUT)
    assert got == [
        b"* 1 EXISTS\r\n",
        b"* 1 RECENT\r\n",
        b'* 1 FETCH (UID 1 FLAGS (\\Recent) ENVELOPE ("Mon, 02 Mar 2020 08:00:00 +0000" '
        b'"new one" (("Alice" NIL "alice" "example.org")) (("Alice" NIL "alice" "example.org")) '
        b'(("Alice" NIL "alice" "example.org")) (("Bob" NIL "bob" "example.net")) NIL NIL NIL "'
        + msgid + b'"))\r\n',
    ]
    b.ok("SELECT INBOX")
    b.ok("STORE 1 +FLAGS.SILENT (\\Flagged)")
    assert wait_for(a, b"1 FETCH", TIMEOUT) == [b"* 1 FETCH (FLAGS (\\Flagged \\Recent))\r\n"]
    b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    assert wait_for(a, b"1 EXPUNGE", TIMEOUT) == [b"* 1 EXPUNGE\r\n"]
    assert done(a, tag).status == "OK"


def test_mailbox_names_are_told_by_list(server):
    a, b = two(server)
    a.ok("NOTIFY SET (PERSONAL (MailboxName))")
    arm(server)
    b.ok("CREATE Baz")
    assert wait_for(a, b"LIST", TIMEOUT) == [b'* LIST () "." Baz\r\n']
    b.ok("DELETE Baz")
    assert wait_for(a, b"LIST", TIMEOUT) == [b'* LIST (\\NonExistent) "." Baz\r\n']
    # The client's own changes too (Dovecot sends them after the tagged OK).
    a.ok("CREATE Own")
    assert wait_for(a, b"LIST", TIMEOUT) == [b'* LIST () "." Own\r\n']


def test_rename_is_told_with_oldname(pimap):
    """RFC 5465 MailboxName with RFC 5258 OLDNAME. Dovecot 2.3 sends nothing for a rename by another
    session (and names the old mailbox when the new one is deleted), so only pimap is
    checked, against the RFC's form."""
    a, b = two(pimap)
    a.ok("CREATE Foo.Sub")
    a.ok("NOTIFY SET (PERSONAL (MailboxName))")
    b.ok("RENAME Foo Qux")
    got = wait_for(a, b"LIST () \".\" Qux.Sub", TIMEOUT)
    assert sorted(got) == [
        b'* LIST () "." Qux ("OLDNAME" ("Foo"))\r\n',
        b'* LIST () "." Qux.Sub ("OLDNAME" ("Foo.Sub"))\r\n',
    ]


def test_subscriptions_are_told_by_list(server):
    a, b = two(server)
    a.ok("NOTIFY SET (PERSONAL (SubscriptionChange))")
    arm(server)
    b.ok("SUBSCRIBE Foo")
    assert wait_for(a, b"LIST", TIMEOUT) == [b'* LIST (\\Subscribed) "." Foo\r\n']
    b.ok("UNSUBSCRIBE Foo")
    assert wait_for(a, b"LIST", TIMEOUT) == [b'* LIST () "." Foo\r\n']


def test_notify_none_stops_notifications(server):
    a, b = two(server)
    a.ok("NOTIFY SET (PERSONAL (MessageNew MessageExpunge))")
    arm(server)
    append(b, "Foo", message("two"))
    assert [g for g in wait_for(a, b"STATUS", TIMEOUT) if b" Foo " in g]
    a.ok("NOTIFY NONE")
    append(b, "Foo", message("three"))
    # Proving an absence takes a wait; the same change was told within TIMEOUT above.
    with pytest.raises(AssertionError, match="no b'STATUS'"):
        wait_for(a, b"STATUS", 1.5)


def test_selected_mailbox_is_quiet_without_a_selected_filter(server):
    """RFC 5465: the selected mailbox is reported as the SELECTED filter says; without
    one, not even during IDLE (as Dovecot does). Other mailboxes still are."""
    a, b = two(server)
    a.ok("SELECT INBOX")
    a.ok("NOTIFY SET (PERSONAL (MessageNew MessageExpunge))")
    tag, _ = idle(a)
    arm(server)
    append(b, "INBOX", message("quiet"))
    append(b, "Foo", message("told"))
    got = wait_for(a, b"STATUS", TIMEOUT)
    # UIDVALIDITY in a first notification is the server's choice (pimap: the client was
    # never told it; Dovecot: only for a mailbox that was empty): compared without it.
    got = [g.replace(b" UIDVALIDITY N", b"") for g in norm(got)]
    assert got == [b"* STATUS Foo (MESSAGES 2 UIDNEXT 3 UNSEEN 2)\r\n"]
    a.send(b"DONE\r\n")
    a.read_until_tagged(tag)


def test_flag_change_elsewhere_is_told_by_status(pimap):
    """FlagChange on a non-selected mailbox: UNSEEN changed. Dovecot 2.3 sends nothing for
    it (its mailbox list index notifies new and expunged messages only)."""
    a, b = two(pimap)
    a.ok("ENABLE CONDSTORE")
    a.ok("NOTIFY SET STATUS (SUBTREE Foo (MessageNew MessageExpunge FlagChange))")
    b.ok("SELECT Foo")
    b.ok("STORE 1 +FLAGS.SILENT (\\Seen)")
    got = wait_for(a, b"STATUS", TIMEOUT)
    assert norm(got) == [b"* STATUS Foo (MESSAGES 1 UIDNEXT 2 UNSEEN 0 HIGHESTMODSEQ N)\r\n"]


def test_unbounded_backlog_overflows(pimap):
    """More changes at once than pimap keeps for a client: NOTIFICATIONOVERFLOW (RFC 5465),
    then nothing more. 1,001 subscriptions appear in one atomic write of the
    subscriptions file (as another process could write it)."""
    a, b = two(pimap)
    a.ok("NOTIFY SET (PERSONAL (SubscriptionChange MessageNew MessageExpunge))")
    root = pimap.maildir("demo")
    tmp = root / "subscriptions.tmp"
    tmp.write_text("".join(f"F{i}\n" for i in range(1001)))
    if os.geteuid() == 0:
        os.chown(tmp, MAIL_UID, MAIL_GID)
    os.rename(tmp, root / "subscriptions")
    got = wait_for(a, b"OK [NOTIFICATIONOVERFLOW]", TIMEOUT)
    assert got == [b"* OK [NOTIFICATIONOVERFLOW] Too many changes; notifications are off.\r\n"]
    append(b, "Foo", message("after"))
    with pytest.raises(AssertionError, match="no b'STATUS'"):
        wait_for(a, b"STATUS", 1.5)


@pytest.mark.parametrize("command,expected", [
    # RFC 5465 syntax: BADEVENT lists events in parentheses; Dovecot writes the name bare.
    ("NOTIFY SET (PERSONAL (AnnotationChange))", ("NO", "BADEVENT AnnotationChange")),
    ("NOTIFY SET (PERSONAL (MailboxMetadataChange MessageNew))",
     ("NO", "BADEVENT MailboxMetadataChange")),
    ("NOTIFY SET (INBOXES (ServerMetadataChange))", ("NO", "BADEVENT ServerMetadataChange")),
    ("NOTIFY SET (PERSONAL (Bogus))", ("BAD", None)),
    ("NOTIFY SET (PERSONAL (MessageNew (UID) MessageExpunge))", ("BAD", None)),
    ("NOTIFY SET ()", ("BAD", None)),
    ("NOTIFY SET (PERSONAL ())", ("BAD", None)),
    ("NOTIFY", ("BAD", None)),
])
def test_bad_events(server, command, expected):
    c = server.login()
    r = c.command(command)
    code = r.line.split(b"[", 1)[1].split(b"]")[0].decode() if b"[" in r.line else None
    if code:
        code = code.replace("(", "").replace(")", "")
    assert (r.status, code) == expected, r.line


def test_changes_by_dovecot_and_an_mda_are_noticed(both):
    """pimap's NOTIFY sees another process's writes: Dovecot's APPEND, CREATE and
    SUBSCRIBE, and a file dropped into new/ (as an MDA or the S3 sync delivers)."""
    dovecot, pimap = both
    a = pimap.login(name="A")
    a.ok("CREATE Foo")
    a.ok("NOTIFY SET STATUS (PERSONAL (MessageNew MessageExpunge MailboxName SubscriptionChange))")
    tag, _ = idle(a)
    d = dovecot.login(name="D")
    append(d, "Foo", message("by dovecot"))
    assert wait_for(a, b"STATUS", TIMEOUT) == [b"* STATUS Foo (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n"]
    deliver(pimap.maildir("demo"), message("by mda"), uid=MAIL_UID, gid=MAIL_GID)
    assert wait_for(a, b"STATUS", TIMEOUT) == [
        b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n"
    ]
    d.ok("CREATE Bar")
    assert wait_for(a, b"LIST", TIMEOUT) == [b'* LIST () "." Bar\r\n']
    d.ok("SUBSCRIBE Bar")
    assert wait_for(a, b"LIST", TIMEOUT) == [b'* LIST (\\Subscribed) "." Bar\r\n']
    assert done(a, tag).status == "OK"
