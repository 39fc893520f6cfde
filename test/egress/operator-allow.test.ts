import assert from 'node:assert/strict'
import http from 'node:http'
import { describe, it } from 'node:test'
import { ConfigError, loadConfig } from '../../src/config/config.ts'
import { parseOperatorEntry } from '../../src/egress/operator.ts'
import { decide, decideByName, type EgressPolicy } from '../../src/egress/policy.ts'
import { guestPrepScript } from '../../src/node/guest-prep.ts'
import { setPolicy, startProxy, startTarget } from './helpers.ts'

const NODE = new Set(['127.0.0.1', '::1', '10.9.9.9', 'fe80::1'])
const open: EgressPolicy = { allow: [], deny: [] }
const MIRROR = '203.0.113.80' // reserved (TEST-NET-3), as this machine's registries resolve
const operatorAllow = [MIRROR, '10.0.0.0/8', 'fd00:1::/32']

const check = (policy: EgressPolicy, host: string, resolved: string[] = [], opts = {}) =>
  decide(policy, { host, port: 443, resolved }, NODE, { operatorAllow, ...opts })

describe('operator egress allow list (RIGBOX_EGRESS_ALLOW)', () => {
  it('opens a reserved or private address for a workspace with the default policy', () => {
    const d = check(open, 'registry.npmjs.org', [MIRROR])
    assert.equal(d.allowed, true, d.reason)
    assert.equal(d.address, MIRROR)
    assert.match(d.reason, /operator's egress allow list \("203\.0\.113\.80"\)/)
    assert.equal(check(open, '10.20.30.40').allowed, true)
    assert.equal(check(open, 'fd00:1:2::5').allowed, true)
  })

  it('refuses the same address without the operator entry (the default still holds)', () => {
    const d = decide(open, { host: 'registry.npmjs.org', port: 443, resolved: [MIRROR] }, NODE)
    assert.equal(d.allowed, false)
    assert.match(d.reason, /reserved address/)
    assert.equal(check(open, '192.168.1.1').allowed, false)
  })

  it('does not turn an empty workspace allow list into a restriction', () => {
    const d = check(open, 'example.com', ['93.184.215.14'])
    assert.equal(d.allowed, true, d.reason)
    assert.equal(d.reason, 'public address')
  })

  it("lets a listed address through a workspace's own restrictive allow list", () => {
    const policy = { allow: ['api.example.com'], deny: [] }
    // Refusing by name before resolving would lose the operator's address: it must resolve.
    assert.equal(decideByName(policy, 'deb.debian.org', 80, { operatorAllow }), null)
    assert.notEqual(decideByName(policy, 'deb.debian.org', 80), null)
    assert.equal(check(policy, 'deb.debian.org', [MIRROR]).allowed, true)
    const other = check(policy, 'example.org', ['93.184.215.15'])
    assert.equal(other.allowed, false)
    assert.match(other.reason, /not in the workspace's egress allow list/)
  })

  it("keeps a workspace's deny list above the operator's allow list", () => {
    const byIp = check({ allow: [], deny: [MIRROR] }, 'registry.npmjs.org', [MIRROR])
    assert.equal(byIp.allowed, false)
    assert.match(byIp.reason, /deny list/)
    const byName = check({ allow: [], deny: ['registry.npmjs.org'] }, 'registry.npmjs.org', [
      MIRROR,
    ])
    assert.equal(byName.allowed, false)
  })

  it('opens host-local addresses only when listed exactly, never through a CIDR', () => {
    // 10.9.9.9 is the node's own address inside the operator's 10.0.0.0/8.
    const node = check(open, '10.9.9.9')
    assert.equal(node.allowed, false)
    assert.match(node.reason, /this node's own addresses/)
    for (const ip of ['127.0.0.1', '169.254.169.254']) assert.equal(check(open, ip).allowed, false)
    const listed = { operatorAllow: ['169.254.169.254', '10.9.9.9'] }
    assert.equal(check(open, '169.254.169.254', [], listed).allowed, true)
    assert.equal(check(open, '10.9.9.9', [], listed).allowed, true)
    assert.equal(check(open, '169.254.169.253', [], listed).allowed, false)
  })

  it('does not open a name whose other address is host-local', () => {
    const d = check(open, 'sneaky.example', [MIRROR, '127.0.0.1'])
    assert.equal(d.allowed, false)
    assert.match(d.reason, /loopback/)
  })
})

describe('RIGBOX_EGRESS_ALLOW and RIGBOX_GUEST_CA_CERTS in the config', () => {
  it('reads addresses and CIDRs in canonical form, without duplicates', () => {
    const c = loadConfig({ RIGBOX_EGRESS_ALLOW: ` ${MIRROR}, 10.0.0.0/8,2001:DB8::/32,,${MIRROR}` })
    assert.deepEqual(c.egress.allow, [MIRROR, '10.0.0.0/8', '2001:db8::/32'])
    assert.deepEqual(loadConfig({}).egress.allow, [])
  })

  it('refuses host names, bad CIDRs and odd address forms, naming each entry', () => {
    for (const [bad, why] of [
      ['registry.npmjs.org', /host names are not accepted/],
      ['10.1.2.3/8', /write 10\.0\.0\.0\/8/],
      ['10.0.0.0/33', /prefix must be 0–32/],
      ['127.1', /four decimal numbers/],
      ['*.example.com', /not an IP address or CIDR/],
    ] as const) {
      assert.throws(
        () => loadConfig({ RIGBOX_EGRESS_ALLOW: `${MIRROR},${bad}` }),
        (err: Error) =>
          err instanceof ConfigError &&
          err.message.includes('RIGBOX_EGRESS_ALLOW') &&
          err.message.includes(JSON.stringify(bad)) &&
          why.test(err.message),
        bad,
      )
    }
    assert.ok('error' in parseOperatorEntry(''))
  })

  it('reads the CA bundle file and refuses one without certificates', () => {
    const c = loadConfig({ RIGBOX_GUEST_CA_CERTS: '/etc/ssl/certs/ca-certificates.crt' })
    assert.match(c.egress.guestCaCerts ?? '', /^-----BEGIN CERTIFICATE-----/)
    assert.throws(() => loadConfig({ RIGBOX_GUEST_CA_CERTS: '/etc/hostname' }), ConfigError)
  })
})

describe('guest preparation script', () => {
  it('binds the proxy and the file locations in front of the script', () => {
    const script = guestPrepScript()
    assert.match(script, /^PROXY='http:\/\/172\.16\.0\.1:3128'$/m)
    assert.match(script, /^NODE_CA='\/usr\/local\/share\/rigbox\/operator-ca\.pem'$/m)
  })
})

/** A GET in absolute form through the proxy: the status, and the body on success. */
function viaProxy(proxyPort: number, url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: proxyPort, path: url, agent: false }, (res) => {
        let body = ''
        res.on('data', (c: Buffer) => (body += c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      })
      .on('error', reject)
  })
}

describe('the egress proxy with an operator allow list', () => {
  it('lets every workspace reach the listed address, and only with the setting', async () => {
    const target = await startTarget()
    // The target listens on loopback, which only an exact operator entry can open.
    const names = { 'mirror.test': ['127.0.0.1'] }
    const withAllow = await startProxy(names, { operatorAllow: ['127.0.0.1'] })
    const without = await startProxy(names)
    try {
      setPolicy()
      const url = `http://mirror.test:${target.port}/pool/x.deb`
      const ok = await viaProxy(withAllow.port, url)
      assert.equal(ok.status, 200, ok.body)
      assert.equal(JSON.parse(ok.body).url, '/pool/x.deb')
      const refused = await viaProxy(without.port, url)
      assert.equal(refused.status, 403)
      assert.match(refused.body, /loopback/)
      setPolicy([], ['mirror.test'])
      assert.equal((await viaProxy(withAllow.port, url)).status, 403)
    } finally {
      setPolicy()
      await withAllow.close()
      await without.close()
      await target.close()
    }
  })
})
