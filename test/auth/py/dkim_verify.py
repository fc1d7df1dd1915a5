"""Independent DKIM verifier for Petrel's differential test: dkimpy
(Debian python3-dkim). Reads JSON on stdin: {"records": {DNS name: TXT
text}, "messages": [base64 message, ...]}. Writes a JSON list, one entry per
message: a list with "pass" or "fail: reason" per DKIM-Signature. One
process for the whole batch keeps the test fast."""
import base64
import json
import sys

import dkim

job = json.load(sys.stdin)
records = job['records']


def dnsfunc(name, timeout=5):
    key = name.decode('ascii') if isinstance(name, bytes) else name
    txt = records.get(key.rstrip('.'))
    return txt.encode('ascii') if txt is not None else None


def verify_all(message):
    d = dkim.DKIM(message, minkey=1024)
    count = sum(1 for name, _ in d.headers if name.lower() == b'dkim-signature')
    out = []
    for i in range(count):
        try:
            out.append('pass' if d.verify(idx=i, dnsfunc=dnsfunc) else 'fail')
        except dkim.DKIMException as e:
            out.append('fail: %s' % e)
    return out


print(json.dumps([verify_all(base64.b64decode(m)) for m in job['messages']]))
