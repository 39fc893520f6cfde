import type { AuthContext, Connection } from 'ssh2'
import { parsePublicKey, type ParsedPublicKey } from './keys.ts'
import type { GatewayDeps, SshLog, SshTarget } from './types.ts'
import { verifyAuthSignature } from './verify.ts'

export interface Authenticated {
  username: string
  target: SshTarget
  keyFingerprint: string
}

interface Candidate {
  target: SshTarget
  keys: ParsedPublicKey[]
}

/**
 * Public-key authentication against the workspace owner's registered keys. Passwords and
 * keyboard-interactive are never offered. An unknown user and someone else's workspace get the
 * same answer ("Permission denied (publickey)"), so usernames cannot be probed; the message for
 * a known but stopped workspace comes after authentication, to its owner only.
 */
export function attachAuth(
  conn: Connection,
  deps: GatewayDeps,
  opts: { maxAuthTries: number; log: SshLog; ip: string },
  onAuthenticated: (a: Authenticated) => void,
): void {
  let failures = 0
  // ssh2 disconnects a client that changes username mid-authentication, so one lookup suffices.
  let candidate: Promise<Candidate | null> | undefined

  const lookup = async (username: string): Promise<Candidate | null> => {
    const target = await deps.resolve(username)
    if (!target) return null
    const keys: ParsedPublicKey[] = []
    for (const line of await deps.ownerKeys(target.ownerId)) {
      try {
        keys.push(parsePublicKey(line))
      } catch (err) {
        opts.log.warn({ ownerId: target.ownerId, err: String(err) }, 'ssh: skipping unusable key')
      }
    }
    return { target, keys }
  }

  const fail = (ctx: AuthContext, reason: string) => {
    failures++
    opts.log.debug({ ip: opts.ip, user: ctx.username, reason }, 'ssh: auth attempt refused')
    if (failures >= opts.maxAuthTries) {
      opts.log.info({ ip: opts.ip, user: ctx.username }, 'ssh: too many authentication failures')
      ctx.reject([])
      conn.end()
      return
    }
    ctx.reject(['publickey'])
  }

  const decide = async (ctx: AuthContext): Promise<void> => {
    if (ctx.method === 'none') {
      // Every client's opening probe: answer with the methods we take, without counting it.
      ctx.reject(['publickey'])
      return
    }
    if (ctx.method !== 'publickey') return fail(ctx, `method ${ctx.method}`)
    candidate ??= lookup(ctx.username)
    const found = await candidate
    const key = found?.keys.find((k) => k.blob.equals(ctx.key.data))
    if (!found || !key) return fail(ctx, found ? 'key not registered' : 'unknown user')
    // Without a signature the client only asks whether this key would do (RFC 4252 §7).
    if (!ctx.signature || !ctx.blob) return ctx.accept()
    const valid = verifyAuthSignature(key, {
      algo: ctx.key.algo,
      hashAlgo: ctx.hashAlgo,
      signature: ctx.signature,
      data: ctx.blob,
    })
    if (!valid) return fail(ctx, 'bad signature')
    onAuthenticated({
      username: ctx.username,
      target: found.target,
      keyFingerprint: key.fingerprint,
    })
    ctx.accept()
  }

  conn.on('authentication', (ctx) => {
    decide(ctx).catch((err: unknown) => {
      opts.log.warn({ ip: opts.ip, err: String(err) }, 'ssh: authentication lookup failed')
      // A store error must not count against the user, nor let them in.
      candidate = undefined
      ctx.reject(['publickey'])
    })
  })
}
