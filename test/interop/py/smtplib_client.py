"""Python's smtplib (a real SMTP client nobody here wrote) driving Petrel.

Usage: smtplib_client.py CASE HOST PORT [CAFILE]
Prints one JSON object on stdout describing what the client saw; the vitest
file test/interop/smtplib.test.ts checks it and the queue. Exit status 0
unless smtplib raised, in which case the JSON carries "error".
Cases: RFC 5321 EHLO/HELO fallback, several recipients with one refused,
send_message (smtplib writes MAIL/RCPT/DATA without real RFC 2920
pipelining, but the server must accept what it sends), RFC 3207 STARTTLS
with certificate verification, RFC 6531 SMTPUTF8.
"""
import json
import smtplib
import ssl
import sys
from email.message import EmailMessage


def capture_data(s, seen):
    """sendmail() drops the reply to the final dot; keep it (it holds the queue id)."""
    original = s.data

    def data(msg):
        reply = original(msg)
        seen.append([reply[0], reply[1].decode("utf-8", "replace")])
        return reply

    s.data = data


def case_ehlo(s, _cafile):
    s.ehlo_or_helo_if_needed()
    return {"esmtp": s.does_esmtp, "features": sorted(s.esmtp_features.keys()), "helo_resp": (s.ehlo_resp or b"").decode()}


def case_sendmail_many(s, _cafile):
    seen = []
    capture_data(s, seen)
    msg = "From: py@example.org\r\nTo: many@example.test\r\nSubject: several\r\n\r\nOne message, several recipients.\r\n"
    refused = s.sendmail("py@example.org", ["one@example.test", "two@example.test", "bad@@example.test", "three@example.test"], msg)
    return {"refused": {k: [v[0], v[1].decode()] for k, v in refused.items()}, "data_reply": seen[-1] if seen else None}


def case_send_message(s, _cafile):
    seen = []
    capture_data(s, seen)
    m = EmailMessage()
    m["From"] = "Py Sender <pysender@example.org>"
    m["To"] = "first@example.test, second@example.test"
    m["Cc"] = "third@example.test"
    m["Subject"] = "send_message"
    m.set_content("Line one\n.leading dot line\nLast line\n")
    s.ehlo()
    refused = s.send_message(m)
    return {"refused": {k: [v[0], v[1].decode()] for k, v in refused.items()}, "data_reply": seen[-1] if seen else None, "pipelining": s.has_extn("pipelining")}


def case_starttls(s, cafile):
    s.ehlo()
    offered = s.has_extn("starttls")
    ctx = ssl.create_default_context(cafile=cafile)
    s.starttls(context=ctx)
    s.ehlo()
    seen = []
    capture_data(s, seen)
    s.sendmail("tls@example.org", ["secure@example.test"], "Subject: over TLS\r\n\r\nencrypted\r\n")
    return {"offered_before": offered, "offered_after": s.has_extn("starttls"), "version": s.sock.version(), "data_reply": seen[-1] if seen else None}


def case_smtputf8(s, _cafile):
    s.ehlo()
    seen = []
    capture_data(s, seen)
    body = "From: jörg@example.org\r\nTo: üser@example.test\r\nSubject: grüße\r\n\r\nSchöne Grüße ✉\r\n".encode("utf-8")
    s.sendmail("jörg@example.org", ["üser@example.test"], body, mail_options=["SMTPUTF8"])
    return {"smtputf8": s.has_extn("smtputf8"), "data_reply": seen[-1] if seen else None}


CASES = {"ehlo": case_ehlo, "sendmail_many": case_sendmail_many, "send_message": case_send_message, "starttls": case_starttls, "smtputf8": case_smtputf8}


def main():
    case, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cafile = sys.argv[4] if len(sys.argv) > 4 else None
    try:
        with smtplib.SMTP(host, port, local_hostname="py.example.org", timeout=15) as s:
            result = CASES[case](s, cafile)
            result["quit"] = list(s.quit())[0]
    except Exception as e:  # report, don't trace: the test prints this JSON
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
