import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import https from 'node:https'
import type net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import { after, before, describe, it } from 'node:test'
import { ensureWildcardCertificate } from '../../src/router/tls.ts'
import { loginToken, memoryDeps, route, startRouter, startUpstream } from './helpers.ts'

// The router shells out to the openssl CLI (Debian package `openssl`) to make its local CA.
const openssl = (() => {
  try {
    return execFileSync('openssl', ['version']).toString().trim()
  } catch {
    return null
  }
})()

// `*.localhost` is a wildcard over a single label, which TLS clients refuse (as they refuse
// `*.com`), so https needs a two-label domain; `*.localhost` names still resolve to loopback.
const DOMAIN = 'rigbox.localhost'

function httpsGet(port: number, host: string, urlPath: string, ca: Buffer, headers = {}) {
  return new Promise<{ status: number; headers: Record<string, unknown>; body: string }>(
    (resolve, reject) => {
      const servername = host.split(':')[0]
      const options = { host: '127.0.0.1', port, path: urlPath, servername, ca }
      const req = https.request({ ...options, headers: { host, ...headers } }, (res) => {
        let body = ''
        res.on('data', (c: Buffer) => (body += c.toString()))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
      })
      req.on('error', reject)
      req.end()
    },
  )
}

const legacy = (certPath: string) =>
  new crypto.X509Certificate(fs.readFileSync(certPath)).toLegacyObject()

describe('router TLS with a generated local CA', { skip: !openssl && 'no openssl CLI' }, () => {
  let dir: string
  let up: Awaited<ReturnType<typeof startUpstream>>

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rigbox-router-tls-'))
    up = await startUpstream()
  })
  after(async () => {
    await up.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it('validates against the CA and proxies, with X-Forwarded-Proto https and a Secure cookie', async () => {
    const deps = memoryDeps(
      up.port,
      [route('pub', { visibility: 'public' }), route('priv')],
      DOMAIN,
    )
    const { router } = await startRouter(deps, { tlsPort: 0, tls: { generate: { dir } } })
    try {
      assert.ok(router.https && router.caPath)
      const tlsPort = (router.https.address() as net.AddressInfo).port
      const ca = fs.readFileSync(router.caPath)
      assert.equal(fs.statSync(path.join(dir, 'ca.key')).mode & 0o777, 0o600)
      assert.equal(fs.statSync(path.join(dir, `wildcard.${DOMAIN}.key`)).mode & 0o777, 0o600)

      const r = await httpsGet(tlsPort, `pub.${DOMAIN}:${tlsPort}`, '/', ca)
      assert.equal(r.status, 200)
      const seen = (JSON.parse(r.body) as { headers: Record<string, string> }).headers
      assert.equal(seen['x-forwarded-proto'], 'https')
      assert.equal(seen['x-forwarded-port'], String(tlsPort))

      const token = loginToken(deps, 'priv')
      const login = await httpsGet(tlsPort, `priv.${DOMAIN}`, `/__rigbox/login?token=${token}`, ca)
      assert.equal(login.status, 302)
      const cookie = (login.headers['set-cookie'] as string[])[0]
      assert.match(cookie, /; HttpOnly; SameSite=Lax; Secure$/)
      const again = await httpsGet(tlsPort, `priv.${DOMAIN}`, '/', ca, {
        cookie: cookie.split(';')[0],
      })
      assert.equal(again.status, 200)

      // Without the CA the certificate is not trusted.
      await assert.rejects(httpsGet(tlsPort, `pub.${DOMAIN}`, '/', Buffer.alloc(0)))
    } finally {
      await router.close()
    }
  })

  it('reuses the CA and certificate on restart and covers *.<domain> and <domain>', async () => {
    const caBefore = fs.readFileSync(path.join(dir, 'ca.crt'), 'utf8')
    const certBefore = fs.readFileSync(path.join(dir, `wildcard.${DOMAIN}.crt`), 'utf8')
    const made = await ensureWildcardCertificate(dir, DOMAIN)
    assert.equal(fs.readFileSync(made.caPath!, 'utf8'), caBefore)
    assert.equal(fs.readFileSync(made.certPath, 'utf8'), certBefore)
    assert.equal(tls.checkServerIdentity(`app.${DOMAIN}`, legacy(made.certPath)), undefined)
    assert.equal(tls.checkServerIdentity(DOMAIN, legacy(made.certPath)), undefined)
    assert.ok(tls.checkServerIdentity(`a.b.${DOMAIN}`, legacy(made.certPath)))

    // Why the router warns about a bare `localhost` domain: clients refuse `*.localhost`.
    const bare = await ensureWildcardCertificate(dir, 'localhost')
    assert.ok(tls.checkServerIdentity('app.localhost', legacy(bare.certPath)))

    // A replaced certificate pair (key no longer matching) is made again.
    fs.copyFileSync(bare.keyPath, made.keyPath)
    const remade = await ensureWildcardCertificate(dir, DOMAIN)
    assert.notEqual(fs.readFileSync(remade.certPath, 'utf8'), certBefore)
    assert.deepEqual(
      fs.readdirSync(dir).filter((f) => f.startsWith('.tmp-')),
      [],
      'no scratch directories left',
    )
  })

  it('serves a configured certificate pair as is', async () => {
    const deps = memoryDeps(up.port, [route('pub', { visibility: 'public' })], DOMAIN)
    const pair = {
      certPath: path.join(dir, `wildcard.${DOMAIN}.crt`),
      keyPath: path.join(dir, `wildcard.${DOMAIN}.key`),
    }
    const { router } = await startRouter(deps, { tlsPort: 0, tls: pair })
    try {
      assert.equal(router.caPath, undefined)
      const tlsPort = (router.https!.address() as net.AddressInfo).port
      const ca = fs.readFileSync(path.join(dir, 'ca.crt'))
      assert.equal((await httpsGet(tlsPort, `pub.${DOMAIN}`, '/', ca)).status, 200)
    } finally {
      await router.close()
    }
  })
})
