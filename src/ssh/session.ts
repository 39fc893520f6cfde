import type {
  AcceptConnection,
  Client,
  ClientChannel,
  PseudoTtyOptions,
  RejectConnection,
  ServerChannel,
  Session,
  TerminalModes,
} from 'ssh2'
import { capturedPtyRequest, type PtyRequest } from './pty-modes.ts'
import { flushed, onceClosed, onceEnded, quietErrors } from './relay.ts'
import type { SshLog } from './types.ts'

/** How a session channel gets its guest connection, or why it cannot have one. */
export interface SessionContext {
  guest(): Promise<Client>
  /** Text shown (on stderr, exit status 1) when the guest cannot be reached. */
  unavailable(err: unknown): string
  log: SshLog
  track(done: Promise<void>): void
}

type Start =
  { kind: 'shell' } | { kind: 'exec'; command: string } | { kind: 'subsystem'; name: string }

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/
const MAX_ENV = 64
const MAX_ENV_VALUE = 8192

/**
 * One client `session` channel. Setup requests (pty-req, env) are remembered and replayed when
 * the real request (shell, exec, subsystem) opens the matching channel on the guest connection;
 * the guest's sshd decides what is allowed (its AcceptEnv, MaxSessions, Subsystem lines).
 */
export function handleSession(session: Session, ctx: SessionContext): void {
  let pty: PtyRequest | undefined
  const env: Record<string, string> = {}
  let guestCh: ClientChannel | undefined
  let started = false

  session.on('pty', (accept, _reject, info) => {
    const raw = capturedPtyRequest()
    pty = raw ?? {
      term: info?.term ?? 'xterm',
      cols: info?.cols ?? 80,
      rows: info?.rows ?? 24,
      width: info?.width ?? 0,
      height: info?.height ?? 0,
      modes: Buffer.from([0]),
    }
    accept?.()
  })
  session.on('window-change', (accept, _reject, info) => {
    if (pty)
      Object.assign(pty, {
        cols: info.cols,
        rows: info.rows,
        width: info.width,
        height: info.height,
      })
    guestCh?.setWindow(info.rows, info.cols, info.height, info.width)
    accept?.()
  })
  session.on('env', (accept, reject, info) => {
    const ok =
      ENV_NAME.test(info.key) &&
      info.val.length <= MAX_ENV_VALUE &&
      (info.key in env || Object.keys(env).length < MAX_ENV)
    if (ok) env[info.key] = info.val
    ;(ok ? accept : reject)?.()
  })
  session.on('signal', (accept, _reject, info) => {
    try {
      guestCh?.signal(info.name)
    } catch {
      // ssh2 refuses names outside RFC 4254's list; so would sshd
    }
    accept?.()
  })

  // The channel is accepted at once, before the guest is asked: ssh2 refuses a late accept once
  // the client has sent EOF, and `ssh host cmd </dev/null` sends EOF right after the request.
  // Input arriving meanwhile waits in the channel (its SSH window bounds it).
  const start = (
    what: Start,
    accept: AcceptConnection<ServerChannel>,
    reject?: RejectConnection,
  ) => {
    if (started) return reject?.()
    started = true
    const ch = accept()
    if (ch) ctx.track(open(what, ch))
  }
  session.on('shell', (accept, reject) => start({ kind: 'shell' }, accept, reject))
  session.on('exec', (accept, reject, info) =>
    start({ kind: 'exec', command: info.command }, accept, reject),
  )
  session.on('subsystem', (accept, reject, info) =>
    start({ kind: 'subsystem', name: info.name }, accept, reject),
  )

  const open = async (what: Start, ch: ServerChannel) => {
    quietErrors(ctx.log, ch, ch.stderr)
    const userGone = onceClosed(ch)
    let closed = false
    void userGone.then(() => (closed = true))
    const fail = async (message: string) => {
      const nl = pty ? '\r\n' : '\n'
      ch.stderr.write(message.replace(/\n/g, nl) + nl)
      await flushed(ch.stderr, userGone)
      ch.exit(1)
      ch.end()
    }

    let gch: GuestChannel
    try {
      const guest = await ctx.guest()
      try {
        gch = await openGuestChannel(guest, what, pty, env)
      } catch (err) {
        // The guest refused (unknown subsystem, MaxSessions…): say so, as the request was taken.
        ctx.log.debug({ err: String(err), kind: what.kind }, 'ssh: guest refused session request')
        return await fail(`${requestName(what)} refused by the workspace: ${errorText(err)}`)
      }
    } catch (err) {
      return await fail(ctx.unavailable(err))
    }
    if (closed) return gch.ch.close()
    guestCh = gch.ch
    // The client may have resized while the guest channel was opening.
    if (pty) gch.ch.setWindow(pty.rows, pty.cols, pty.height, pty.width)
    await relaySession(gch, ch, userGone, ctx.log)
  }
}

const requestName = (what: Start) =>
  what.kind === 'shell'
    ? 'shell'
    : what.kind === 'exec'
      ? 'command'
      : `subsystem ${JSON.stringify(what.name)}`
const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err))

type ExitInfo = [number] | [string, boolean, string]

interface GuestChannel {
  ch: ClientChannel
  /** The exit status or signal, once the guest has sent it. */
  exit(): ExitInfo | undefined
}

/**
 * Opens the guest side of a session. The exit listener goes on inside ssh2's callback: the exit
 * status of a quick command can arrive in the same TCP read as the channel's confirmation, and
 * ssh2 emits it before any promise continuation could run.
 */
function openGuestChannel(
  guest: Client,
  what: Start,
  pty: PtyRequest | undefined,
  env: Record<string, string>,
): Promise<GuestChannel> {
  const ptyOpts: PseudoTtyOptions | undefined = pty && {
    term: pty.term,
    cols: pty.cols,
    rows: pty.rows,
    width: pty.width,
    height: pty.height,
    // ssh2 sends a Buffer of encoded modes as is.
    modes: pty.modes as unknown as TerminalModes,
  }
  return new Promise((resolve, reject) => {
    const cb = (err: Error | undefined, ch: ClientChannel) => {
      if (err) return reject(err)
      let exit: ExitInfo | undefined
      ch.on('exit', (code: number | null, signal?: string, dump?: boolean, desc?: string) => {
        exit = typeof code === 'number' ? [code] : [signal ?? 'SIGKILL', !!dump, desc ?? '']
      })
      resolve({ ch, exit: () => exit })
    }
    if (what.kind === 'shell') guest.shell(ptyOpts ?? false, { env }, cb)
    else if (what.kind === 'exec') guest.exec(what.command, { env, pty: ptyOpts }, cb)
    else guest.subsys(what.name, cb)
  })
}

/**
 * Relays a started session: stdin one way, stdout and stderr (kept apart) the other, then the
 * exit status or signal. ssh2's server channel sends EOF and CLOSE together and refuses an exit
 * status after EOF, so the guest's EOF is not forwarded on its own: once the guest channel has
 * closed, pending output is flushed, then exit status, EOF and CLOSE go out in that order.
 */
async function relaySession(
  guest: GuestChannel,
  ch: ServerChannel,
  userGone: Promise<void>,
  log: SshLog,
): Promise<void> {
  const gch = guest.ch
  quietErrors(log, gch, gch.stderr)
  ch.pipe(gch) // client EOF → guest EOF
  gch.pipe(ch, { end: false })
  gch.stderr.pipe(ch.stderr, { end: false })
  void userGone.then(() => gch.close())

  // ssh2 emits a client channel's 'close' only after its stdout has been read to the end, so
  // this listener, added after the pipes, cannot miss it.
  const guestDone = Promise.all([onceEnded(gch), onceEnded(gch.stderr), onceClosed(gch)])
  await Promise.race([guestDone, userGone])
  await Promise.all([flushed(ch.stderr, userGone), flushed(ch, userGone)])
  const exit = guest.exit()
  if (exit) {
    try {
      if (exit.length === 1) ch.exit(exit[0])
      else ch.exit(exit[0], exit[1], exit[2])
    } catch {
      // a signal name ssh2 cannot encode: the client sees no exit status, as with a lost one
    }
  }
  if (!ch.writableEnded) ch.end()
  await userGone
}
