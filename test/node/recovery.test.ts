import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { tempDir } from '../helpers/app.ts'
import { runSeedPython, seedPython } from '../helpers/seeds.ts'
import { freePort, qemuPidsFor, ServerProcess, waitStatus } from '../helpers/vm-env.ts'
import { holdVmLock } from '../helpers/vm-lock.ts'

/** `rigbox serve` as a process, killed with SIGKILL at the worst moments, then started again. */
describe('crash recovery of the control plane', { timeout: 20 * 60_000 }, () => {
  let releaseVms = () => {}
  let server: ServerProcess
  let id: string
  let qemuPid: number

  before(async () => {
    releaseVms = await holdVmLock()
    server = new ServerProcess(tempDir(), await freePort())
    await server.start()
  })

  after(async () => {
    // Leave nothing running: delete what the tests made, then stop the server.
    if (!server.running) await server.start().catch(() => undefined)
    const list = await server.api('GET', '/api/v1/workspaces').catch(() => null)
    for (const vm of list?.json?.vms ?? [])
      await server.api('DELETE', `/api/v1/workspaces/${vm.id}`)
    for (const vm of list?.json?.vms ?? []) {
      const deadline = Date.now() + 60_000
      while (Date.now() < deadline) {
        const res = await server.api('GET', `/api/v1/workspaces/${vm.id}`)
        if (res.status === 404) break
        await new Promise((r) => setTimeout(r, 500))
      }
    }
    await server.stop()
    releaseVms()
  })

  it('adopts a VM whose start was interrupted by kill -9 and brings it to running', async () => {
    const created = await server.api('POST', '/api/v1/workspaces', { name: 'survivor' })
    assert.equal(created.status, 201)
    id = created.json.vm.id
    assert.equal((await server.api('POST', `/api/v1/workspaces/${id}/start`)).status, 200)
    // Mid-start: QEMU is up, the guest is still booting.
    const deadline = Date.now() + 60_000
    while (qemuPidsFor(id).length === 0 && Date.now() < deadline) {
      const { vm } = (await server.api('GET', `/api/v1/workspaces/${id}`)).json
      assert.notEqual(vm.status, 'failed', `${vm.failure_code}: ${vm.failure_reason}`)
      await new Promise((r) => setTimeout(r, 200))
    }
    // …and recorded by the driver (run.json, written once QMP answers): a QEMU killed before
    // that cannot be told from a stranger's, so the next server would kill it and boot anew.
    const runState = path.join(server.dataDir, 'vms', id, 'host', 'run.json')
    while (!fs.existsSync(runState) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10))
    }
    const pids = qemuPidsFor(id)
    assert.equal(pids.length, 1, 'one QEMU for the workspace')
    qemuPid = pids[0]
    assert.equal((await server.api('GET', `/api/v1/workspaces/${id}`)).json.vm.status, 'starting')
    await server.kill9()

    await server.start()
    const vm = await waitStatus(server.url, server.adminKey(), id, ['running'])
    assert.match(vm.ip_address, /^172\.16\.0\./)
    assert.deepEqual(qemuPidsFor(id), [qemuPid], 'the same QEMU was adopted, none started twice')
    const r = await server.api('POST', `/api/v1/workspaces/${id}/exec`, { command: 'echo alive' })
    assert.equal(r.json.stdout, 'alive\n')
  })

  it('recovers after kill -9 in the middle of a large exec output', async () => {
    const big = server
      .api('POST', `/api/v1/workspaces/${id}/exec`, {
        command: 'head -c 400000000 /dev/zero | base64',
        timeout_ms: 120_000,
      })
      .catch((err: unknown) => err)
    await new Promise((r) => setTimeout(r, 2500))
    await server.kill9()
    const interrupted = await big
    assert.ok(
      interrupted instanceof Error,
      `the request died with the server, it did not answer ${JSON.stringify(interrupted).slice(0, 300)}`,
    )

    await server.start()
    await waitStatus(server.url, server.adminKey(), id, ['running'])
    assert.deepEqual(qemuPidsFor(id), [qemuPid], 'still the same VM')
    // The agent's watchdog reopened its ports: control and bulk calls both work again.
    const deadline = Date.now() + 60_000
    let out = ''
    while (Date.now() < deadline) {
      const r = await server.api('POST', `/api/v1/workspaces/${id}/exec`, { command: 'echo back' })
      if (r.status === 200) {
        out = r.json.stdout
        break
      }
      await new Promise((res) => setTimeout(res, 1000))
    }
    assert.equal(out, 'back\n')
    const metrics = await server.api('GET', `/api/v1/workspaces/${id}/metrics`)
    assert.equal(metrics.status, 200)
    const many = await server.api('POST', `/api/v1/workspaces/${id}/exec`, {
      command: 'seq 1 200000 | tail -1',
    })
    assert.equal(many.json.stdout, '200000\n')
  })

  it("a second installation on the same host leaves this one's VMs alone", async () => {
    const other = new ServerProcess(tempDir(), await freePort())
    const owns = (s: ServerProcess) =>
      JSON.parse(fs.readFileSync(path.join(s.dataDir, 'node', 'installation.json'), 'utf8'))
    try {
      // Once it answers, its start-up recovery (which kills QEMUs it does not know) has run.
      await other.start()
      assert.deepEqual(qemuPidsFor(id), [qemuPid], 'the other server did not touch this VM')
      const [mine, theirs] = [owns(server), owns(other)]
      assert.notEqual(mine.cgroupParent, theirs.cgroupParent)
      const disjoint =
        mine.uidBase + mine.uidCount <= theirs.uidBase ||
        theirs.uidBase + theirs.uidCount <= mine.uidBase
      assert.ok(disjoint, `uid ranges ${mine.uidBase} and ${theirs.uidBase} overlap`)
      const cgroups = fs.readFileSync(`/proc/${qemuPid}/cgroup`, 'utf8')
      assert.match(cgroups, new RegExp(`:pids:/${mine.cgroupParent}/${id}$`, 'm'))
      assert.deepEqual((await other.api('GET', '/api/v1/workspaces')).json.vms, [])
    } finally {
      await other.stop()
    }
    assert.deepEqual(qemuPidsFor(id), [qemuPid])
    const r = await server.api('POST', `/api/v1/workspaces/${id}/exec`, { command: 'echo still' })
    assert.equal(r.json.stdout, 'still\n')
  })

  it("runs the seed's Python create-start-poll example unchanged against a real VM", async () => {
    const code = seedPython('000_2a1cdc7bb71463a1.txt', /is running and ready to use/)
    const { stdout } = await runSeedPython(code, `${server.url}/api`, server.adminKey())
    const created = /Created workspace: (ws-[a-z0-9]{8})/.exec(stdout)
    assert.ok(created, stdout)
    assert.match(stdout, /Status: starting/)
    assert.match(stdout, /Status: running/)
    const r = await server.api('POST', `/api/v1/workspaces/${created[1]}/exec`, {
      command: 'hostname',
    })
    assert.equal(r.json.stdout, 'demo-workspace\n')
  })
})
