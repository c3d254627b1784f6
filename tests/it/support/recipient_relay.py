"""A relay for tests that answers each recipient on its own: aiosmtpd, a real SMTP server library.

RCPT TO a local part starting with `reject` gets 550, with `defer` 450 (until the file named by the
third argument exists: then it is accepted, as a mailbox that comes back); every other recipient is
accepted. Each message accepted is appended to the dump file as one JSON line: the envelope and the
content in base64, exactly as received.

With a fourth argument `pipelining` it also announces PIPELINING (RFC 2920); aiosmtpd reads commands
in order from its stream, so pipelined clients are served as they should be.

Usage: recipient_relay.py PORT DUMP_FILE ACCEPT_DEFERRED_FLAG_FILE [pipelining]
"""
import base64
import json
import os
import signal
import sys

from aiosmtpd.controller import Controller

port, dump, flag = int(sys.argv[1]), sys.argv[2], sys.argv[3]
pipelining = sys.argv[4:] == ["pipelining"]


class Handler:
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("reject"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if local.startswith("defer") and not os.path.exists(flag):
            return f"450 4.2.1 <{address}>: Recipient mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_to": envelope.rcpt_tos,
            "mail_options": envelope.mail_options,
            "content": base64.b64encode(envelope.original_content).decode(),
        }
        with open(dump, "a") as f:
            f.write(json.dumps(record) + "\n")
        return "250 2.0.0 OK"


controller = Controller(
    Handler(), hostname="127.0.0.1", port=port, enable_SMTPUTF8=True, decode_data=False,
    data_size_limit=64 * 1024 * 1024,
)
controller.start()
print("ready", flush=True)
signal.pause()
