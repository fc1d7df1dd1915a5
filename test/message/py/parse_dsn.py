"""Parses DSN files with Python's email package and prints what it saw as JSON.

Used by test/message/dsn-python.test.ts: an independent MIME parser (RFC 2045,
RFC 2046 multipart, RFC 3464 message/delivery-status as a list of header
blocks, RFC 6522 multipart/report) reads Petrel's bounce back.

Usage: python3 parse_dsn.py FILE... ; prints one JSON list, one object per file.
"""
import email
import email.policy
import json
import sys


def defects(msg):
    """Every defect the parser recorded, anywhere in the tree (sub-messages and status blocks included)."""
    found = [type(d).__name__ + ': ' + str(d) for d in msg.defects]
    payload = msg.get_payload()
    if isinstance(payload, list):
        for sub in payload:
            found.extend(defects(sub))
    return found


def header_list(msg):
    return [[k, str(v)] for k, v in msg.items()]


def describe_part(part):
    ctype = part.get_content_type()
    out = {'content_type': ctype, 'headers': header_list(part)}
    if ctype == 'message/delivery-status':
        # Python represents the report as a list of Message objects, one per block.
        out['blocks'] = [header_list(b) for b in part.get_payload()]
    elif ctype == 'message/global-headers':
        out['headers_part'] = header_list(part.get_payload(0))
    elif part.get_content_maintype() == 'text':
        out['text'] = part.get_content()
        if ctype == 'text/rfc822-headers':
            parsed = email.message_from_string(out['text'], policy=email.policy.default)
            out['headers_part'] = header_list(parsed)
    return out


def describe(path):
    with open(path, 'rb') as f:
        msg = email.message_from_bytes(f.read(), policy=email.policy.default)
    return {
        'is_multipart': msg.is_multipart(),
        'content_type': msg.get_content_type(),
        'report_type': msg.get_param('report-type'),
        'boundary': msg.get_boundary(),
        'headers': header_list(msg),
        'date_ok': msg['Date'] is not None and msg['Date'].datetime is not None,
        'to_addresses': [a.addr_spec for a in msg['To'].addresses] if msg['To'] else [],
        'parts': [describe_part(p) for p in msg.iter_parts()],
        'defects': defects(msg),
        'epilogue': msg.epilogue,
    }


def main():
    try:
        print(json.dumps([describe(p) for p in sys.argv[1:]]))
    except Exception as e:  # reported as JSON so the test shows it
        print(json.dumps({'error': type(e).__name__ + ': ' + str(e)}))
        sys.exit(1)


if __name__ == '__main__':
    main()
