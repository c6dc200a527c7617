#!/usr/bin/env python3
# An independent IMAP client for Tern's end-to-end tests: Python's imaplib, driven by one JSON request on
# stdin, answering with one JSON result on stdout. It does what a real Python program does (IMAP4 with
# starttls(), IMAP4_SSL, login(), authenticate(), select(), fetch(), store(), copy(), expunge(), status(),
# append(), uid(), search(), sort(), thread(), logout()) and records every step's answer, so the TypeScript
# tests can assert on exact responses and bytes.
# Deliberately NOT here: assertions. The TypeScript tests decide what the responses mean.
#
# Request: {"host", "port", "mode": "plain" | "starttls" | "ssl", "timeout": seconds,
#           "steps": [["capability"], ["login", user, password], ["auth_plain", user, password],
#                     ["enable", cap], ["list"], ["create", mailbox], ["select", mailbox, readonly?], ["examine", mailbox],
#                     ["fetch", set, items], ["uid", command, args...], ["store", set, cmd, flags],
#                     ["copy", set, mailbox], ["expunge"], ["status", mailbox, items],
#                     ["append", mailbox, flags | null, date (seconds since epoch) | null, message_b64],
#                     ["search", criteria...], ["sort", criteria, charset, search...],
#                     ["thread", algorithm, charset, search...], ["noop"], ["close"], ["logout"]]}
#   Strings that are not ASCII (mailbox names, a UTF-8 user name) are sent as UTF-8 quoted strings, as a
#   program does once it passes bytes to imaplib.
# Result: {"ok": true, "welcome", "tls": version | null, "capabilities": [...], "steps": [answer, ...]}
#   each answer is {"ok": true, "typ": "OK", "data": [item, ...], "untagged": {name: [item, ...]}} where
#   an item is a string (UTF-8 decoded) or, for a (header, literal) tuple, {"head": text, "b64": literal};
#   or {"ok": false, "error": the exception text}. On a connection failure: {"ok": false, "error", "steps"}.

import base64
import imaplib
import json
import ssl
import sys


def tls_context():
    # Tern's test certificate is self-signed: encryption without verification, as the tests intend.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def item(value):
    if isinstance(value, tuple):
        return {"head": text(value[0]), "b64": base64.b64encode(value[1]).decode("ascii")}
    if value is None:
        return None
    return text(value)


def arg(value):
    """A mailbox or name argument: quoted, and as UTF-8 bytes when it is not ASCII."""
    if isinstance(value, str) and not value.isascii():
        return quoted(value)
    if isinstance(value, str) and (value == "" or any(c in value for c in ' (){%*"\\]')):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


def quoted(value):
    return b'"' + value.replace("\\", "\\\\").replace('"', '\\"').encode("utf-8") + b'"'


def raw(values):
    """Search criteria as written (already quoted where needed), UTF-8 bytes when not ASCII."""
    return [v.encode("utf-8") if isinstance(v, str) and not v.isascii() else v for v in values]


def answer(m, result):
    typ, data = result
    untagged = {}
    for name in ("EXISTS", "RECENT", "EXPUNGE", "FETCH", "FLAGS", "PERMANENTFLAGS", "UIDVALIDITY", "UIDNEXT",
                 "HIGHESTMODSEQ", "COPYUID", "APPENDUID", "VANISHED", "ENABLED", "OK", "NO", "BAD"):
        if name in m.untagged_responses:
            untagged[name] = [item(v) for v in m.untagged_responses.pop(name)]
    return {"ok": True, "typ": text(typ), "data": [item(d) for d in (data or [])], "untagged": untagged}


def step(m, s):
    cmd = s[0]
    if cmd == "capability":
        return answer(m, m.capability())
    if cmd == "login":
        user, password = s[1], s[2]
        if user.isascii() and password.isascii():
            return answer(m, m.login(user, password))
        # imaplib encodes str as ASCII: a program with a UTF-8 name or password passes quoted bytes.
        typ, dat = m._simple_command("LOGIN", arg(user) if not user.isascii() else user, quoted(password))
        if typ != "OK":
            raise m.error(dat[-1])
        m.state = "AUTH"
        return answer(m, (typ, dat))
    if cmd == "auth_plain":
        creds = ("\0%s\0%s" % (s[1], s[2])).encode("utf-8")
        return answer(m, m.authenticate("PLAIN", lambda _challenge: creds))
    if cmd == "enable":
        return answer(m, m.enable(s[1]))
    if cmd == "list":
        return answer(m, m.list())
    if cmd == "create":
        return answer(m, m.create(arg(s[1])))
    if cmd == "select":
        return answer(m, m.select(arg(s[1]), len(s) > 2 and bool(s[2])))
    if cmd == "examine":
        return answer(m, m.select(arg(s[1]), True))
    if cmd == "fetch":
        return answer(m, m.fetch(s[1], s[2]))
    if cmd == "uid":
        return answer(m, m.uid(s[1], *s[2:]))
    if cmd == "store":
        return answer(m, m.store(s[1], s[2], s[3]))
    if cmd == "copy":
        return answer(m, m.copy(s[1], arg(s[2])))
    if cmd == "expunge":
        return answer(m, m.expunge())
    if cmd == "status":
        return answer(m, m.status(arg(s[1]), s[2]))
    if cmd == "append":
        date = imaplib.Time2Internaldate(s[3]) if s[3] is not None else None
        return answer(m, m.append(arg(s[1]), s[2], date, base64.b64decode(s[4])))
    if cmd == "search":
        return answer(m, m.search(None, *raw(s[1:])))
    if cmd == "sort":
        return answer(m, m.sort(s[1], s[2], *raw(s[3:])))
    if cmd == "thread":
        return answer(m, m.thread(s[1], s[2], *raw(s[3:])))
    if cmd == "noop":
        return answer(m, m.noop())
    if cmd == "close":
        return answer(m, m.close())
    if cmd == "logout":
        typ, data = m.logout()
        return {"ok": True, "typ": text(typ), "data": [item(d) for d in (data or [])], "untagged": {}}
    raise ValueError("unknown step %r" % (cmd,))


def main():
    req = json.load(sys.stdin)
    timeout = req.get("timeout", 10)
    answers = []
    try:
        if req["mode"] == "ssl":
            m = imaplib.IMAP4_SSL(req["host"], req["port"], ssl_context=tls_context(), timeout=timeout)
        else:
            m = imaplib.IMAP4(req["host"], req["port"], timeout=timeout)
        welcome = text(m.welcome)
        if req["mode"] == "starttls":
            m.starttls(ssl_context=tls_context())
        tls = m.sock.version() if isinstance(m.sock, ssl.SSLSocket) else None
        capabilities = list(m.capabilities)
    except Exception as e:  # noqa: BLE001 - the test wants whatever went wrong, as text
        print(json.dumps({"ok": False, "error": "%s: %s" % (type(e).__name__, text(e)), "steps": answers}))
        return
    for s in req.get("steps", []):
        try:
            answers.append(step(m, s))
        except (imaplib.IMAP4.error, imaplib.IMAP4.abort) as e:
            answers.append({"ok": False, "error": "%s: %s" % (type(e).__name__, text(e))})
            if isinstance(e, imaplib.IMAP4.abort):
                break
        except Exception as e:  # noqa: BLE001
            answers.append({"ok": False, "error": "%s: %s" % (type(e).__name__, text(e))})
            break
    print(json.dumps({"ok": True, "welcome": welcome, "tls": tls, "capabilities": capabilities,
                      "steps": answers}))


if __name__ == "__main__":
    main()
