"""Test messages (CRLF line endings, so RFC822.SIZE is simply len()) and helpers."""

from __future__ import annotations

import os
import time
from pathlib import Path


def crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


SIMPLE = crlf("""\
Date: Tue, 10 Mar 2020 09:00:00 +0000
From: Alice Example <alice@example.org>
To: Bob <bob@example.net>, carol@example.com
Cc: "Dave, Jr." <dave@example.com>
Subject: Quarterly report
Message-ID: <q1@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

Hello Bob,
the numbers look fine.
""")

# The ENVELOPE of SIMPLE as RFC 3501 §7.4.2 defines it (Sender and Reply-To default to From).
SIMPLE_ENVELOPE = [
    b"Tue, 10 Mar 2020 09:00:00 +0000",
    b"Quarterly report",
    [[b"Alice Example", None, b"alice", b"example.org"]],
    [[b"Alice Example", None, b"alice", b"example.org"]],
    [[b"Alice Example", None, b"alice", b"example.org"]],
    [[b"Bob", None, b"bob", b"example.net"], [None, None, b"carol", b"example.com"]],
    [[b"Dave, Jr.", None, b"dave", b"example.com"]],
    None,
    None,
    b"<q1@example.org>",
]

MULTIPART = crlf("""\
Date: Wed, 11 Mar 2020 10:00:00 +0100
From: Bob <bob@example.net>
To: Alice Example <alice@example.org>
Subject: multipart test
Message-ID: <mp1@example.net>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="XYZ"

This is a preamble.

--XYZ
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Caf=C3=A9 au lait
second line

--XYZ
Content-Type: application/octet-stream; name="a.bin"
Content-Disposition: attachment; filename="a.bin"
Content-Transfer-Encoding: base64

AAECAwQFBgcICQ==

--XYZ--
""")
MULTIPART_PART1_MIME = crlf("""\
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

""")
MULTIPART_PART1_BODY = crlf("Caf=C3=A9 au lait\nsecond line\n")
MULTIPART_PART2_BODY = crlf("AAECAwQFBgcICQ==\n")


def message(subject: str = "hello", body: str = "Hello there.\n", sender: str = "Alice <alice@example.org>",
            to: str = "Bob <bob@example.net>", date: str = "Mon, 02 Mar 2020 08:00:00 +0000",
            extra: str = "", msgid: str | None = None) -> bytes:
    msgid = msgid or f"<{abs(hash((subject, body, sender, date)))}@example.org>"
    return crlf(
        f"Date: {date}\nFrom: {sender}\nTo: {to}\nSubject: {subject}\nMessage-ID: {msgid}\n{extra}"
        f"MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n{body}"
    )


def deliver(maildir: Path, data: bytes, name: str | None = None, uid: int | None = None,
            gid: int | None = None) -> Path:
    """Deliver like an MDA (Maildir spec): write into tmp/, then rename into new/."""
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    name = name or f"{int(time.time())}.M{time.time_ns() % 1000000}P{os.getpid()}.e2e-test"
    tmp = maildir / "tmp" / name
    tmp.write_bytes(data)
    tmp.chmod(0o644)
    if uid is not None and os.geteuid() == 0:
        os.chown(tmp, uid, gid if gid is not None else uid)
    dst = maildir / "new" / name
    os.rename(tmp, dst)
    return dst
