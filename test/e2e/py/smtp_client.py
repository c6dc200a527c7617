#!/usr/bin/env python3
# An independent SMTP client for Tern's end-to-end tests: Python's smtplib, driven by one JSON request
# on stdin, answering with one JSON result on stdout. It does what a real Python program does (sendmail,
# send_message, starttls, SMTP_SSL); "steps" mode runs smtplib's low-level commands one by one and
# records every reply, for tests that need the exact code of each step.
# Deliberately NOT here: assertions. The TypeScript tests decide what the replies mean.
#
# Request: {"host", "port", "mode": "plain" | "starttls" | "ssl", "ehlo": name, "timeout": seconds,
#           "login": [user, password] (optional),
#           "action": "sendmail" | "send_message" | "steps", ...}
#   sendmail:     "from", "to": [..], "raw_b64": message bytes, "mail_options", "rcpt_options"
#   send_message: "message": {"headers": [[name, value], ..], "body": text, "cte": "8bit" | ...},
#                 "mail_options", "rcpt_options" (addresses come from the headers, as smtplib does)
#   steps:        "steps": [["mail", addr, [opts]], ["rcpt", addr, [opts]], ["data_b64", b64],
#                           ["cmd", "NOOP"], ...]
# Result: {"ok": true, "refused": {...}, "features": {...}, "tls": version | null, "steps": [[code, text]]}
#      or {"ok": false, "error": class name, "code", "text", "refused", "steps"}.

import base64
import json
import smtplib
import ssl
import sys
from email.message import EmailMessage
from email.policy import SMTP


def tls_context():
    # Tern's test certificate is self-signed: encryption without verification, as the tests intend.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def text_of(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def refused_json(refused):
    return {addr: [code, text_of(msg)] for addr, (code, msg) in refused.items()}


def connect(req):
    timeout = req.get("timeout", 10)
    name = req.get("ehlo", "client.example")
    if req["mode"] == "ssl":
        s = smtplib.SMTP_SSL(req["host"], req["port"], local_hostname=name, timeout=timeout,
                             context=tls_context())
    else:
        s = smtplib.SMTP(req["host"], req["port"], local_hostname=name, timeout=timeout)
    s.ehlo()
    if req["mode"] == "starttls":
        code, msg = s.starttls(context=tls_context())
        if code != 220:
            raise smtplib.SMTPResponseException(code, msg)
        s.ehlo()
    if req.get("login"):
        s.login(req["login"][0], req["login"][1])
    return s


def tls_version(s):
    sock = s.sock
    return sock.version() if isinstance(sock, ssl.SSLSocket) else None


def build_message(spec):
    msg = EmailMessage(policy=SMTP)
    for name, value in spec["headers"]:
        msg[name] = value
    msg.set_content(spec["body"], cte=spec.get("cte", "8bit"))
    return msg


def run(req, out):
    s = connect(req)
    out["features"] = {k: v for k, v in s.esmtp_features.items()}
    out["tls"] = tls_version(s)
    try:
        action = req["action"]
        if action == "sendmail":
            raw = base64.b64decode(req["raw_b64"])
            refused = s.sendmail(req["from"], req["to"], raw, req.get("mail_options", []),
                                 req.get("rcpt_options", []))
            out["refused"] = refused_json(refused)
        elif action == "send_message":
            msg = build_message(req["message"])
            refused = s.send_message(msg, mail_options=req.get("mail_options", []),
                                     rcpt_options=req.get("rcpt_options", []))
            out["refused"] = refused_json(refused)
        elif action == "steps":
            for step in req["steps"]:
                kind = step[0]
                if kind == "mail":
                    r = s.mail(step[1], step[2] if len(step) > 2 else [])
                elif kind == "rcpt":
                    r = s.rcpt(step[1], step[2] if len(step) > 2 else [])
                elif kind == "data_b64":
                    r = s.data(base64.b64decode(step[1]))
                elif kind == "cmd":
                    r = s.docmd(step[1])
                else:
                    raise ValueError("unknown step " + kind)
                out["steps"].append([r[0], text_of(r[1])])
        else:
            raise ValueError("unknown action " + action)
        out["ok"] = True
    finally:
        try:
            s.quit()
        except Exception:
            s.close()


def main():
    req = json.loads(sys.stdin.read())
    out = {"ok": False, "refused": {}, "steps": [], "features": {}, "tls": None}
    try:
        run(req, out)
    except smtplib.SMTPRecipientsRefused as e:
        out.update(error=type(e).__name__, refused=refused_json(e.recipients))
    except smtplib.SMTPResponseException as e:
        # SMTPSenderRefused, SMTPDataError and friends: the reply that ended the attempt.
        out.update(error=type(e).__name__, code=e.smtp_code, text=text_of(e.smtp_error))
    except Exception as e:  # noqa: BLE001 -- any failure must come back as JSON, not a traceback
        out.update(error=type(e).__name__, text=str(e))
    sys.stdout.write(json.dumps(out))


if __name__ == "__main__":
    main()
