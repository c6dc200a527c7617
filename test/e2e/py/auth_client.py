#!/usr/bin/env python3
# An independent SMTP AUTH client for Tern's end-to-end tests: Python's smtplib for the transport and
# the PLAIN/LOGIN exchanges (login(), auth()), and a SCRAM-SHA-256 / SCRAM-SHA-256-PLUS client written
# here from RFC 5802 §3 and §7 (client side), RFC 7677 and RFC 5929 (tls-unique), with only hashlib, hmac
# and base64, so it shares no code with the server it checks. Driven by one JSON request on stdin; one
# JSON result on stdout. SASL EXTERNAL (RFC 4422 App. A) needs only a client certificate in the TLS
# context and "AUTH EXTERNAL =".
# Deliberately NOT here: assertions (the TypeScript tests decide what replies mean), SASLprep of
# non-ASCII passwords (the tests use ASCII ones), SCRAM-SHA-1, tls-exporter (Python's ssl cannot export
# keying material, so -PLUS is exercised over TLS 1.2 with tls-unique).
#
# Request: {"host", "port", "mode": "plain" | "starttls" | "ssl", "ehlo", "timeout",
#           "tls_max": "TLSv1_2" | null, "cert": PEM path, "key": PEM path,
#           "source": "127.0.0.2" (local address to connect from), "steps": [...]}
# Steps, each answered by one entry of "steps" in the result:
#   ["login", user, password]           smtplib's login(): it picks the mechanism  -> [code, text]
#   ["auth", mech, user, password]      smtplib's auth() with PLAIN or LOGIN       -> [code, text]
#   ["scram", user, password, options]  SCRAM exchange over docmd                  -> [code, text, info]
#        options: {"plus": bool, "gs2": "n" | "y" (non-PLUS flag), "tamper_cb": bool}
#        info: {"replies": [[code, text], ..], "server_signature_ok": bool | null}
#   ["cmd", line]                       docmd                                        -> [code, text]
#   ["ehlo"]                            EHLO again; "features" are updated           -> [code, text]
#   ["sendmail", from, [to..], b64]     sendmail(): [250, "", refused] or the refusing reply
#   ["mail", addr], ["rcpt", addr], ["data_b64", b64]                                -> [code, text]
# Result: {"ok": bool, "error": class name when a step broke the connection, "steps": [...],
#          "features": {...}, "tls": version | null}
# Or, with {"scram_vector": {"password", "client_first_bare", "server_first"}} and no connection, the
# SCRAM computation alone: {"client_final", "server_final"} (checked against RFC 7677 §3).

import base64
import hashlib
import hmac
import json
import os
import smtplib
import ssl
import sys


def tls_context(req):
    # Tern's test certificate is self-signed: encryption without verification, as the tests intend.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if req.get("tls_max") == "TLSv1_2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if req.get("cert"):
        ctx.load_cert_chain(req["cert"], req.get("key"))
    return ctx


def text_of(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def features(s):
    # smtplib keeps the leading space of "AUTH mech..." (and merges "AUTH=" lines); trimmed for the tests.
    return {k: v.strip() for k, v in s.esmtp_features.items()}


def connect(req):
    timeout = req.get("timeout", 10)
    name = req.get("ehlo", "client.example")
    source = (req["source"], 0) if req.get("source") else None
    if req["mode"] == "ssl":
        s = smtplib.SMTP_SSL(req["host"], req["port"], local_hostname=name, timeout=timeout,
                             context=tls_context(req), source_address=source)
    else:
        s = smtplib.SMTP(req["host"], req["port"], local_hostname=name, timeout=timeout,
                         source_address=source)
    s.ehlo()
    if req["mode"] == "starttls":
        code, msg = s.starttls(context=tls_context(req))
        if code != 220:
            raise smtplib.SMTPResponseException(code, msg)
        s.ehlo()
    return s


# --- SCRAM-SHA-256 client (RFC 5802 §3, §5, §7) ------------------------------------------------------

def b64(data):
    return base64.b64encode(data).decode("ascii")


def sasl_name(user):
    # RFC 5802 §5.1: "=" and "," in a username are escaped.
    return user.replace("=", "=3D").replace(",", "=2C")


def xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def scram_final(password, client_first_bare, server_first, gs2_header, cb_data):
    """RFC 5802 §3: the client-final message and the server signature (base64) to expect."""
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    salt = base64.b64decode(attrs["s"])
    iterations = int(attrs["i"])
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    channel = b64(gs2_header.encode() + cb_data)
    final_without_proof = "c=%s,r=%s" % (channel, attrs["r"])
    auth_message = ",".join([client_first_bare, server_first, final_without_proof]).encode()
    client_signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
    proof = b64(xor(client_key, client_signature))
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    server_signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
    return "%s,p=%s" % (final_without_proof, proof), b64(server_signature)


def scram(s, user, password, options):
    plus = bool(options.get("plus"))
    mech = "SCRAM-SHA-256-PLUS" if plus else "SCRAM-SHA-256"
    if plus:
        cb_data = s.sock.get_channel_binding("tls-unique")
        if cb_data is None:
            raise RuntimeError("no tls-unique binding on this connection")
        if options.get("tamper_cb"):
            cb_data = bytes([cb_data[0] ^ 0xFF]) + cb_data[1:]
        gs2_header = "p=tls-unique,,"
    else:
        cb_data = b""
        gs2_header = options.get("gs2", "n") + ",,"
    client_nonce = b64(os.urandom(18))
    client_first_bare = "n=%s,r=%s" % (sasl_name(user), client_nonce)
    replies = []
    info = {"replies": replies, "server_signature_ok": None}

    code, resp = s.docmd("AUTH", "%s %s" % (mech, b64((gs2_header + client_first_bare).encode())))
    replies.append([code, text_of(resp)])
    if code != 334:
        return [code, text_of(resp), info]
    server_first = base64.b64decode(resp).decode()
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    if not attrs["r"].startswith(client_nonce):
        s.docmd("*")
        raise RuntimeError("server nonce does not extend the client nonce")
    client_final, server_signature = scram_final(password, client_first_bare, server_first,
                                                 gs2_header, cb_data)

    code, resp = s.docmd(b64(client_final.encode()))
    replies.append([code, text_of(resp)])
    if code == 334:
        # RFC 4954 §4: the server-final message comes as a challenge; an empty line acknowledges it.
        server_final = base64.b64decode(resp).decode()
        info["server_signature_ok"] = server_final == "v=" + server_signature
        if not info["server_signature_ok"]:
            s.docmd("*")
            raise RuntimeError("server signature mismatch: " + server_final)
        code, resp = s.docmd("")
        replies.append([code, text_of(resp)])
    return [code, text_of(resp), info]


# --- the steps ---------------------------------------------------------------------------------------

def run_step(s, step, out):
    kind = step[0]
    try:
        if kind == "login":
            code, resp = s.login(step[1], step[2])
            return [code, text_of(resp)]
        if kind == "auth":
            s.user, s.password = step[2], step[3]
            method = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login}[step[1]]
            code, resp = s.auth(step[1], method)
            return [code, text_of(resp)]
        if kind == "scram":
            return scram(s, step[1], step[2], step[3] if len(step) > 3 else {})
        if kind == "cmd":
            code, resp = s.docmd(step[1])
            return [code, text_of(resp)]
        if kind == "ehlo":
            code, resp = s.ehlo()
            out["features"] = features(s)
            return [code, text_of(resp)]
        if kind == "sendmail":
            refused = s.sendmail(step[1], step[2], base64.b64decode(step[3]))
            return [250, "", {a: [c, text_of(m)] for a, (c, m) in refused.items()}]
        if kind == "mail":
            code, resp = s.mail(step[1])
            return [code, text_of(resp)]
        if kind == "rcpt":
            code, resp = s.rcpt(step[1])
            return [code, text_of(resp)]
        if kind == "data_b64":
            code, resp = s.data(base64.b64decode(step[1]))
            return [code, text_of(resp)]
        raise ValueError("unknown step " + kind)
    except smtplib.SMTPRecipientsRefused as e:
        first = next(iter(e.recipients.values()))
        return [first[0], text_of(first[1])]
    except smtplib.SMTPResponseException as e:
        # SMTPAuthenticationError, SMTPSenderRefused, SMTPDataError: the reply that ended the step.
        return [e.smtp_code, text_of(e.smtp_error)]


def run(req, out):
    s = connect(req)
    out["features"] = features(s)
    sock = s.sock
    out["tls"] = sock.version() if isinstance(sock, ssl.SSLSocket) else None
    try:
        for step in req["steps"]:
            out["steps"].append(run_step(s, step, out))
        out["ok"] = True
    finally:
        try:
            s.quit()
        except Exception:  # noqa: BLE001 -- the server may already have closed the connection
            s.close()


def main():
    req = json.loads(sys.stdin.read())
    if "scram_vector" in req:
        # No connection: the SCRAM computation alone, for a check against the RFC 7677 §3 example.
        v = req["scram_vector"]
        final, signature = scram_final(v["password"], v["client_first_bare"], v["server_first"], "n,,", b"")
        sys.stdout.write(json.dumps({"client_final": final, "server_final": "v=" + signature}))
        return
    out = {"ok": False, "steps": [], "features": {}, "tls": None}
    try:
        run(req, out)
    except Exception as e:  # noqa: BLE001 -- any failure must come back as JSON, not a traceback
        out.update(error=type(e).__name__, text=str(e))
    sys.stdout.write(json.dumps(out))


if __name__ == "__main__":
    main()
