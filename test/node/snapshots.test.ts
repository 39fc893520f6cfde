import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { loadConfig } from '../../src/config/config.ts'
import { createLocalNode } from '../../src/node/local-node.ts'
import type { NodeClient } from '../../src/node/types.ts'
import { parseVersionOutput, recordFile } from '../../src/vm/memory-compat.ts'
import { run } from '../../src/vm/proc.ts'
import { call, makeApp, makeUser, tempDir, type TestApp } from '../helpers/app.ts'
import { runSeedPython, seedPython } from '../helpers/seeds.ts'
import { imageDir, qemuPidsFor, waitStatus } from '../helpers/vm-env.ts'
import { holdVmLock } from '../helpers/vm-lock.ts'

/**
 * Snapshots, pause/resume and forks on real VMs behind the real API. One workspace goes through
 * the seed's checkpoint → change → restore flow; a fork boots from its snapshot beside it.
 */
describe('snapshots, pause/resume and forks of real VMs', { timeout: 25 * 60_000 }, () => {
  let releaseVms = () => {}
  let t: TestApp
  let node: NodeClient
  let key: string
  let dataDir: string
  let ws: { id: string; name: string; disk_size_mb: number }
  let checkpoint: { id: string; size_bytes: number }

  const api = (method: string, url: string, body?: unknown) =>
    call(t.app, key, method as 'GET', url, body)
  const exec = async (id: string, command: string, user = 'developer') => {
    const res = await api('POST', `/api/v1/workspaces/${id}/exec`, { command, user })
    assert.equal(res.status, 200, res.body)
    return res.json as { exit_code: number; stdout: string; stderr: string }
  }
  const act = async (id: string, verb: string, until: string[]) => {
    const res = await api('POST', `/api/v1/workspaces/${id}/${verb}`)
    assert.equal(res.status, 200, res.body)
    return waitStatus(t.app, key, id, until)
  }

  before(async () => {
    releaseVms = await holdVmLock()
    dataDir = tempDir()
    const config = loadConfig({ RIGBOX_DATA_DIR: dataDir, RIGBOX_IMAGE_DIR: imageDir })
    node = await createLocalNode(config)
    t = await makeApp({ node, dataDir, env: { RIGBOX_IMAGE_DIR: imageDir, RIGBOX_NODE: 'local' } })
    key = (await makeUser(t, 'snapper@example.com', 'pro')).key
    ws = (await api('POST', '/api/v1/workspaces', { name: 'alpha', disk_size_mb: 3072 })).json.vm
    await act(ws.id, 'start', ['running'])
  })

  after(async () => {
    await t?.close()
    await node?.close()
    releaseVms()
  })

  it('refuses to snapshot or restore a running workspace (409: stop it first)', async () => {
    const res = await api('POST', `/api/v1/workspaces/${ws.id}/snapshots`, { name: 'nope' })
    assert.equal(res.status, 409)
    assert.match(res.json.error.message, /running.*stop it first/)
    assert.deepEqual((await api('GET', `/api/v1/workspaces/${ws.id}/snapshots`)).json.snapshots, [])
  })

  it('pauses with memory and resumes: same PID, same memory, clock corrected', async () => {
    // A process whose memory holds 1 MB of random data; SIGUSR1 makes it write the data's hash.
    await exec(
      ws.id,
      `nohup bash -c 'x=$(head -c 1000000 /dev/urandom | base64 -w0); echo -n "$x" | sha256sum > /tmp/before; trap "echo -n \\"\\$x\\" | sha256sum > /tmp/after" USR1; while :; do sleep 0.2; done' >/dev/null 2>&1 & echo $! > /tmp/holder.pid`,
    )
    let before = ''
    for (let i = 0; i < 100 && !before; i++) {
      before = (await exec(ws.id, 'cat /tmp/before 2>/dev/null || true')).stdout
      if (!before) await new Promise((r) => setTimeout(r, 300))
    }
    assert.match(before, /^[0-9a-f]{64}/)
    const pid = (await exec(ws.id, 'cat /tmp/holder.pid')).stdout.trim()
    const startTime = (await exec(ws.id, `cut -d' ' -f22 /proc/${pid}/stat`)).stdout
    const ip = (await api('GET', `/api/v1/workspaces/${ws.id}`)).json.vm.ip_address
    assert.equal(qemuPidsFor(ws.id).length, 1)

    await act(ws.id, 'pause', ['paused'])
    assert.deepEqual(qemuPidsFor(ws.id), [], 'no QEMU while paused: its RAM and CPU are free')
    const exe = await api('POST', `/api/v1/workspaces/${ws.id}/exec`, { command: 'true' })
    assert.notEqual(exe.status, 200, 'a paused workspace runs nothing')
    // Long enough that an uncorrected guest clock would be visibly behind.
    await new Promise((r) => setTimeout(r, 15_000))

    const resumed = await act(ws.id, 'resume', ['running'])
    assert.equal(resumed.ip_address, ip)
    assert.equal(qemuPidsFor(ws.id).length, 1)
    const guestNow = Number((await exec(ws.id, 'date +%s')).stdout)
    assert.ok(
      Math.abs(guestNow - Date.now() / 1000) < 5,
      `guest clock off by ${guestNow - Date.now() / 1000} s`,
    )
    assert.equal((await exec(ws.id, `cut -d' ' -f22 /proc/${pid}/stat`)).stdout, startTime)
    await exec(ws.id, `kill -USR1 ${pid}`)
    let afterHash = ''
    for (let i = 0; i < 50 && !afterHash; i++) {
      afterHash = (await exec(ws.id, 'cat /tmp/after 2>/dev/null || true')).stdout
      if (!afterHash) await new Promise((r) => setTimeout(r, 200))
    }
    assert.equal(afterHash, before, 'the process kept its memory')
  })

  it('refuses a memory state another QEMU saved, launching none; a start boots from disk', async () => {
    await exec(ws.id, 'echo on-disk > ~/marker && sync')
    await act(ws.id, 'pause', ['paused'])
    const memory = path.join(dataDir, 'vms', ws.id, 'host', 'memory.state')
    const record = JSON.parse(fs.readFileSync(recordFile(memory), 'utf8'))
    const installed = parseVersionOutput(await run('/usr/bin/qemu-system-x86_64', ['--version']))
    const vm = (await api('GET', `/api/v1/workspaces/${ws.id}`)).json.vm
    assert.deepEqual(
      [record.qemu, record.memMb, record.vcpus],
      [installed.qemu, vm.ram_mb, vm.vcpu_count],
    )
    // As if QEMU had been upgraded across a release while the workspace was paused.
    fs.writeFileSync(recordFile(memory), JSON.stringify({ ...record, qemu: '6.0.0' }))
    const failed = await act(ws.id, 'resume', ['failed', 'running'])
    assert.equal(failed.status, 'failed')
    assert.equal(failed.failure_code, 'RESUME_INCOMPATIBLE')
    assert.match(failed.failure_reason, /QEMU changed from 6\.0\.0 to .*Start it again/)
    assert.deepEqual(qemuPidsFor(ws.id), [], 'no QEMU was launched')
    const started = await act(ws.id, 'start', ['running'])
    assert.equal(started.failure_code, null)
    assert.equal((await exec(ws.id, 'cat ~/marker; rm ~/marker; sync')).stdout, 'on-disk\n')
  })

  it('checkpoints, changes and restores (the seed flow): later files go, deleted ones return', async () => {
    await exec(ws.id, 'echo kept > ~/keep.txt && sync')
    // Stopped from paused: the memory state is discarded and the next start boots from disk.
    await act(ws.id, 'pause', ['paused'])
    const memory = path.join(dataDir, 'vms', ws.id, 'host', 'memory.state')
    assert.ok(fs.statSync(memory).size > 10 * 1024 * 1024)
    await act(ws.id, 'stop', ['stopped'])
    assert.equal(fs.existsSync(memory), false)
    // The unversioned path, as the seed's Python calls it: the object itself, with its id.
    const created = await api('POST', `/api/workspaces/${ws.id}/snapshots`, { name: 'checkpoint' })
    assert.equal(created.status, 201, created.body)
    checkpoint = created.json
    assert.match(checkpoint.id, /^snap-/)
    const file = path.join(dataDir, 'snapshots', ws.id, `${checkpoint.id}.qcow2`)
    assert.equal(checkpoint.size_bytes, fs.statSync(file).blocks * 512, 'the real allocated size')
    const diskBytes = ws.disk_size_mb * 1024 * 1024
    assert.ok(
      checkpoint.size_bytes < diskBytes / 4,
      `sparse: ${checkpoint.size_bytes} of ${diskBytes}`,
    )
    assert.ok(checkpoint.size_bytes > 1024 * 1024, 'it holds what the workspace wrote')

    await act(ws.id, 'start', ['running'])
    await exec(ws.id, 'rm ~/keep.txt && echo later > ~/new.txt && sync')
    await act(ws.id, 'stop', ['stopped'])
    // A second snapshot of the changed state: independent of the first.
    const changed = await api('POST', `/api/v1/workspaces/${ws.id}/snapshots`, { name: 'changed' })
    assert.equal(changed.status, 201)
    const restore = await api(
      'POST',
      `/api/v1/workspaces/${ws.id}/snapshots/${checkpoint.id}/restore`,
    )
    assert.equal(restore.status, 200, restore.body)

    // Meanwhile, a fork of the checkpoint boots beside it.
    const fork = await api('POST', `/api/v1/snapshots/${checkpoint.id}/fork`, { name: 'forked' })
    assert.equal(fork.status, 201, fork.body)
    const forked = fork.json.vm
    await api('POST', `/api/v1/workspaces/${forked.id}/start`)
    await act(ws.id, 'start', ['running'])
    const files = await exec(ws.id, 'ls ~; cat ~/keep.txt')
    assert.equal(files.stdout, 'keep.txt\nkept\n')

    await waitStatus(t.app, key, forked.id, ['running'])
    assert.equal((await exec(forked.id, 'cat ~/keep.txt; ls ~')).stdout, 'kept\nkeep.txt\n')
    const identity =
      'hostname; cat /etc/machine-id; ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub'
    const [mine, theirs] = [await exec(ws.id, identity), await exec(forked.id, identity)]
    const [hostA, machineA, keyA] = mine.stdout.trim().split('\n')
    const [hostB, machineB, keyB] = theirs.stdout.trim().split('\n')
    assert.deepEqual([hostA, hostB], ['alpha', 'forked'])
    assert.match(machineB, /^[0-9a-f]{32}$/)
    assert.notEqual(machineA, machineB, 'own machine-id')
    assert.notEqual(keyA.split(' ')[1], keyB.split(' ')[1], 'own SSH host key')
    const ips = await Promise.all(
      [ws.id, forked.id].map(
        async (id) => (await api('GET', `/api/v1/workspaces/${id}`)).json.vm.ip_address,
      ),
    )
    assert.notEqual(ips[0], ips[1], 'own IP lease')
    const guestIp = (await exec(forked.id, 'ip -4 -o addr show scope global')).stdout
    assert.ok(guestIp.includes(`${ips[1]}/`), guestIp)

    // The second snapshot still has the changed state: restore it into the fork's source later.
    await api('DELETE', `/api/v1/workspaces/${forked.id}`)
    await waitStatus(t.app, key, ws.id, ['running'])
    const listed = (await api('GET', `/api/workspaces/${ws.id}/snapshots`)).json
    assert.deepEqual(listed.map((s: { name: string }) => s.name).sort(), ['changed', 'checkpoint'])
    assert.equal((await api('DELETE', `/api/snapshots/${changed.json.snapshot.id}`)).status, 200)
    assert.equal(
      fs.existsSync(path.join(dataDir, 'snapshots', ws.id, `${changed.json.snapshot.id}.qcow2`)),
      false,
    )
  })

  it("runs the seed's checkpoint-and-restore Python example unchanged", async () => {
    const code = seedPython('004_05a022e381606096.txt', /Back to the checkpointed state/)
    await runSeedPython(code, `${await baseUrl()}/api`, key, {
      WS_ID: ws.id,
    })
    const names = (await api('GET', '/api/snapshots')).json.map((s: { name: string }) => s.name)
    assert.deepEqual(names.sort(), ['before-experiment', 'checkpoint'])
    await waitStatus(t.app, key, ws.id, ['running'])
    assert.equal((await exec(ws.id, 'cat ~/keep.txt')).stdout, 'kept\n')
  })

  it('limits snapshots per workspace (pro: 10) and deletes a workspace with its snapshots', async () => {
    await act(ws.id, 'stop', ['stopped'])
    for (let i = (await api('GET', '/api/v1/snapshots')).json.snapshots.length; i < 10; i++) {
      const res = await api('POST', `/api/v1/workspaces/${ws.id}/snapshots`, { name: `n${i}` })
      assert.equal(res.status, 201, res.body)
    }
    const over = await api('POST', `/api/v1/workspaces/${ws.id}/snapshots`, { name: 'one-more' })
    assert.equal(over.status, 402)
    assert.match(over.json.error.message, /max_snapshots_per_workspace/)
    assert.equal(fs.readdirSync(path.join(dataDir, 'snapshots', ws.id)).length, 10)
    assert.equal((await api('DELETE', `/api/v1/workspaces/${ws.id}`)).status, 200)
    await t.app.rigbox.reconciler.idle()
    assert.equal((await api('GET', `/api/v1/workspaces/${ws.id}`)).status, 404)
    assert.deepEqual((await api('GET', '/api/v1/snapshots')).json.snapshots, [])
    assert.equal(fs.existsSync(path.join(dataDir, 'snapshots', ws.id)), false)
    assert.deepEqual(qemuPidsFor(ws.id), [])
  })

  /** The Python example needs a real URL: listen on a loopback port for it. */
  let listening: string | null = null
  async function baseUrl() {
    if (!listening) {
      await t.app.listen({ host: '127.0.0.1', port: 0 })
      const addr = t.app.server.address() as { port: number }
      listening = `http://127.0.0.1:${addr.port}`
    }
    return listening
  }
})
