/**
 * SMTP AUTH interop with clients nobody here wrote, against the real bundle:
 * swaks with --tls --auth PLAIN and LOGIN on a listen_submission port
 * (RFC 6409, STARTTLS per RFC 3207, AUTH per RFC 4954) and with
 * --tls-on-connect on listen_smtps (RFC 8314); Python's smtplib starttls()
 * then login() (which picks a mechanism itself). The client is not in
 * trusted_networks, so each relayed message proves the authenticated path.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword, setUser } from '../../src/policy/users';
import { makeTestCert, type TestCert } from '../helpers/certs';
import { cleanup, queueList, queueShowText, runProgram, startPetrel, tempDir, type CliResult, type PetrelProcess } from '../helpers/spawn';

const USER = 'alice@example.test';
const PASSWORD = 'S3cret pass';

let cert: TestCert;
let server: PetrelProcess;

beforeAll(async () => {
  const dir = tempDir('petrel-auth-interop-');
  cert = makeTestCert(dir);
  const usersFile = join(dir, 'users');
  await setUser(usersFile, { name: USER, hash: await hashPassword(PASSWORD), senders: [] });
  server = await startPetrel({
    dir,
    settings: {
      tls_cert: cert.cert,
      tls_key: cert.key,
      listen_submission: '127.0.0.1:0',
      listen_smtps: '127.0.0.1:0',
      users_file: usersFile,
      trusted_networks: '192.0.2.0/24',
    },
  });
});

afterAll(async () => {
  await server?.stop();
  await cleanup();
});

function swaks(port: number, args: string[]): Promise<CliResult> {
  return runProgram('swaks', ['--server', `127.0.0.1:${port}`, '--helo', 'client.example.org', '--to', 'friend@remote.example', ...args]);
}

const auth = (mech: string, password = PASSWORD) => ['--auth', mech, '--auth-user', USER, '--auth-password', password];

function queuedIdOf(r: CliResult): string {
  const id = /queued as (\S+)/.exec(r.stdout)?.[1];
  if (!id) throw new Error(`no "queued as" in swaks output (status ${r.status}):\n${r.stdout}\n${r.stderr}`);
  return id;
}

async function relayed(id: string): Promise<void> {
  const m = (await queueList(server.configFile)).find((x) => x.id === id);
  expect(m?.sender).toBe(USER);
  expect(m?.recipients.map((x) => x.address)).toEqual(['friend@remote.example']);
  expect(await queueShowText(server.configFile, id)).toMatch(/with ESMTPSA id /);
}

describe('swaks', () => {
  it.each(['PLAIN', 'LOGIN'])('--tls --auth %s on the submission port relays', async (mech) => {
    const r = await swaks(server.portOf('submission'), ['--tls', '--from', USER, ...auth(mech)]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^<~\s+250[- ]AUTH PLAIN LOGIN/m);
    expect(r.stdout).toMatch(/^<~\s+235 2\.7\.0 /m);
    await relayed(queuedIdOf(r));
  });

  it('--tls-on-connect --auth on the smtps port relays', async () => {
    const r = await swaks(server.portOf('smtps'), ['--tls-on-connect', '--from', USER, ...auth('PLAIN')]);
    expect(r.status).toBe(0);
    await relayed(queuedIdOf(r));
  });

  it('a wrong password gets 535 5.7.8 and nothing is queued', async () => {
    const before = (await queueList(server.configFile)).length;
    const r = await swaks(server.portOf('submission'), ['--tls', '--from', USER, ...auth('LOGIN', 'wrong')]);
    expect(r.status).not.toBe(0);
    expect(r.stdout).toMatch(/^<~\*\s+535 5\.7\.8 /m);
    expect(await queueList(server.configFile)).toHaveLength(before);
  });

  it('a forged MAIL FROM after AUTH gets 553 5.7.1', async () => {
    const r = await swaks(server.portOf('submission'), ['--tls', '--from', 'ceo@example.test', ...auth('PLAIN')]);
    expect(r.status).not.toBe(0);
    expect(r.stdout).toMatch(/^<~\*\s+553 5\.7\.1 /m);
  });

  it('without AUTH the submission port refuses MAIL with 530 5.7.0', async () => {
    const r = await swaks(server.portOf('submission'), ['--tls', '--from', USER]);
    expect(r.status).not.toBe(0);
    expect(r.stdout).toMatch(/^<~\*\s+530 5\.7\.0 /m);
  });
});

const PY = `
import json, smtplib, ssl, sys
port, cafile, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
out = {}
s = smtplib.SMTP('127.0.0.1', port, local_hostname='py.example.org', timeout=10)
s.ehlo()
out['auth_before_tls'] = s.has_extn('auth')
s.starttls(context=ssl.create_default_context(cafile=cafile))
s.ehlo()
out['auth_after_tls'] = s.esmtp_features.get('auth', '')
try:
    s.login(user, 'not the password')
except smtplib.SMTPAuthenticationError as e:
    out['wrong'] = [e.smtp_code, e.smtp_error.decode()]
out['login'] = list(s.login(user, password))
out['login'][1] = out['login'][1].decode()
s.mail(user)
s.rcpt('friend@remote.example')
out['data'] = list(s.data(b'Subject: smtplib AUTH\\r\\n\\r\\nhello\\r\\n'))
out['data'][1] = out['data'][1].decode()
s.quit()
print(json.dumps(out))
`;

describe('Python smtplib', () => {
  it('starttls() then login(): AUTH offered only after TLS, wrong password 535, then the message relays', async () => {
    const r = await runProgram('python3', ['-c', PY, String(server.portOf('submission')), cert.cert, USER, PASSWORD]);
    if (r.status !== 0) throw new Error(`python exited ${r.status}: ${r.stderr}`);
    const out = JSON.parse(r.stdout) as { auth_before_tls: boolean; auth_after_tls: string; wrong: [number, string]; login: [number, string]; data: [number, string] };
    expect(out.auth_before_tls).toBe(false);
    expect(out.auth_after_tls.trim().split(' ')).toEqual(['PLAIN', 'LOGIN']);
    expect(out.wrong[0]).toBe(535);
    expect(out.login).toEqual([235, '2.7.0 Authentication successful']);
    expect(out.data[0]).toBe(250);
    await relayed(/queued as (\S+)/.exec(out.data[1])?.[1] ?? '');
  });
});
