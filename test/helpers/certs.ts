/**
 * A throw-away self-signed certificate for the TLS tests (RFC 3207 STARTTLS,
 * RFC 8314 implicit TLS), made at test time with the real openssl CLI so no
 * private key is ever committed. The subjectAltName covers "localhost" and
 * 127.0.0.1 because clients that verify (Python's ssl with cafile=) match
 * the name they connected to against it (RFC 6125).
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export interface TestCert {
  /** PEM certificate; also the CA file for clients that verify (it signs itself). */
  readonly cert: string;
  /** PEM private key, unencrypted. */
  readonly key: string;
  readonly dir: string;
}

/** Writes cert.pem and key.pem into `dir`. */
export function makeTestCert(dir: string): TestCert {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  // EC P-256: generated in milliseconds, accepted by Node, OpenSSL-based Perl (swaks) and Python.
  execFileSync(
    'openssl',
    [
      'req', '-x509', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
      '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return { cert, key, dir };
}
