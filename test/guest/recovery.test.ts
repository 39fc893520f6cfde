// The channel survives its host: a host process killed in the middle of a large guest→host
// transfer on `bulk` must not leave the agent deaf (the prototype's unsolved failure). Each
// relay mode models a different way the guest may (not) learn that the host is gone.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { startRelay } from '../../agent/devrelay.ts'
import { GuestChannel } from '../../src/guest/index.ts'
import {
  killAndWait,
  processAlive,
  spawnAgent,
  spawnHost,
  startAgent,
  waitFor,
  type AgentUnderTest,
} from './helpers.ts'

const isRoot = process.getuid?.() === 0

/** A new host connects and both ports work again, including a full bulk transfer. */
async function assertRecovered(agent: AgentUnderTest, file: string): Promise<number> {
  const t0 = Date.now()
  const ch = new GuestChannel()
  try {
    const h = await ch.connect({
      agentSock: agent.agentSock,
      bulkSock: agent.bulkSock,
      timeoutMs: 30_000,
    })
    const ms = Date.now() - t0
    assert.equal(h.ready, true)
    const r = await ch.run('echo bulk-ok')
    assert.equal(r.stdout, 'bulk-ok\n')
    const { stream, size } = await ch.readFileStream(file, { maxBytes: 1 << 30 })
    let n = 0
    for await (const c of stream) n += (c as Buffer).length
    assert.equal(n, size)
    assert.ok((await ch.metrics()).ram_total_mb > 0)
    return ms
  } finally {
    ch.close()
  }
}

describe('recovery after the host dies mid-transfer', { skip: !isRoot && 'needs root' }, () => {
  let agent: AgentUnderTest
  let bigFile: string
  let midFile: string

  before(async () => {
    agent = await startAgent()
    bigFile = path.join(agent.dir, 'big.bin')
    // Sparse: large enough that the transfer is surely in flight when the host dies.
    fs.writeFileSync(bigFile, '')
    fs.truncateSync(bigFile, 2 ** 31)
    fs.chmodSync(bigFile, 0o644)
    midFile = path.join(agent.dir, 'mid.bin')
    fs.writeFileSync(midFile, Buffer.alloc(64 << 20, 7))
  })
  after(async () => {
    if (process.env.RIGBOX_TEST_DEBUG) process.stderr.write(agent?.logs() ?? '')
    await agent?.stop()
  })

  test('host killed during exec output (guest sees EOF): exec killed, channel back', async () => {
    agent.relay.setMode('eof')
    const host = await spawnHost([agent.agentSock, agent.bulkSock, 'exec'], /progress \d+/)
    const pid = Number(/started pid=(\d+)/.exec(host.output())?.[1])
    assert.ok(pid > 0)
    await killAndWait(host.child)
    await waitFor(() => !processAlive(pid), 10_000, 'the exec of the dead session to be killed')
    const ms = await assertRecovered(agent, midFile)
    assert.ok(ms < 5000, `reconnect took ${ms} ms`)
  })

  test('host killed during a file read; the guest misses the disconnect', async () => {
    // The next host's SYNC lands inside the old HTTP/2 session: nghttp2 rejects it as a frame
    // (FRAME_SIZE_ERROR) and node stops reading that session without an event, so again the
    // watchdog is what resets it.
    agent.relay.setMode('silent')
    const host = await spawnHost([agent.agentSock, agent.bulkSock, 'read', bigFile], /progress \d+/)
    await killAndWait(host.child)
    const ms = await assertRecovered(agent, midFile)
    assert.ok(ms < 20_000, `reconnect took ${ms} ms`)
  })

  test('host killed during a file read; the port stays stuck (watchdog)', async () => {
    agent.relay.setMode('stuck')
    const opens = agent.relay.guestOpens('bulk')
    const host = await spawnHost([agent.agentSock, agent.bulkSock, 'read', bigFile], /progress \d+/)
    await killAndWait(host.child)
    const ms = await assertRecovered(agent, midFile)
    // Only the watchdog (~7 s without host traffic) can notice this one.
    assert.ok(ms > 4000 && ms < 20_000, `reconnect took ${ms} ms`)
    assert.match(agent.logs(), /watchdog: nothing from host/)
    assert.ok(agent.relay.guestOpens('bulk') > opens, 'the agent reopened the port')
  })

  test('a clean close by one host, then another host', async () => {
    agent.relay.setMode('eof')
    const a = new GuestChannel()
    await a.connect({ agentSock: agent.agentSock, bulkSock: agent.bulkSock, timeoutMs: 30_000 })
    await a.health()
    a.close()
    await assertRecovered(agent, midFile)
  })
})

describe('connect while the VM is still starting', { skip: !isRoot && 'needs root' }, () => {
  test('retries until the chardev socket exists and the agent answers', async () => {
    const dir = fs.mkdtempSync('/tmp/rigbox-agent-late-')
    const ports = path.join(dir, 'ports')
    const ch = new GuestChannel()
    const connecting = ch.connect({
      agentSock: path.join(ports, 'agent.sock'),
      bulkSock: path.join(ports, 'bulk.sock'),
      timeoutMs: 30_000,
    })
    // "QEMU" comes up after a while, the "guest" later still.
    await new Promise((r) => setTimeout(r, 500))
    const relay = await startRelay(ports, ['agent', 'bulk'])
    await new Promise((r) => setTimeout(r, 700))
    const child = spawnAgent(ports, path.join(dir, 'root'), dir)
    try {
      const h = await connecting
      assert.equal(h.ready, true)
      assert.equal((await ch.run('echo late')).stdout, 'late\n')
    } finally {
      ch.close()
      await killAndWait(child)
      await relay.close()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  test('shutdown answers first, then the agent powers off (dev mode: exits)', async () => {
    const agent = await startAgent()
    const ch = new GuestChannel()
    try {
      await ch.connect({ agentSock: agent.agentSock, bulkSock: agent.bulkSock, timeoutMs: 30_000 })
      const exited = new Promise<number | null>((r) => agent.child.once('exit', (code) => r(code)))
      await ch.shutdown()
      assert.equal(await exited, 0)
    } finally {
      ch.close()
      await agent.stop()
    }
  })

  test('gives up at the deadline when nothing answers', async () => {
    const ch = new GuestChannel()
    const t0 = Date.now()
    await assert.rejects(
      ch.connect({
        agentSock: '/nonexistent/a.sock',
        bulkSock: '/nonexistent/b.sock',
        timeoutMs: 800,
      }),
      (e: Error & { code?: string }) => e.code === 'GUEST_UNAVAILABLE',
    )
    assert.ok(Date.now() - t0 < 3000)
  })
})
