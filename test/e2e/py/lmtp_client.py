#!/usr/bin/env python3
# An independent LMTP client (RFC 2033) for Tern's end-to-end tests: Python's smtplib.LMTP, over TCP or a
# Unix socket, driven by one JSON request on stdin, answering with one JSON result on stdout. smtplib's
# data() reads one reply; LMTP sends one per accepted recipient, so the rest are read with getreply(), as
# a program using smtplib.LMTP for several recipients must.
# Deliberately NOT here: assertions. The TypeScript tests decide what the replies mean.
#
# Request: {"host", "port"} or {"path"}, "lhlo": name, "from", "to": [..], "raw_b64", "mail_options"
# Result:  {"lhlo": [code, text], "features": {...}, "mail": [code, text], "rcpt": [[code, text], ..],
#           "data": [[code, text], ..]}

import base64
import json
import smtplib
import sys


def text_of(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def main():
    req = json.load(sys.stdin)
    if "path" in req:
        client = smtplib.LMTP(req["path"], timeout=20)
    else:
        client = smtplib.LMTP(req["host"], req["port"], timeout=20)
    out = {}
    code, text = client.ehlo(req.get("lhlo", "client.example"))
    out["lhlo"] = [code, text_of(text)]
    out["features"] = {k: v for k, v in client.esmtp_features.items()}
    code, text = client.mail(req["from"], req.get("mail_options", []))
    out["mail"] = [code, text_of(text)]
    out["rcpt"] = []
    accepted = 0
    for rcpt in req["to"]:
        code, text = client.rcpt(rcpt)
        out["rcpt"].append([code, text_of(text)])
        if code == 250:
            accepted += 1
    out["data"] = []
    if accepted > 0:
        code, text = client.data(base64.b64decode(req["raw_b64"]))
        out["data"].append([code, text_of(text)])
        for _ in range(accepted - 1):
            code, text = client.getreply()
            out["data"].append([code, text_of(text)])
    client.quit()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
