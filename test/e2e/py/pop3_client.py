#!/usr/bin/env python3
# An independent POP3 client for Tern's end-to-end tests: Python's poplib, driven by one JSON request on
# stdin, answering with one JSON result on stdout. It does what a real Python program does (POP3 with
# stls(), POP3_SSL, user()/pass_(), stat(), list(), uidl(), retr(), top(), dele(), rset(), quit()), and
# records every step's answer, so the TypeScript tests can assert on exact replies and bytes.
# Deliberately NOT here: assertions. The TypeScript tests decide what the replies mean.
#
# Request: {"host", "port", "mode": "plain" | "stls" | "ssl", "timeout": seconds,
#           "steps": [["capa"], ["user", name], ["pass", password], ["stat"], ["list"], ["list", n],
#                     ["uidl"], ["uidl", n], ["retr", n], ["top", n, lines], ["dele", n], ["rset"],
#                     ["noop"], ["utf8"], ["quit"], ["drop"]]}
#   "drop" closes the socket without QUIT (a dropped connection).
# Result: {"ok": true, "welcome", "tls": version | null, "steps": [answer, ...]}
#   each answer is {"ok": true, "resp": first line, "lines": [...], "b64": bytes of the lines joined by
#   CRLF (retr/top)} or {"ok": false, "error": the -ERR line or the exception text};
#   on a connection failure: {"ok": false, "error", "steps"}.

import base64
import json
import poplib
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


def multi(result):
    resp, lines, _octets = result
    return {"ok": True, "resp": text(resp), "lines": [text(l) for l in lines],
            "b64": base64.b64encode(b"".join(l + b"\r\n" for l in lines)).decode("ascii")}


def step(p, s):
    cmd = s[0]
    if cmd == "capa":
        caps = p.capa()
        return {"ok": True, "capa": {k: v for k, v in caps.items()}}
    if cmd == "user":
        return {"ok": True, "resp": text(p.user(s[1]))}
    if cmd == "pass":
        return {"ok": True, "resp": text(p.pass_(s[1]))}
    if cmd == "stat":
        count, size = p.stat()
        return {"ok": True, "count": count, "size": size}
    if cmd == "list":
        return {"ok": True, "resp": text(p.list(s[1]))} if len(s) > 1 else multi(p.list())
    if cmd == "uidl":
        return {"ok": True, "resp": text(p.uidl(s[1]))} if len(s) > 1 else multi(p.uidl())
    if cmd == "retr":
        return multi(p.retr(s[1]))
    if cmd == "top":
        return multi(p.top(s[1], s[2]))
    if cmd == "dele":
        return {"ok": True, "resp": text(p.dele(s[1]))}
    if cmd == "rset":
        return {"ok": True, "resp": text(p.rset())}
    if cmd == "noop":
        return {"ok": True, "resp": text(p.noop())}
    if cmd == "utf8":
        return {"ok": True, "resp": text(p.utf8())}
    if cmd == "quit":
        return {"ok": True, "resp": text(p.quit())}
    if cmd == "drop":
        p.sock.close()
        return {"ok": True}
    raise ValueError("unknown step %r" % (cmd,))


def main():
    req = json.load(sys.stdin)
    timeout = req.get("timeout", 10)
    answers = []
    try:
        if req["mode"] == "ssl":
            p = poplib.POP3_SSL(req["host"], req["port"], timeout=timeout, context=tls_context())
        else:
            p = poplib.POP3(req["host"], req["port"], timeout=timeout)
        welcome = text(p.getwelcome())
        if req["mode"] == "stls":
            p.stls(context=tls_context())
        tls = p.sock.version() if isinstance(p.sock, ssl.SSLSocket) else None
    except Exception as e:  # noqa: BLE001 - the test wants whatever went wrong, as text
        print(json.dumps({"ok": False, "error": "%s: %s" % (type(e).__name__, text(e)), "steps": answers}))
        return
    for s in req.get("steps", []):
        try:
            answers.append(step(p, s))
        except poplib.error_proto as e:
            answers.append({"ok": False, "error": text(e.args[0] if e.args else e)})
        except Exception as e:  # noqa: BLE001
            answers.append({"ok": False, "error": "%s: %s" % (type(e).__name__, text(e))})
            break
    print(json.dumps({"ok": True, "welcome": welcome, "tls": tls, "steps": answers}))


if __name__ == "__main__":
    main()
