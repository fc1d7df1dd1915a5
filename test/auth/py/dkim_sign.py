"""Independent DKIM signer for Petrel's differential test: dkimpy (Debian
python3-dkim). Reads JSON on stdin: a list of jobs {"message": base64,
"algorithm": "rsa-sha256" | "ed25519-sha256", "key": PEM text or base64
Ed25519 seed, "domain", "selector", "hc", "bc"}. Writes a JSON list of the
DKIM-Signature fields, base64."""
import base64
import json
import sys

import dkim


def sign(job):
    return dkim.sign(
        base64.b64decode(job['message']),
        job['selector'].encode(),
        job['domain'].encode(),
        job['key'].encode(),
        canonicalize=(job['hc'].encode(), job['bc'].encode()),
        signature_algorithm=job['algorithm'].encode(),
        include_headers=[b'from', b'to', b'subject', b'date'],
    )


print(json.dumps([base64.b64encode(sign(j)).decode() for j in json.load(sys.stdin)]))
