import { execFile } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface RouterCertificate {
  certPath: string
  keyPath: string
  /** The local CA to trust (only when the router made the certificate). */
  caPath?: string
}

/** Renew a certificate when it has less than this left. */
const RENEW_BEFORE_MS = 30 * 24 * 3600 * 1000
/** Apple platforms refuse server certificates valid longer than 825 days; stay well under. */
const SERVER_DAYS = 397
const CA_DAYS = 3650

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd, timeout: 60_000 })
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string }
    if (e.code === 'ENOENT') throw new Error('the openssl CLI is missing (apt-get install openssl)')
    throw new Error(`openssl ${args[0]} failed: ${(e.stderr ?? e.message).trim()}`)
  }
}

/** The pair is usable: it parses, matches, has time left and (if given) was signed by `ca`. */
async function usable(certPath: string, keyPath: string, ca?: crypto.X509Certificate) {
  try {
    const cert = new crypto.X509Certificate(await fs.readFile(certPath))
    if (!cert.checkPrivateKey(crypto.createPrivateKey(await fs.readFile(keyPath)))) return false
    if (Date.parse(cert.validTo) - Date.now() < RENEW_BEFORE_MS) return false
    return !ca || cert.verify(ca.publicKey)
  } catch {
    return false
  }
}

/**
 * Files are made in a private scratch directory (0700, so no key is ever readable by others, not
 * even for an instant) and renamed into place, so a crash never leaves half a pair behind.
 */
async function inScratch<T>(dir: string, fn: (tmp: string) => Promise<T>): Promise<T> {
  const tmp = await fs.mkdtemp(path.join(dir, '.tmp-'))
  try {
    return await fn(tmp)
  } finally {
    await fs.rm(tmp, { recursive: true, force: true })
  }
}

const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']

async function ensureCa(dir: string): Promise<{ crt: string; key: string }> {
  const crt = path.join(dir, 'ca.crt')
  const key = path.join(dir, 'ca.key')
  if (await usable(crt, key)) return { crt, key }
  await inScratch(dir, async (tmp) => {
    await openssl(
      ['req', '-x509', ...ecKey, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', String(CA_DAYS)]
        .concat(['-subj', `/O=Rigbox/CN=Rigbox local CA ${crypto.randomBytes(4).toString('hex')}`])
        .concat(['-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0'])
        .concat(['-addext', 'keyUsage=critical,keyCertSign,cRLSign']),
      tmp,
    )
    await fs.chmod(path.join(tmp, 'ca.key'), 0o600)
    await fs.rename(path.join(tmp, 'ca.key'), key)
    await fs.rename(path.join(tmp, 'ca.crt'), crt)
  })
  return { crt, key }
}

/**
 * A local CA and a wildcard certificate for `*.<domain>` and `<domain>` signed by it, made with
 * the openssl CLI once into `dir` and reused on later starts (renewed near expiry, or when the
 * CA was replaced). The CA key is mode 0600.
 */
export async function ensureWildcardCertificate(
  dir: string,
  domain: string,
): Promise<RouterCertificate> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 })
  const ca = await ensureCa(dir)
  const base = path.join(dir, `wildcard.${domain}`)
  const certPath = `${base}.crt`
  const keyPath = `${base}.key`
  const caCert = new crypto.X509Certificate(await fs.readFile(ca.crt))
  if (!(await usable(certPath, keyPath, caCert))) {
    await inScratch(dir, async (tmp) => {
      await fs.writeFile(
        path.join(tmp, 'ext.cnf'),
        [
          `subjectAltName=DNS:*.${domain},DNS:${domain}`,
          'basicConstraints=critical,CA:FALSE',
          'keyUsage=critical,digitalSignature',
          'extendedKeyUsage=serverAuth',
        ].join('\n') + '\n',
      )
      await openssl(
        ['req', '-new', ...ecKey, '-keyout', 'srv.key', '-out', 'srv.csr'].concat([
          '-subj',
          `/CN=*.${domain}`,
        ]),
        tmp,
      )
      await openssl(
        ['x509', '-req', '-in', 'srv.csr', '-CA', ca.crt, '-CAkey', ca.key]
          .concat(['-set_serial', `0x${crypto.randomBytes(16).toString('hex')}`])
          .concat([
            '-days',
            String(SERVER_DAYS),
            '-sha256',
            '-extfile',
            'ext.cnf',
            '-out',
            'srv.crt',
          ]),
        tmp,
      )
      await fs.chmod(path.join(tmp, 'srv.key'), 0o600)
      await fs.rename(path.join(tmp, 'srv.key'), keyPath)
      await fs.rename(path.join(tmp, 'srv.crt'), certPath)
    })
  }
  return { certPath, keyPath, caPath: ca.crt }
}
