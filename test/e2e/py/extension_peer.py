#!/usr/bin/env python3
# An independent next hop for Tern's outbound tests of MT-PRIORITY (RFC 6710) and DELIVERBY (RFC 2852):
# aiosmtpd, taught to advertise the two extensions and to take their MAIL parameters (it refuses unknown
# ones), recording each message's MAIL parameters as sent. One JSON line per event on stdout; it exits
# when stdin closes.
# Usage: extension_peer.py HOST PORT
# Output: {"kind": "ready"} then {"kind": "message", "mailFrom", "rcptTos", "mailArgs"} per message.
# Deliberately NOT here: assertions. The TypeScript tests decide what the parameters mean.

import json
import os
import re
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

EXTENSION_PARAMS = ("MT-PRIORITY", "BY")


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


KEYWORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")


class ExtensionSMTP(SMTP):
    def _getparams(self, params):
        # RFC 5321 §4.1.2: an esmtp-keyword may hold "-" (aiosmtpd's own check wants isalnum()); and
        # MT-PRIORITY and BY are taken as known (aiosmtpd answers 555 to any parameter it does not handle).
        result = {}
        for param in params:
            key, eq, value = param.partition("=")
            if not KEYWORD.match(key) or (eq and not value):
                return None
            if key not in EXTENSION_PARAMS:
                result[key] = value if eq else True
        return result


class Handler:
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return responses[:-1] + ["250-MT-PRIORITY MIXER", "250-DELIVERBY"] + responses[-1:]

    async def handle_DATA(self, server, session, envelope):
        emit({"kind": "message", "mailFrom": envelope.mail_from, "rcptTos": list(envelope.rcpt_tos),
              "mailArgs": list(envelope.mail_options or [])})
        return "250 2.0.0 OK"


class ExtensionController(Controller):
    def factory(self):
        return ExtensionSMTP(self.handler, **self.SMTP_kwargs)


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    controller = ExtensionController(Handler(), hostname=host, port=port)
    controller.start()
    emit({"kind": "ready"})
    sys.stdin.read()
    os._exit(0)


if __name__ == "__main__":
    main()
