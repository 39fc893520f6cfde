import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { after, describe, it } from 'node:test'
import { QmpClient, QmpClosedError, QmpError } from '../../src/vm/qmp.ts'

type Handler = (msg: Record<string, unknown>, send: (obj: unknown) => void) => void

const GREETING = {
  QMP: { version: { qemu: { major: 7, minor: 2, micro: 22 }, package: 'test' }, capabilities: [] },
}

/** A fake QMP server: greeting, capabilities, then `handler` for each command. */
async function fakeQmp(dir: string, handler: Handler) {
  const sockPath = path.join(dir, `qmp-${Math.random().toString(36).slice(2)}.sock`)
  const conns: net.Socket[] = []
  const server = net.createServer((sock) => {
    conns.push(sock)
    const send = (obj: unknown) => sock.write(JSON.stringify(obj) + '\r\n')
    send(GREETING)
    let buf = ''
    sock.on('data', (chunk) => {
      buf += chunk.toString()
      let nl
      while ((nl = buf.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>
        buf = buf.slice(nl + 1)
        if (msg.execute === 'qmp_capabilities') send({ return: {}, id: msg.id })
        else handler(msg, send)
      }
    })
    sock.on('error', () => {})
  })
  await new Promise<void>((r) => server.listen(sockPath, r))
  return {
    path: sockPath,
    conns,
    close: () => {
      for (const c of conns) c.destroy()
      return new Promise<void>((r) => server.close(() => r()))
    },
  }
}

describe('QmpClient', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rigbox-qmp-'))
  after(() => rm(dir, { recursive: true, force: true }))

  it('negotiates capabilities and matches replies by id, out of order', async () => {
    const held: Array<[Record<string, unknown>, (o: unknown) => void]> = []
    const srv = await fakeQmp(dir, (msg, send) => {
      held.push([msg, send])
      // Answer the second command before the first.
      if (held.length === 2) {
        for (const [m, s] of held.reverse()) s({ return: { echo: m.execute }, id: m.id })
      }
    })
    const qmp = await QmpClient.connect(srv.path)
    assert.equal(qmp.greeting.QMP.version.qemu.major, 7)
    const [a, b] = await Promise.all([
      qmp.execute<{ echo: string }>('query-status'),
      qmp.execute<{ echo: string }>('query-name'),
    ])
    assert.equal(a.echo, 'query-status')
    assert.equal(b.echo, 'query-name')
    qmp.close()
    await srv.close()
  })

  it('passes arguments and maps errors to QmpError', async () => {
    const srv = await fakeQmp(dir, (msg, send) => {
      if (msg.execute === 'human-monitor-command') {
        const args = msg.arguments as { 'command-line': string }
        send({ return: `ran ${args['command-line']}\r\n`, id: msg.id })
      } else {
        send({ error: { class: 'CommandNotFound', desc: 'nope' }, id: msg.id })
      }
    })
    const qmp = await QmpClient.connect(srv.path)
    assert.equal(await qmp.humanMonitorCommand('info usernet'), 'ran info usernet\r\n')
    await assert.rejects(qmp.execute('bogus'), (err: unknown) => {
      assert.ok(err instanceof QmpError)
      assert.equal(err.errorClass, 'CommandNotFound')
      return true
    })
    qmp.close()
    await srv.close()
  })

  it('emits events by name and as "event"', async () => {
    const srv = await fakeQmp(dir, (msg, send) => {
      send({ event: 'POWERDOWN', timestamp: { seconds: 1, microseconds: 2 } })
      send({ return: {}, id: msg.id })
      send({ event: 'SHUTDOWN', data: { guest: true, reason: 'guest-shutdown' } })
    })
    const qmp = await QmpClient.connect(srv.path)
    const all: string[] = []
    qmp.on('event', (e: { event: string }) => all.push(e.event))
    const shutdown = new Promise((r) => qmp.once('SHUTDOWN', r))
    await qmp.execute('system_powerdown')
    assert.deepEqual(await shutdown, { guest: true, reason: 'guest-shutdown' })
    assert.deepEqual(all, ['POWERDOWN', 'SHUTDOWN'])
    qmp.close()
    await srv.close()
  })

  it('times out a command and ignores its late reply', async () => {
    let pendingSend: (() => void) | null = null
    const srv = await fakeQmp(dir, (msg, send) => {
      if (msg.execute === 'slow') pendingSend = () => send({ return: 'late', id: msg.id })
      else send({ return: 'fast', id: msg.id })
    })
    const qmp = await QmpClient.connect(srv.path)
    await assert.rejects(qmp.execute('slow', undefined, { timeoutMs: 50 }), /timed out/)
    pendingSend!()
    assert.equal(await qmp.execute('fast'), 'fast')
    qmp.close()
    await srv.close()
  })

  it('rejects pending commands and emits close when QEMU goes away', async () => {
    const srv = await fakeQmp(dir, () => {})
    const qmp = await QmpClient.connect(srv.path)
    const closed = new Promise((r) => qmp.once('close', r))
    const pending = qmp.execute('query-status')
    for (const c of srv.conns) c.destroy()
    await assert.rejects(pending, QmpClosedError)
    await closed
    assert.equal(qmp.closed, true)
    await assert.rejects(qmp.execute('query-status'), QmpClosedError)
    await srv.close()
  })

  it('closes on a line longer than the cap', async () => {
    const srv = await fakeQmp(dir, (_msg, send) => send({ return: 'x'.repeat(5000) }))
    const qmp = await QmpClient.connect(srv.path, { maxLineBytes: 1024 })
    const closed = new Promise<Error | null>((r) => qmp.once('close', r))
    await assert.rejects(qmp.execute('big'), /exceeds 1024 bytes/)
    assert.match(String(await closed), /exceeds/)
    await srv.close()
  })

  it('fails the handshake when the socket is missing, and retries until it appears', async () => {
    const missing = path.join(dir, 'absent.sock')
    await assert.rejects(QmpClient.connect(missing), /ENOENT/)
    await assert.rejects(QmpClient.connectWithRetry(missing, Date.now() + 200), /cannot connect/)
  })

  it('refuses getfd explicitly (no SCM_RIGHTS from net.Socket)', async () => {
    const srv = await fakeQmp(dir, () => {})
    const qmp = await QmpClient.connect(srv.path)
    await assert.rejects(qmp.getfd('snap', 3), /SCM_RIGHTS/)
    qmp.close()
    await srv.close()
  })
})
