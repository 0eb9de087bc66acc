"""`--sqs-queue`: mail delivered as S3 or SES announces it, through the real binary against moto
(S3, SQS, SNS and S3 event notifications, AWS's behaviour), with SQS reached through
`sqsproxy.SqsProxy`, which checks every request's SigV4 signature with botocore's signer and
injects faults. The LIST pass runs only at start (its interval is an hour), so what arrives
later can only have come through the queue."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import HOST, MAIL_GID, MAIL_UID, attach, chown_tree, free_port, start_pimap, stop_process, wait_for_port
from sqsproxy import SqsProxy, wait_for

boto3 = pytest.importorskip("boto3")

if shutil.which("moto_server") is None:
    if os.environ.get("PIMAP_TEST_REQUIRE_S3") == "1":
        raise RuntimeError("moto_server is not installed and PIMAP_TEST_REQUIRE_S3=1 requires it")
    pytest.skip("moto is not installed (scripts/install-s3-tools.sh)", allow_module_level=True)

AK, SK = "AKIDPIMAPTEST", "pimap-test-secret"
ACCOUNT = "123456789012"


def message(subject: str) -> bytes:
    """Shaped like what SES writes: its trace headers first, CRLF line ends."""
    return (f"Return-Path: <sender@example.net>\r\n"
            f"Received: from mail.example.net by inbound-smtp.us-east-1.amazonaws.com with SMTP "
            f"id {subject} for demo@example.org; Fri, 04 Dec 2026 10:00:00 +0000 (UTC)\r\n"
            f"X-SES-Spam-Verdict: PASS\r\nX-SES-Virus-Verdict: PASS\r\n"
            f"From: Sender <sender@example.net>\r\nTo: demo@example.org\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{subject}@example.net>\r\n\r\n"
            f"Hello from {subject}.\r\n").encode()


class Aws:
    """One test's bucket and queue in moto, the proxy in front of moto's SQS, and pimap."""

    def __init__(self, request, workdir: Path, moto_port: int, name: str):
        self.request, self.workdir = request, workdir
        kw = dict(endpoint_url=f"http://{HOST}:{moto_port}", region_name="us-east-1",
                  aws_access_key_id=AK, aws_secret_access_key=SK)
        self.s3 = boto3.client("s3", **kw)
        self.sqs = boto3.client("sqs", **kw)
        self.sns = boto3.client("sns", **kw)
        self.moto_port = moto_port
        self.bucket = name
        self.s3.create_bucket(Bucket=name)
        self.queue = self.sqs.create_queue(
            QueueName=name, Attributes={"VisibilityTimeout": "2"})["QueueUrl"]
        self.arn = self.sqs.get_queue_attributes(
            QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.proxy = SqsProxy(free_port(), moto_port, {AK: SK})
        request.addfinalizer(self.proxy.close)
        self.srv = None
        self.http_port = None

    def notify_on_put(self) -> None:
        """S3 event notifications for new objects under inbound/ into the queue."""
        self.s3.put_bucket_notification_configuration(Bucket=self.bucket, NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": self.arn, "Events": ["s3:ObjectCreated:*"],
                                     "Filter": {"Key": {"FilterRules": [
                                         {"Name": "prefix", "Value": "inbound/"}]}}}]})

    @property
    def queue_via_proxy(self) -> str:
        return f"http://{HOST}:{self.proxy.port}/{ACCOUNT}/{self.bucket}"

    def start(self, *extra: str, secret: str = SK, key: str = AK, port: int | None = None,
              s3_via_proxy: bool = False):
        self.http_port = free_port()
        s3_port = self.proxy.port if s3_via_proxy else self.moto_port
        # The sync keeps its ledger in the data dir, as the mail user pimap runs as.
        (self.workdir / "pimap-data").mkdir(exist_ok=True)
        chown_tree(self.workdir / "pimap-data")
        os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = key, secret
        try:
            self.srv = start_pimap(self.workdir, self.workdir / "users", self.workdir / "mail",
                                   port=port, extra=[
                "--s3-bucket", self.bucket, "--s3-prefix", "inbound/",
                "--s3-endpoint", f"http://{HOST}:{s3_port}", "--s3-retries", "3",
                "--deliver-to", "demo", "--sqs-queue", self.queue_via_proxy,
                "--http-listen", f"{HOST}:{self.http_port}", *extra])
        finally:
            del os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
        attach(self.request.node, "pimap log", self.srv.log_text)
        self.request.addfinalizer(self.srv.stop)
        return self.srv

    def put(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)

    def delivered(self) -> list[Path]:
        new, cur = self.workdir / "mail" / "demo" / "new", self.workdir / "mail" / "demo" / "cur"
        return sorted(p for d in (new, cur) if d.is_dir() for p in d.iterdir())

    def queue_empty(self) -> bool:
        a = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return a["ApproximateNumberOfMessages"] == "0" and \
            a["ApproximateNumberOfMessagesNotVisible"] == "0"

    def metric(self, series: str) -> int:
        text = urllib.request.urlopen(f"http://{HOST}:{self.http_port}/metrics", timeout=10).read()
        for line in text.decode().splitlines():
            if line.startswith(series + " "):
                return int(float(line.split()[-1]))
        raise AssertionError(f"no {series} in\n{text.decode()}")

    def watching(self) -> None:
        wait_for(lambda: "sqs: watching" in self.srv.log_text(), 20, "the queue watcher")


@pytest.fixture
def aws(request, workdir, moto):
    name = "t" + str(abs(hash(request.node.nodeid)) % 10**10) + str(int(time.time() * 1000) % 10**6)
    return Aws(request, workdir, moto, name)


def idle(c):
    tag = c.next_tag()
    c.send(f"{tag} IDLE\r\n".encode())
    while not c.read_response().startswith(b"+"):
        pass
    return tag


def test_an_s3_event_reaches_an_idle_client_and_the_queue_is_emptied(aws):
    aws.notify_on_put()
    aws.start()
    aws.watching()
    c = aws.srv.login("demo")
    c.ok("SELECT INBOX")
    idle(c)
    t = time.monotonic()
    aws.put("inbound/first", message("first"))
    line = c.read_response()
    took = time.monotonic() - t
    assert line.rstrip() == b"* 1 EXISTS", line
    # Only the queue can have said so this fast (the LIST pass runs hourly); generous for CI.
    assert took < 5, took
    c.send(b"DONE\r\n")
    wait_for(aws.queue_empty, 10, "the queue to be emptied")
    assert [p.read_bytes() for p in aws.delivered()] == [message("first")]
    assert aws.metric('pimap_sync_delivered_total{path="notification"}') == 1
    assert aws.metric('pimap_sync_delivered_total{path="list"}') == 0
    assert aws.metric('pimap_sqs_messages_total{result="handled"}') == 1
    # The S3 test event moto sends when the configuration is set.
    assert aws.metric('pimap_sqs_messages_total{result="ignored"}') == 1
    assert aws.metric("pimap_sync_notification_latency_seconds_count") == 1
    assert aws.metric('pimap_sqs_polls_total{result="messages"}') >= 1
    assert not aws.proxy.rejected, aws.proxy.rejected


def test_ses_notifications_through_sns_wrapped_and_raw(aws):
    """SES's S3 action with a topic: the notification comes through SNS, as an SNS envelope or
    (raw message delivery) as SES's JSON itself. No bucket notification here."""
    topic = aws.sns.create_topic(Name=aws.bucket)["TopicArn"]
    aws.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=aws.arn)
    raw_topic = aws.sns.create_topic(Name=aws.bucket + "-raw")["TopicArn"]
    aws.sns.subscribe(TopicArn=raw_topic, Protocol="sqs", Endpoint=aws.arn,
                      Attributes={"RawMessageDelivery": "true"})
    aws.start()
    aws.watching()
    for key, t in (("inbound/via-sns", topic), ("inbound/via-sns-raw", raw_topic)):
        aws.put(key, message(key.split("/")[1]))
        ses = {"notificationType": "Received",
               "mail": {"timestamp": "2026-12-04T10:00:00.000Z", "source": "sender@example.net",
                        "messageId": key, "destination": ["demo@example.org"]},
               "receipt": {"recipients": ["demo@example.org"],
                           "action": {"type": "S3", "topicArn": t, "bucketName": aws.bucket,
                                      "objectKeyPrefix": "inbound/", "objectKey": key}}}
        aws.sns.publish(TopicArn=t, Message=json.dumps(ses))
    wait_for(lambda: len(aws.delivered()) == 2, 10, "two deliveries")
    wait_for(aws.queue_empty, 10, "the queue to be emptied")
    assert sorted(p.read_bytes() for p in aws.delivered()) == \
        sorted([message("via-sns"), message("via-sns-raw")])
    assert aws.metric('pimap_sqs_messages_total{result="handled"}') == 2


def test_duplicates_reordering_and_bad_notifications_do_no_harm(aws):
    aws.start()
    aws.watching()
    for k in ("inbound/a", "inbound/b"):
        aws.put(k, message(k[-1]))

    def s3_event(bucket: str, key: str, event: str = "ObjectCreated:Put") -> str:
        return json.dumps({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3",
                                        "eventName": event,
                                        "s3": {"bucket": {"name": bucket},
                                               "object": {"key": key, "size": 100}}}]})

    bodies = [
        s3_event(aws.bucket, "inbound/b"),  # b announced before a
        s3_event(aws.bucket, "inbound/a"),
        s3_event(aws.bucket, "inbound/a"),  # a duplicate
        s3_event(aws.bucket, "inbound/b", "ObjectRemoved:Delete"),
        s3_event("someone-elses-bucket", "inbound/a"),
        s3_event(aws.bucket, "outside/x"),
        s3_event(aws.bucket, "inbound/never-written"),  # announced, then gone
        json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": aws.bucket}),
        "this is not JSON",
        json.dumps({"Records": "nope"}),
        json.dumps({"Type": "Notification", "Message": "{broken"}),
        "{" * 5000,
    ]
    for b in bodies:
        aws.sqs.send_message(QueueUrl=aws.queue, MessageBody=b)
    wait_for(aws.queue_empty, 15, "every message handled and deleted")
    got = sorted(p.read_bytes() for p in aws.delivered())
    assert got == sorted([message("a"), message("b")]), got
    assert aws.metric('pimap_sqs_messages_total{result="handled"}') == 4
    assert aws.metric('pimap_sqs_messages_total{result="ignored"}') == 4
    assert aws.metric('pimap_sqs_messages_total{result="malformed"}') == 4
    assert aws.metric('pimap_sqs_messages_total{result="retried"}') == 0
    log = aws.srv.log_text()
    assert "not --s3-bucket" in log and "not under --s3-prefix" in log
    assert "is no longer in the bucket" in log and "not JSON" in log
    # The duplicate was not delivered twice; a later pass still agrees.
    aws.sqs.send_message(QueueUrl=aws.queue, MessageBody=s3_event(aws.bucket, "inbound/a"))
    wait_for(lambda: aws.metric('pimap_sqs_messages_total{result="handled"}') == 5, 10,
             "the late duplicate")
    assert len(aws.delivered()) == 2


def test_mail_from_before_the_queue_is_delivered_by_the_list_pass(aws):
    aws.put("inbound/old", message("old"))
    aws.start()
    wait_for(lambda: len(aws.delivered()) == 1, 10, "the LIST pass at start")
    aws.watching()
    assert aws.metric('pimap_sync_delivered_total{path="list"}') == 1


def test_the_list_pass_catches_what_no_notification_announced(aws):
    aws.start("--sync-interval", "2s")
    aws.watching()
    aws.put("inbound/unannounced", message("unannounced"))
    wait_for(lambda: len(aws.delivered()) == 1, 15, "the next LIST pass")
    assert aws.metric('pimap_sync_delivered_total{path="list"}') == 1
    assert aws.metric('pimap_sync_delivered_total{path="notification"}') == 0


def test_5xx_throttling_and_resets_are_retried(aws):
    aws.notify_on_put()
    # Fewer faults in a row than --s3-retries (3): each request succeeds within its retries.
    aws.proxy.fail("ReceiveMessage", "500", "throttle")
    aws.proxy.fail("DeleteMessageBatch", "reset", "throttle")
    aws.start()
    aws.watching()
    aws.put("inbound/through-faults", message("faults"))
    wait_for(lambda: len(aws.delivered()) == 1, 20, "delivery despite the faults")
    wait_for(aws.queue_empty, 20, "the queue to be emptied")
    assert aws.proxy.rules == {"ReceiveMessage": [], "DeleteMessageBatch": []}
    assert len(aws.delivered()) == 1
    assert aws.metric('pimap_sqs_polls_total{result="error"}') == 0  # retried within the poll


def test_a_failed_get_leaves_the_notification_for_later(aws):
    """The object's GET keeps failing (5xx through every retry): the message stays in the
    queue, comes back after the visibility timeout (2 s here), and is delivered then."""
    aws.notify_on_put()
    aws.start(s3_via_proxy=True)
    aws.watching()
    aws.proxy.fail("S3 GET", "500", "500", "500")  # --s3-retries 3: one whole delivery attempt
    aws.put("inbound/late", message("late"))
    wait_for(lambda: aws.metric('pimap_sqs_messages_total{result="retried"}') == 1, 15,
             "the failed delivery")
    assert aws.delivered() == []
    wait_for(lambda: len(aws.delivered()) == 1, 15, "the delivery on the message's return")
    wait_for(aws.queue_empty, 10, "the queue to be emptied")
    assert aws.metric('pimap_sync_delivered_total{path="notification"}') == 1


def test_wrong_secret_and_unknown_key_are_clear_errors_and_the_server_keeps_serving(aws):
    aws.start(secret="not-the-secret")
    wait_for(lambda: "SignatureDoesNotMatch" in aws.srv.log_text(), 20, "the signature error")
    log = aws.srv.log_text()
    assert "check the secret access key" in log, log
    assert aws.proxy.rejected and all("bad signature" in r for r in aws.proxy.rejected)
    c = aws.srv.login("demo")
    c.ok("SELECT INBOX")
    c.logout()
    aws.srv.stop()
    aws.start(key="AKIDUNKNOWN")
    wait_for(lambda: "InvalidClientTokenId" in aws.srv.log_text(), 20, "the key error")
    assert "check the access key id" in aws.srv.log_text()


def test_kill_9_between_delivery_and_queue_delete_delivers_once(aws):
    aws.notify_on_put()
    srv = aws.start()
    aws.watching()
    # The S3 test event's message goes first; then hold the delete that follows the delivery.
    wait_for(aws.queue_empty, 10, "the test event handled")
    aws.proxy.fail("DeleteMessageBatch", "hold")
    aws.put("inbound/once", message("once"))
    assert aws.proxy.held.wait(10), "no DeleteMessageBatch after the delivery"
    # Delivered and on disk, the ledger written; the queue delete never completes.
    assert len(aws.delivered()) == 1
    os.kill(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait(10)
    aws.proxy.release.set()
    srv2 = aws.start(port=srv.port)
    # The message comes back after its visibility timeout (2 s): recognised, deleted.
    wait_for(aws.queue_empty, 20, "the redelivered message handled")
    assert [p.read_bytes() for p in aws.delivered()] == [message("once")]
    assert aws.metric('pimap_sqs_messages_total{result="handled"}') >= 1
    assert aws.metric('pimap_sync_delivered_total{path="notification"}') == 0
    c = srv2.login("demo")
    assert b"* 1 EXISTS" in b"\n".join(c.ok("SELECT INBOX").untagged)
    c.logout()


def test_sync_once_drains_the_queue(aws, workdir):
    aws.notify_on_put()
    for k in ("inbound/x1", "inbound/x2"):
        aws.put(k, message(k[-2:]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIMAP_")}
    env |= {"AWS_ACCESS_KEY_ID": AK, "AWS_SECRET_ACCESS_KEY": SK}
    from conftest import PIMAP_BIN
    p = subprocess.run([str(PIMAP_BIN), "sync", "--once", "--data-dir", str(workdir / "sync-data"),
                        "--users", str(workdir / "users"), "--mail-location",
                        f"maildir:{workdir}/mail/%u", "--s3-bucket", aws.bucket,
                        "--s3-prefix", "inbound/", "--s3-endpoint", f"http://{HOST}:{aws.moto_port}",
                        "--deliver-to", "demo", "--sqs-queue", aws.queue_via_proxy],
                       capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr
    assert len(aws.delivered()) == 2
    assert aws.queue_empty()


@pytest.mark.parametrize("args,needle", [
    (["--sqs-queue", "http://127.0.0.1:9/1/q"], "--sqs-queue needs --s3-bucket"),
    (["--s3-bucket", "b", "--sqs-queue", "not a url"], "--sqs-queue \"not a url\""),
    (["--s3-bucket", "b", "--sqs-queue", "https://sqs.us-east-1.amazonaws.com/q"],
     "/ACCOUNT/QUEUE-NAME"),
])
def test_bad_queue_settings_are_start_up_errors(workdir, args, needle):
    from conftest import PIMAP_BIN
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIMAP_")}
    env |= {"AWS_ACCESS_KEY_ID": AK, "AWS_SECRET_ACCESS_KEY": SK}
    p = subprocess.run([str(PIMAP_BIN), "serve", "--data-dir", str(workdir / "d"),
                        "--imap-listen", f"{HOST}:{free_port()}", "--run-as", f"{MAIL_UID}:{MAIL_GID}",
                        *args],
                       capture_output=True, text=True, timeout=30, env=env)
    assert p.returncode != 0
    assert needle in p.stderr, p.stderr
