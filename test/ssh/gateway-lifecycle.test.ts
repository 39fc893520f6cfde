// What happens when one side goes away mid-session: the client (ssh killed) or the guest (VM
// stopped, simulated by cutting a TCP proxy between the gateway and the guest's sshd).
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import net from 'node:net'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { promisify } from 'node:util'
import { startSshGateway } from '../../src/ssh/gateway.ts'
import { ALPHA, startGatewayEnv, type GatewayEnv } from './gateway-env.ts'
import { GUEST_USER, hasSshd, isRoot } from './sshd-fixture.ts'

const execFileP = promisify(execFile)
const skip = !hasSshd ? 'needs openssh-server and openssh-client' : !isRoot ? 'needs root' : false

/** PIDs of the guest user's processes whose command line matches `pattern`. */
const guestProcesses = async (pattern: string) =>
  execFileP('pgrep', ['-u', GUEST_USER, '-f', pattern]).then(
    (r) => r.stdout.trim().split('\n').filter(Boolean),
    () => [] as string[], // pgrep exits 1 when nothing matches
  )

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/**
 * Starts `ssh -tt … <command>` in the background (stdin left open); `seen` resolves once `marker`
 * appears on its stdout. With a PTY, sshd hangs the session up when its channel goes: a command
 * without one (as with OpenSSH itself) only notices when it next reads or writes.
 */
function sshUntil(env: GatewayEnv, port: number, command: string, marker: string) {
  const child = spawn(
    'ssh',
    [...env.clientOpts(), '-tt', '-p', String(port), `${ALPHA}@127.0.0.1`, command],
    { env: { ...process.env, SSH_AUTH_SOCK: '' }, stdio: ['pipe', 'pipe', 'pipe'] },
  )
  const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)))
  const seen = new Promise<void>((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      if (out.includes(marker)) resolve()
    })
    void exited.then(() => reject(new Error(`ssh exited before printing ${marker}`)))
  })
  return { child, exited, seen }
}

describe('SSH gateway: one side goes away', { skip }, () => {
  let env: GatewayEnv
  before(async () => {
    env = await startGatewayEnv()
  })
  after(async () => {
    await env?.stop()
  })

  test('a killed client ends its session in the guest (no stray processes)', async () => {
    const s = sshUntil(env, env.gw.port, 'echo started; exec sleep 3117', 'started')
    await s.seen
    assert.equal((await guestProcesses('sleep 3117')).length, 1)
    s.child.kill('SIGKILL')
    await s.exited
    await until(async () => (await guestProcesses('sleep 3117')).length === 0, 10_000, 'sleep')
  })

  test('losing the guest connection ends the client session promptly', async () => {
    // A TCP proxy in front of the guest sshd, standing in for the VM's port forwarding.
    const links = new Set<net.Socket>()
    const proxy = net.createServer((inbound) => {
      const outbound = net.connect(env.sshd.port, '127.0.0.1')
      for (const s of [inbound, outbound]) {
        links.add(s)
        s.on('error', () => undefined)
        s.once('close', () => links.delete(s))
      }
      inbound.pipe(outbound).pipe(inbound)
    })
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r))
    const proxyPort = (proxy.address() as net.AddressInfo).port
    const gw = await startSshGateway(
      {
        ...env.deps,
        guestSshd: async () => ({
          connect: () => net.connect(proxyPort, '127.0.0.1'),
          hostKey: env.sshd.hostKey,
        }),
      },
      { port: 0, hostKeyDir: path.join(env.dir, 'hostkeys-proxy') },
    )
    try {
      const s = sshUntil(env, gw.port, 'echo started; exec sleep 3118', 'started')
      await s.seen
      const cutAt = Date.now()
      for (const sock of links) sock.destroy()
      const code = await s.exited
      assert.equal(code, 255, 'no exit status: the session was lost, not finished')
      assert.ok(Date.now() - cutAt < 5000, 'the client learnt it within seconds')
    } finally {
      await gw.close()
      await new Promise((r) => proxy.close(r))
      // sshd notices the cut connection on its own; its session's sleep goes with it.
      await until(async () => (await guestProcesses('sleep 3118')).length === 0, 15_000, 'sleep')
    }
  })
})
