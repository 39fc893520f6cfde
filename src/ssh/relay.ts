import type { Readable, Writable } from 'node:stream'
import type { Channel, ServerChannel } from 'ssh2'
import type { SshLog } from './types.ts'

export const onceClosed = (ch: Channel): Promise<void> =>
  new Promise((resolve) => ch.once('close', () => resolve()))

export const onceEnded = (r: Readable): Promise<void> =>
  new Promise((resolve) => {
    if (r.readableEnded) resolve()
    else r.once('end', () => resolve())
  })

/**
 * Resolves once everything written to `w` so far has gone out to the SSH layer (ssh2 holds a
 * chunk back until the peer's window allows it), or when `gone` settles first (the channel
 * closed, so nothing more can be sent). A zero-length write is queued behind the pending data
 * and ssh2 completes it at once when its turn comes.
 */
export function flushed(w: Writable, gone: Promise<void>): Promise<void> {
  if (w.writableLength === 0 || w.writableEnded || w.destroyed) return Promise.resolve()
  return Promise.race([
    new Promise<void>((resolve) => w.write(Buffer.alloc(0), () => resolve())),
    gone,
  ])
}

/** Channel 'error' events carry nothing actionable for a relay, but unheard they would crash us. */
export function quietErrors(log: SshLog, ...streams: (Readable | Writable)[]): void {
  for (const s of streams)
    s.on('error', (err) => log.debug({ err: String(err) }, 'ssh: channel error'))
}

/**
 * Relays a TCP-like channel pair (direct-tcpip and forwarded-tcpip) both ways, keeping
 * half-close: EOF from either side becomes EOF on the other, and the pair closes when either
 * side closes. Flow control is the streams' backpressure, which ssh2 maps onto SSH windows.
 */
export function relayTcp(guest: Channel, user: ServerChannel, log: SshLog): Promise<void> {
  quietErrors(log, guest, user)
  const userGone = onceClosed(user)
  const guestGone = onceClosed(guest)
  user.pipe(guest) // user EOF → guest EOF (ssh2 client channels are half-open capable)
  guest.pipe(user, { end: false })
  // A server channel's end() sends EOF *and* CLOSE, so guest EOF is forwarded with eof() alone.
  guest.once('end', () => void flushed(user, userGone).then(() => user.eof()))
  void guestGone.then(async () => {
    await flushed(user, userGone)
    if (!user.writableEnded) user.end()
  })
  void userGone.then(() => guest.close())
  return Promise.all([userGone, guestGone]).then(() => undefined)
}
