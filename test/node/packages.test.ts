import assert from 'node:assert/strict'
import fs from 'node:fs'
import { after, before, describe, it } from 'node:test'
import {
  GUEST_CA_BUNDLE,
  GUEST_NPM_GLOBALCONFIG,
  GUEST_OPERATOR_CA_DIR,
  GUEST_OPERATOR_CA_FILE,
  GUEST_PROXY_URL,
  guestPrepScript,
} from '../../src/node/guest-prep.ts'
import { HOST_CA_BUNDLE, packagesEnv } from '../helpers/packages.ts'
import { startVmPlatform, waitStatus, type VmPlatform } from '../helpers/vm-env.ts'
import { holdVmLock } from '../helpers/vm-lock.ts'

/**
 * Package installs inside a real VM through the egress proxy, with the operator settings this
 * machine needs (test/helpers/packages.ts): the registries' reserved address allowed for every
 * workspace and the host's CA bundle trusted in the guest. One VM, shared by the cases.
 */
describe('package installs from inside a VM', { timeout: 8 * 60_000 }, () => {
  let releaseVms = () => {}
  let vmp: VmPlatform
  let owner: string
  let ws: { id: string }
  const timings: Record<string, number> = {}

  const sh = async (
    command: string,
    user: 'developer' | 'root' = 'developer',
    timeoutMs = 60_000,
  ) => {
    const res = await vmp.api(owner, 'POST', `/api/v1/workspaces/${ws.id}/exec`, {
      command,
      user,
      timeout_ms: timeoutMs,
    })
    assert.equal(res.status, 200, res.body)
    return res.json as { exit_code: number; stdout: string; stderr: string }
  }
  const must = async (
    command: string,
    user: 'developer' | 'root' = 'developer',
    timeoutMs?: number,
  ) => {
    const r = await sh(command, user, timeoutMs)
    assert.equal(r.exit_code, 0, `${command}\n${r.stdout}\n${r.stderr}`)
    return r.stdout.trim()
  }
  const timed = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
    const t0 = Date.now()
    try {
      return await f()
    } finally {
      timings[name] = Date.now() - t0
    }
  }

  before(async () => {
    releaseVms = await holdVmLock()
    vmp = await startVmPlatform(await packagesEnv())
    owner = await vmp.makeUser('pkg-owner@example.com')
    ws = (await vmp.api(owner, 'POST', '/api/v1/workspaces', { name: 'pkgs', ram_mb: 1024 })).json
      .vm
    await timed('boot', async () => {
      await vmp.api(owner, 'POST', `/api/v1/workspaces/${ws.id}/start`)
      await waitStatus(vmp.platform.app, owner, ws.id, ['running'])
    })
  })

  after(async () => {
    if (ws) await vmp?.api(owner, 'DELETE', `/api/v1/workspaces/${ws.id}`)
    await vmp?.close()
    releaseVms()
    console.log(`# timings (ms): ${JSON.stringify(timings)}`)
  })

  it('puts the egress proxy in apt, npm and pip config and the operator CAs in the trust store', async () => {
    const apt = await must('cat /etc/apt/apt.conf.d/90rigbox-proxy')
    assert.ok(apt.includes(`Acquire::http::Proxy "${GUEST_PROXY_URL}";`), apt)
    assert.ok(apt.includes(`Acquire::https::Proxy "${GUEST_PROXY_URL}";`), apt)

    // The file guest-prep writes is the one npm reads, as the developer sees it.
    const npm = (
      await must(
        'npm config get globalconfig; npm config get proxy; npm config get https-proxy; npm config get cafile',
      )
    ).split('\n')
    assert.deepEqual(npm, [
      GUEST_NPM_GLOBALCONFIG,
      GUEST_PROXY_URL,
      GUEST_PROXY_URL,
      GUEST_CA_BUNDLE,
    ])

    // pip may be missing from the image; its config is then read the way pip reads it (INI).
    const pip = await must(
      "if command -v pip3 >/dev/null; then pip3 config list; else python3 -c \"import configparser as c; p=c.ConfigParser(); p.read('/etc/pip.conf'); [print(f\\\"global.{k}='{v}'\\\") for k, v in p['global'].items()]\"; fi",
    )
    assert.ok(pip.includes(`global.proxy='${GUEST_PROXY_URL}'`), pip)
    assert.ok(pip.includes(`global.cert='${GUEST_CA_BUNDLE}'`), pip)

    const hostCerts = fs.readFileSync(HOST_CA_BUNDLE, 'utf8').match(/-----BEGIN CERTIFICATE-----/g)
    const count = await must(`ls ${GUEST_OPERATOR_CA_DIR} | grep -c '^operator-[0-9]*\\.crt$'`)
    // Only what the guest's distro does not ship already: the host's extra CA, not its Mozilla set.
    assert.ok(Number(count) >= 1 && Number(count) < (hostCerts?.length ?? 0), count)
    const env = await must('echo "$NODE_EXTRA_CA_CERTS|$REQUESTS_CA_BUNDLE|$SSL_CERT_FILE"')
    assert.equal(env, `${GUEST_OPERATOR_CA_FILE}|${GUEST_CA_BUNDLE}|${GUEST_CA_BUNDLE}`)
    assert.equal(await must(`grep -c BEGIN ${GUEST_OPERATOR_CA_FILE}`), count)
    // In the system store too: its bundle and the hash links OpenSSL's CApath lookups use.
    await must(
      `for f in ${GUEST_OPERATOR_CA_DIR}/*.crt; do grep -q "$(sed -n 2p $f)" ${GUEST_CA_BUNDLE} && test -e /etc/ssl/certs/$(openssl x509 -hash -noout -in $f).0 || exit 1; done`,
    )
  })

  it('installs an npm package as developer', async () => {
    const out = await timed('npm install is-number', () =>
      must(
        'd=$(mktemp -d) && cd "$d" && npm init -y >/dev/null && npm install --no-audit --no-fund is-number >/dev/null && node -e "console.log(require(\'is-number\')(5))"',
        'developer',
        180_000,
      ),
    )
    assert.equal(out, 'true')
  })

  it("lets Node's own TLS trust the operator CA through the proxy", async () => {
    // Node's fetch ignores HTTPS_PROXY: a CONNECT through the proxy, then TLS with Node's default
    // trust (its bundled roots plus NODE_EXTRA_CA_CERTS) against the registry's certificate.
    const script = `
const http = require('node:http'), tls = require('node:tls')
const proxy = new URL(process.env.HTTPS_PROXY)
http.request({ host: proxy.hostname, port: proxy.port, method: 'CONNECT', path: 'registry.npmjs.org:443' })
  .on('connect', (res, socket) => {
    if (res.statusCode !== 200) { console.log('connect ' + res.statusCode); process.exit(1) }
    const s = tls.connect({ socket, servername: 'registry.npmjs.org' }, () => { console.log('trusted'); s.end(); process.exit(0) })
    s.on('error', (e) => { console.log(e.code || e.message); process.exit(1) })
  }).end()`
    const code = `"$(echo ${Buffer.from(script).toString('base64')} | base64 -d)"`
    const r = await sh(`node -e ${code}`)
    assert.equal(r.stdout.trim(), 'trusted', r.stderr)
    // The same without the operator CA: the registry's certificate is not trusted (so the check
    // above could fail).
    const bare = await sh(`NODE_EXTRA_CA_CERTS= node --use-bundled-ca -e ${code}`)
    assert.notEqual(bare.stdout.trim(), 'trusted')
  })

  it('installs a Debian package with sudo apt-get', async () => {
    assert.notEqual((await sh('command -v hello')).exit_code, 0, 'hello is already in the image')
    await timed('apt-get update', () =>
      must('sudo apt-get update -q -o Acquire::Languages=none', 'developer', 150_000),
    )
    await timed('apt-get install hello', () =>
      must('sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q hello', 'developer', 120_000),
    )
    assert.match(await must('hello'), /Hello, world!/)
  })

  it('rewrites the same files on a second run, and removes the CA settings without the setting', async () => {
    const caCerts = fs.readFileSync(HOST_CA_BUNDLE, 'utf8')
    const prep = async (certs: string | null) => {
      const r = await vmp.node.exec(
        ws.id,
        {
          command: guestPrepScript(),
          user: 'root',
          stdin: Buffer.from(certs ?? ''),
          timeoutMs: 120_000,
        },
        1 << 20,
      )
      assert.equal(r.exit_code, 0, r.stderr)
      assert.equal(r.stderr, '')
    }
    await timed('guest prep again, unchanged', () => prep(caCerts))
    assert.equal(await must('grep -c "^# BEGIN rigbox ca" /etc/environment'), '1')
    assert.equal(await must(`grep -c "^# BEGIN rigbox egress" ${GUEST_NPM_GLOBALCONFIG}`), '1')

    await timed('guest prep without CAs', () => prep(null))
    assert.equal((await sh(`test -e ${GUEST_OPERATOR_CA_DIR}`)).exit_code, 1)
    assert.equal(
      await must("grep -c -e 'rigbox ca' -e NODE_EXTRA_CA_CERTS /etc/environment || true"),
      '0',
    )
    assert.equal(await must('npm config get cafile'), 'null')
    assert.equal(await must('echo "[$NODE_EXTRA_CA_CERTS]"'), '[]')
    assert.equal((await sh('grep -q "^cert" /etc/pip.conf')).exit_code, 1)
    assert.match(await must('cat /etc/apt/apt.conf.d/90rigbox-proxy'), /Acquire::https::Proxy/)
    // The operator CA is gone from the system store: TLS to the registry fails through the proxy.
    const curl = await sh('curl -sS -o /dev/null https://registry.npmjs.org/is-number')
    assert.notEqual(curl.exit_code, 0)

    await timed('guest prep with CAs again', () => prep(caCerts))
    assert.equal(
      await must('curl -sS -o /dev/null -w "%{http_code}" https://registry.npmjs.org/is-number'),
      '200',
    )
  })
})
