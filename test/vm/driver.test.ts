import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { QemuDriver, type QemuDriverOptions } from '../../src/vm/qemu.ts'
import { describeExit, type VmLaunchSpec } from '../../src/vm/types.ts'
import { relayTarget } from '../../src/node/inbound.ts'
import {
  connectAsNobody,
  killCgroupTreeSync,
  readBanner,
  testImage,
  waitConsole,
} from './vm-helpers.ts'
import { holdVmLock } from '../helpers/vm-lock.ts'

/**
 * Integration: real QEMU boots under the jail (TCG here, ~3 s for the busybox test image, ~20 s
 * for the real Debian image). Four short-lived VMs; every one is destroyed in `after`, and an
 * exit hook SIGKILLs whatever is left in the test's cgroups if the run dies midway.
 */

const found = await testImage()
const skip = typeof found === 'string' ? found : false
const CGROUP_ROOT = '/sys/fs/cgroup'
const parent = `rigbox-test-${process.pid}`
const MiB = 1024 * 1024

async function procStatus(pid: number): Promise<Record<string, string>> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8')
  return Object.fromEntries(text.split('\n').map((l) => l.split(/:\s+/, 2) as [string, string]))
}

async function uidProcesses(uid: number): Promise<number[]> {
  const pids: number[] = []
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue
    const st = await stat(`/proc/${e}`).catch(() => null)
    if (st?.uid === uid) pids.push(Number(e))
  }
  return pids
}

/** Inodes of the sockets a process holds open. */
async function socketInodes(pid: number): Promise<Set<string>> {
  const inodes = new Set<string>()
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const m = /^socket:\[(\d+)\]$/.exec(await readlink(`/proc/${pid}/fd/${fd}`).catch(() => ''))
    if (m) inodes.add(m[1])
  }
  return inodes
}

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  )

describe('QEMU driver with real VMs', { skip, timeout: 20 * 60_000 }, () => {
  let releaseVms = () => {}
  if (typeof found === 'string') return
  const { kind, image } = found
  const real = kind === 'real'
  let vmsDir = ''
  let opts: QemuDriverOptions
  let driver: QemuDriver
  const exitHook = () => killCgroupTreeSync(CGROUP_ROOT, parent)

  const spec = (id: string, ip: string, memMb = 256): VmLaunchSpec => ({
    id,
    dir: path.join(vmsDir, id),
    image,
    memMb,
    vcpus: 1,
    diskMb: real ? 4096 : 128,
    ipAddress: ip,
  })

  before(async () => {
    releaseVms = await holdVmLock()
    vmsDir = await mkdtemp(path.join(os.tmpdir(), 'rigbox-vms-'))
    // A uid range and cgroup parent of their own: a running server's VMs are never touched.
    opts = { vmsDir, cgroupParent: parent, uidBase: 260_000, uidCount: 1000 }
    driver = new QemuDriver(opts)
    process.on('exit', exitHook)
  })

  after(async () => {
    const cleaner = new QemuDriver(opts)
    for (const vm of await cleaner.listRunning().catch(() => [])) {
      await cleaner.destroy(vm.id).catch(() => {})
    }
    exitHook()
    process.off('exit', exitHook)
    await rm(vmsDir, { recursive: true, force: true })
    releaseVms()
  })

  it('boots in the jail: own uid, cgroups, seccomp, no capabilities; hostfwd works', async (t) => {
    // The real image runs systemd and the Node agent: give it room.
    const memMb = real ? 512 : 256
    const s = spec('ws-boot0001', '172.16.0.23', memMb)
    const t0 = Date.now()
    const h = await driver.start(s)
    const qmpMs = Date.now() - t0
    const readyMs = await waitConsole(
      path.join(h.dir, 'console.log'),
      real ? /Reached target.*[Mm]ulti-[Uu]ser/ : /RIGBOX-TEST-WAITING/,
      real ? 240_000 : 60_000,
    )
    t.diagnostic(`${kind} image: QMP answered in ${qmpMs} ms, guest ready in ${qmpMs + readyMs} ms`)

    const st = await procStatus(h.pid)
    assert.equal(st.Uid.split('\t')[0], String(h.uid))
    assert.ok(h.uid >= 260_000 && h.uid < 261_000)
    assert.equal(st.CapEff, '0000000000000000')
    assert.equal(st.CapBnd, '0000000000000000')
    assert.equal(st.NoNewPrivs, '1')
    assert.equal(st.Seccomp, '2')
    const cg = await readFile(`/proc/${h.pid}/cgroup`, 'utf8')
    for (const c of ['memory', 'cpu', 'pids']) {
      assert.match(cg, new RegExp(`:${c}:/${parent}/ws-boot0001$`, 'm'))
    }
    const memDir = driver.cgroups.dir('memory', 'ws-boot0001')
    const limit = Number(await readFile(path.join(memDir, 'memory.limit_in_bytes'), 'utf8'))
    assert.equal(limit, (memMb + 64 + 80) * MiB)
    // The jail's root holds only what was bound into it.
    const root = (await readdir(`/proc/${h.pid}/root`)).sort()
    assert.deepEqual(root, [
      'bin',
      'dev',
      'image',
      'lib',
      'lib64',
      'proc',
      'rigbox',
      'sbin',
      'tmp',
      'usr',
      'vm',
    ])
    // The host's records (pid file, exit status) are masked inside the jail.
    assert.deepEqual(await readdir(`/proc/${h.pid}/root/vm/host`), [])
    assert.ok((await readdir(path.join(h.dir, 'host'))).includes('run.json'))
    const dirSt = await stat(h.dir)
    assert.equal(dirSt.uid, h.uid)
    assert.equal(dirSt.mode & 0o777, 0o700)
    assert.equal((await stat(path.join(h.dir, 'disk.qcow2'))).uid, h.uid)

    if (!real) {
      const con = await readFile(path.join(h.dir, 'console.log'), 'utf8')
      assert.match(con, /RIGBOX-TEST-IP 172\.16\.0\.23\//, 'the guest got its lease over DHCP')
    }
    const guestPort = real ? 22 : 8080
    const nsPort = await driver.addHostFwd('ws-boot0001', guestPort)
    assert.equal(await driver.addHostFwd('ws-boot0001', guestPort), nsPort, 'one per guest port')
    const target = relayTarget(h.sockets.inbound, nsPort)
    const request = real ? '' : 'GET / HTTP/1.0\r\n\r\n'
    assert.match(await readBanner(target, request), real ? /^SSH-2\.0-/ : /^HTTP\/1\.[01] 200/)
    // The one way in is the relay's socket: the forward listens in the VM's own network namespace
    // (not the host's), and no local user but root can open the socket.
    const netns = (pid: number | 'self') => readlink(`/proc/${pid}/ns/net`)
    assert.notEqual(await netns(h.pid), await netns('self'))
    const listening = await readFile(`/proc/${h.pid}/net/tcp`, 'utf8')
    const hex = (n: number) => n.toString(16).toUpperCase().padStart(4, '0')
    assert.match(listening, new RegExp(`0100007F:${hex(nsPort)} 00000000:0000 0A`))
    const hostTcp = await readFile('/proc/self/net/tcp', 'utf8')
    const qemuSockets = await socketInodes(h.pid)
    for (const line of hostTcp.split('\n').slice(1).filter(Boolean)) {
      assert.ok(!qemuSockets.has(line.trim().split(/\s+/)[9]), `QEMU socket on the host: ${line}`)
    }
    assert.equal((await stat(h.sockets.inbound)).mode & 0o077, 0, 'the jail uid only')
    assert.equal(await connectAsNobody(h.sockets.inbound), 'EACCES')
    await driver.removeHostFwd('ws-boot0001', guestPort)
    await assert.rejects(readBanner(target, request, 2000))
    const rss = Number(st.VmRSS.split(' ')[0]) / 1024
    const peak = (await driver.cgroups.maxUsageBytes('ws-boot0001'))! / MiB
    t.diagnostic(
      `QEMU RSS ${rss.toFixed(0)} MiB, cgroup peak ${peak.toFixed(0)} MiB (${memMb} MiB guest)`,
    )
  })

  it('adopts the running VM after every in-process handle is dropped', async () => {
    const before = driver.get('ws-boot0001')!
    driver.release('ws-boot0001')
    assert.equal(driver.get('ws-boot0001'), undefined)
    const other = new QemuDriver(opts)
    const running = await other.listRunning()
    assert.deepEqual(
      running.map((r) => [r.id, r.pid]),
      [['ws-boot0001', before.pid]],
    )
    const h = (await other.adopt('ws-boot0001', before.dir))!
    assert.equal(h.pid, before.pid)
    assert.deepEqual(await h.qmp.execute('query-status'), {
      status: 'running',
      singlestep: false,
      running: true,
    })
    driver = other
  })

  it('stops through the ACPI power button within the bounded wait', async (t) => {
    const t0 = Date.now()
    const exit = await driver.stop('ws-boot0001', { timeoutMs: real ? 90_000 : 20_000 })
    t.diagnostic(`ACPI stop took ${Date.now() - t0} ms`)
    assert.equal(exit.guestPoweredOff, true, JSON.stringify(exit))
    assert.equal(exit.oomKilled, false)
    assert.equal(exit.requested, true)
    assert.equal(exit.code, 0)
    assert.equal(describeExit(exit).reason, 'poweroff')
    assert.equal(await exists(driver.cgroups.dir('pids', 'ws-boot0001')), false)
  })

  it('survives a server crash; kill -9 of the adopted QEMU is a crash; destroy leaves nothing', async () => {
    const s = spec('ws-crash001', '172.16.0.24')
    const script = path.join(
      path.dirname(fileURLToPath(import.meta.url)),
      'fixtures',
      'start-and-die.ts',
    )
    const pid = await new Promise<number>((resolve, reject) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', script, JSON.stringify({ opts, spec: s })],
        { timeout: 60_000 },
        (err, stdout) => {
          const n = Number(stdout.trim())
          if (n > 0) resolve(n)
          else reject(err ?? new Error(`no pid: ${stdout}`))
        },
      )
    })
    const h = (await driver.adopt('ws-crash001', s.dir))!
    assert.ok(h, 'QEMU outlived the server that started it')
    assert.equal(h.pid, pid)
    assert.equal((await h.qmp.execute<{ status: string }>('query-status')).status, 'running')
    const uid = h.uid
    process.kill(h.pid, 'SIGKILL')
    const exit = await h.exited
    assert.equal(exit.signal, 'SIGKILL', JSON.stringify(exit))
    assert.equal(exit.oomKilled, false)
    assert.equal(exit.guestPoweredOff, false)
    assert.equal(exit.requested, false)
    assert.equal(describeExit(exit).reason, 'crash')

    await driver.destroy('ws-crash001')
    assert.equal(await exists(s.dir), false)
    for (const c of ['memory', 'cpu', 'pids']) {
      assert.equal(await exists(path.join(CGROUP_ROOT, c, parent, 'ws-crash001')), false)
    }
    assert.deepEqual(await uidProcesses(uid), [])
  })

  it('sees kill -9 of its own child QEMU as a crash', async () => {
    const h = await driver.start(spec('ws-kill0001', '172.16.0.25'))
    process.kill(h.pid, 'SIGKILL')
    const exit = await h.exited
    assert.equal(exit.signal, 'SIGKILL')
    assert.equal(describeExit(exit).reason, 'crash')
    await driver.destroy('ws-kill0001')
    assert.equal(await exists(h.dir), false)
  })

  it('reports an OOM kill when the guest outgrows its memory cgroup', async () => {
    // Boot normally, then squeeze the limit to what QEMU holds now plus 16 MiB: the guest's own
    // memory use (systemd boot, or the busybox image filling its RAM) then trips the OOM killer.
    const id = 'ws-oom00001'
    const s = spec(id, '172.16.0.26')
    if (!real) s.image = { ...image, cmdline: `${image.cmdline} rbtest=fillmem` }
    const h = await driver.start(s)
    const memDir = driver.cgroups.dir('memory', id)
    const memStat = await readFile(path.join(memDir, 'memory.stat'), 'utf8')
    const rss = Number(/^rss (\d+)/m.exec(memStat)![1])
    await writeFile(path.join(memDir, 'memory.limit_in_bytes'), String(rss + 16 * MiB))
    const exit = await Promise.race([
      h.exited,
      new Promise<null>((r) => setTimeout(() => r(null), 240_000).unref()),
    ])
    assert.ok(exit, 'the guest did not outgrow the squeezed limit')
    assert.equal(exit.oomKilled, true, JSON.stringify(exit))
    assert.equal(exit.signal, 'SIGKILL')
    assert.equal(describeExit(exit).reason, 'oom')
    await driver.destroy(id)
  })
})
