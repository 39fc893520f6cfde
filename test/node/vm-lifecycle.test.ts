import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { loadConfig } from '../../src/config/config.ts'
import { EXEC_LIMITS, type GuestChannel } from '../../src/guest/index.ts'
import { createLocalNode } from '../../src/node/local-node.ts'
import type { NodeClient } from '../../src/node/types.ts'
import { call, makeApp, makeUser, tempDir, type TestApp } from '../helpers/app.ts'
import { hashCommand } from '../guest/helpers.ts'
import { imageDir, qemuPidsFor, vmCgroupDir, waitStatus } from '../helpers/vm-env.ts'
import { holdVmLock } from '../helpers/vm-lock.ts'

/**
 * Real VMs (TCG here, KVM on real hosts) behind the real API: two workspaces booted once and
 * shared by the cases, one stopped, resized and booted again.
 */
describe('workspaces as real micro-VMs', { timeout: 20 * 60_000 }, () => {
  let releaseVms = () => {}
  let t: TestApp
  let node: NodeClient
  let key: string
  let otherKey: string
  let ws: { id: string; name: string }
  let other: { id: string }

  const exec = async (id: string, command: string, extra: object = {}, k = key) => {
    const res = await call(t.app, k, 'POST', `/api/v1/workspaces/${id}/exec`, { command, ...extra })
    assert.equal(res.status, 200, res.body)
    return res.json as { exit_code: number; stdout: string; stderr: string; timed_out: boolean }
  }

  before(async () => {
    releaseVms = await holdVmLock()
    const dataDir = tempDir()
    const config = loadConfig({
      RIGBOX_DATA_DIR: dataDir,
      RIGBOX_IMAGE_DIR: imageDir,
      RIGBOX_LOG_LEVEL: 'warn',
    })
    node = await createLocalNode(config)
    t = await makeApp({ node, dataDir, env: { RIGBOX_IMAGE_DIR: imageDir, RIGBOX_NODE: 'local' } })
    key = (await makeUser(t, 'vm-owner@example.com', 'pro')).key
    otherKey = (await makeUser(t, 'vm-other@example.com', 'free')).key
    ws = (
      await call(t.app, key, 'POST', '/api/v1/workspaces', {
        name: 'alpha',
        ram_mb: 512,
        disk_size_mb: 3072,
        env_vars: { GREETING: 'hello from the API' },
      })
    ).json.vm
    other = (await call(t.app, otherKey, 'POST', '/api/v1/workspaces', { name: 'beta' })).json.vm
    // Two VMs boot at once.
    for (const [id, k] of [
      [ws.id, key],
      [other.id, otherKey],
    ]) {
      const res = await call(t.app, k, 'POST', `/api/v1/workspaces/${id}/start`)
      assert.equal(res.status, 200, res.body)
      assert.equal(res.json.vm.status, 'starting')
    }
    await waitStatus(t.app, key, ws.id, ['running'])
    await waitStatus(t.app, otherKey, other.id, ['running'])
  })

  after(async () => {
    await t?.close()
    await node?.close()
    releaseVms()
  })

  it('runs Debian 12 with systemd as PID 1 on its own kernel, with its own address', async () => {
    const got = (await call(t.app, key, 'GET', `/api/v1/workspaces/${ws.id}`)).json.vm
    assert.match(got.ip_address, /^172\.16\.0\.\d+$/)
    const r = await exec(
      ws.id,
      'cat /proc/1/comm; uname -r; . /etc/os-release; echo $VERSION_ID; hostname; whoami; ip -4 -o addr show scope global | grep -v " lo "',
    )
    const [pid1, kernel, version, hostname, user, addr] = r.stdout.trim().split('\n')
    assert.equal(pid1, 'systemd')
    assert.notEqual(kernel, os.release(), 'the guest runs its own kernel')
    assert.match(kernel, /cloud-amd64/)
    assert.equal(version, '12')
    assert.equal(hostname, 'alpha')
    assert.equal(user, 'developer')
    assert.ok(addr.includes(`${got.ip_address}/`), addr)
    const other = (await call(t.app, otherKey, 'GET', `/api/v1/workspaces/${ws.id}`)).status
    assert.equal(other, 404)
  })

  it('execs with exit codes, stdin, env, root and timeouts', async () => {
    assert.equal((await exec(ws.id, 'exit 7')).exit_code, 7)
    const err = await exec(ws.id, 'echo out; echo err >&2; false')
    assert.deepEqual([err.stdout, err.stderr, err.exit_code], ['out\n', 'err\n', 1])
    assert.equal((await exec(ws.id, 'tr a-z A-Z', { stdin: 'piped in' })).stdout, 'PIPED IN')
    assert.equal((await exec(ws.id, 'echo $ONE_OFF', { env: { ONE_OFF: 'x1' } })).stdout, 'x1\n')
    assert.equal((await exec(ws.id, 'id -u', { user: 'root' })).stdout, '0\n')
    const slow = await exec(ws.id, 'sleep 30; echo never', { timeout_ms: 1500 })
    assert.equal(slow.timed_out, true)
    assert.notEqual(slow.exit_code, 0)
    assert.doesNotMatch(slow.stdout, /never/)
  })

  it('injects env at boot and applies changes to new shells while running', async () => {
    assert.equal((await exec(ws.id, 'echo $GREETING')).stdout, 'hello from the API\n')
    const set = await call(t.app, key, 'POST', `/api/v1/workspaces/${ws.id}/env`, {
      env_vars: { GREETING: 'changed live', EXTRA: '42' },
    })
    assert.equal(set.status, 200)
    assert.equal((await exec(ws.id, 'echo "$GREETING/$EXTRA"')).stdout, 'changed live/42\n')
  })

  it('reads and writes files through the API', async () => {
    const put = await t.app.inject({
      method: 'PUT',
      url: `/api/v1/workspaces/${ws.id}/files?path=/home/developer/notes/hello.txt`,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/octet-stream' },
      payload: Buffer.from('written before stop\n'),
    })
    assert.equal(put.statusCode, 200, put.body)
    const got = await t.app.inject({
      url: `/api/v1/workspaces/${ws.id}/files?path=/home/developer/notes/hello.txt`,
      headers: { authorization: `Bearer ${key}` },
    })
    assert.equal(got.statusCode, 200)
    assert.equal(got.body, 'written before stop\n')
    assert.equal((await exec(ws.id, 'stat -c %U notes/hello.txt')).stdout, 'developer\n')
    const missing = await call(t.app, key, 'GET', `/api/v1/workspaces/${ws.id}/files?path=/nope`)
    assert.equal(missing.status, 404)
  })

  it('runs commands, env and terminals exactly as sent, up to the shared limits', async () => {
    assert.equal((await exec(ws.id, "echo 'ħ; id; ħ'")).stdout, 'ħ; id; ħ\n')
    assert.equal((await exec(ws.id, "printf %s '😀🎉'")).stdout, '😀🎉')
    const env = await exec(ws.id, 'printf %s "$V"', { env: { V: 'ħ😀é \'"$x' } })
    assert.equal(env.stdout, 'ħ😀é \'"$x')
    for (const bytes of [200 * 1024, EXEC_LIMITS.commandBytes]) {
      const { command, sha } = hashCommand(bytes)
      assert.equal((await exec(ws.id, command)).stdout, `${sha}  -\n`, `${bytes}-byte command`)
    }
    const over = hashCommand(EXEC_LIMITS.commandBytes + 1).command
    const refused = await call(t.app, key, 'POST', `/api/v1/workspaces/${ws.id}/exec`, {
      command: over,
    })
    assert.equal(refused.status, 400)
    const noPath = await exec(ws.id, 'echo "[$PATH]"; ls', { env: { PATH: '' } })
    assert.deepEqual([noPath.stdout, noPath.exit_code], ['[]\n', 127])
    // Terminals have no API route (the SSH gateway uses the guest's sshd): the node's channel.
    const guest = (node as unknown as { guest(id: string): GuestChannel }).guest(ws.id)
    const pty = await guest.openPty({
      cols: 120,
      rows: 24,
      command: "printf '%s' 'ħ; id; ħ'; printf '|%s|' \"$V\"",
      env: { V: 'ħ😀' },
    })
    const chunks: Buffer[] = []
    pty.on('data', (c: Buffer) => chunks.push(c))
    assert.deepEqual(await pty.exited, { exit_code: 0, signal: null })
    assert.equal(Buffer.concat(chunks).toString(), 'ħ; id; ħ|ħ😀|')
  })

  it('reads /proc files; a caller mistake in the files API is a 4xx with the reason', async () => {
    const file = (p: string) => `/api/v1/workspaces/${ws.id}/files?path=${encodeURIComponent(p)}`
    const cpuinfo = await call(t.app, key, 'GET', file('/proc/cpuinfo'))
    assert.equal(cpuinfo.status, 200)
    assert.match(cpuinfo.body, /^processor\s*:/m)
    const long = `/home/developer/${'n'.repeat(256)}`
    const get = await call(t.app, key, 'GET', file(long))
    assert.equal(get.status, 400, get.body)
    assert.match(get.json.error.message, /ENAMETOOLONG/)
    const put = await t.app.inject({
      method: 'PUT',
      url: file(long),
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/octet-stream' },
      payload: Buffer.from('x'),
    })
    assert.equal(put.statusCode, 400, put.body)
  })

  it('reports metrics that agree with the guest', async () => {
    const res = await call(t.app, key, 'GET', `/api/v1/workspaces/${ws.id}/metrics`)
    assert.equal(res.status, 200)
    const m = res.json
    const guest = (
      await exec(
        ws.id,
        "awk '/MemTotal/{print int($2/1024)}' /proc/meminfo; df -m --output=size,used / | tail -1",
      )
    ).stdout.trim()
    const [memTotal, dfLine] = guest.split('\n')
    const [diskTotal, diskUsed] = dfLine.trim().split(/\s+/).map(Number)
    assert.ok(Math.abs(m.ram_total_mb - Number(memTotal)) <= 2, `${m.ram_total_mb} vs ${memTotal}`)
    assert.ok(m.ram_used_mb > 20 && m.ram_used_mb < m.ram_total_mb)
    assert.ok(
      Math.abs(m.disk_total_mb - diskTotal) <= diskTotal * 0.05,
      `${m.disk_total_mb} vs ${diskTotal}`,
    )
    assert.ok(Math.abs(m.disk_used_mb - diskUsed) <= 64, `${m.disk_used_mb} vs ${diskUsed}`)
    assert.ok(m.cpu_percent >= 0 && m.cpu_percent <= 100)
  })

  it('serves journal lines, and streams new ones over SSE', async () => {
    const logs = await call(t.app, key, 'GET', `/api/v1/workspaces/${ws.id}/logs?lines=50`)
    assert.equal(logs.status, 200)
    assert.ok(logs.json.lines.length > 0)
    await t.app.listen({ host: '127.0.0.1', port: 0 })
    const port = (t.app.server.address() as { port: number }).port
    const abort = new AbortController()
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/workspaces/${ws.id}/logs/stream`, {
      headers: { authorization: `Bearer ${key}` },
      signal: abort.signal,
    })
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/)
    const marker = `sse-marker-${Date.now()}`
    let seen = ''
    const reading = (async () => {
      for await (const chunk of res.body!.pipeThrough(new TextDecoderStream())) {
        seen += chunk
        if (seen.includes(marker)) return
      }
    })()
    await new Promise((r) => setTimeout(r, 1000))
    await exec(ws.id, `logger ${marker}`)
    await Promise.race([reading, new Promise((r) => setTimeout(r, 30_000))])
    abort.abort()
    assert.ok(seen.includes(marker), 'the logged line arrived over SSE')
    assert.match(seen, /^id: .+$/m)
    assert.match(seen, /^event: log$/m)
  })

  it('keeps platform secrets out of the VM', async () => {
    // Each needle is sent in two halves joined in the guest, so the command itself (which the
    // guest may log) never carries the whole string grep looks for.
    const needles = [t.adminKey, key, t.dataDir, other.id]
    const split = needles.map((n, i) => `N${i}a='${n.slice(0, 8)}' N${i}b='${n.slice(8)}'`)
    const args = needles.map((_, i) => `-e "$N${i}a$N${i}b"`).join(' ')
    const dirs = '/etc /home /root /var /tmp /run /opt /usr/local /srv'
    const r = await exec(
      ws.id,
      `${split.join(' ')}; sudo grep -rIl ${args} ${dirs} 2>/dev/null; env | grep -c ${args}; cat /etc/rigbox/workspace.json`,
    )
    const json = r.stdout.indexOf('{')
    const meta = JSON.parse(r.stdout.slice(json))
    assert.deepEqual(
      r.stdout.slice(0, json).trim().split('\n'),
      ['0'],
      'no file, no env var holds a secret',
    )
    assert.deepEqual(Object.keys(meta).sort(), ['id', 'name', 'owner_id'])
    assert.equal(meta.id, ws.id)
  })

  it('keeps the disk across stop/start and applies a resize (RAM and disk)', async () => {
    await exec(ws.id, 'echo persisted > ~/persist.txt && sync')
    const stop = await call(t.app, key, 'POST', `/api/v1/workspaces/${ws.id}/stop`)
    assert.equal(stop.status, 200)
    const stopped = await waitStatus(t.app, key, ws.id, ['stopped'])
    assert.equal(stopped.ip_address, null)
    assert.deepEqual(qemuPidsFor(ws.id), [], 'QEMU is gone after stop')
    const resize = await call(t.app, key, 'PUT', `/api/v1/workspaces/${ws.id}/resources`, {
      ram_mb: 1024,
      disk_size_mb: 5120,
    })
    assert.equal(resize.status, 200, resize.body)
    await call(t.app, key, 'POST', `/api/v1/workspaces/${ws.id}/start`)
    await waitStatus(t.app, key, ws.id, ['running'])
    const r = await exec(
      ws.id,
      "cat ~/persist.txt notes/hello.txt; awk '/MemTotal/{print int($2/1024)}' /proc/meminfo; df -m --output=size / | tail -1",
    )
    const [persisted, hello, memMb, diskMb] = r.stdout
      .trim()
      .split('\n')
      .map((s) => s.trim())
    assert.equal(persisted, 'persisted')
    assert.equal(hello, 'written before stop')
    assert.ok(Number(memMb) > 900 && Number(memMb) <= 1024, `MemTotal ${memMb} MiB`)
    assert.ok(Number(diskMb) > 4500, `root filesystem ${diskMb} MiB after growing to 5120`)
  })

  it('deletes workspaces leaving no process and no file behind', async () => {
    const vmsDir = path.join(t.dataDir, 'vms')
    for (const [id, k] of [
      [ws.id, key],
      [other.id, otherKey],
    ]) {
      assert.ok(fs.existsSync(path.join(vmsDir, id)))
      assert.ok(fs.existsSync(vmCgroupDir(t.dataDir, id)), `${id} has its cgroup while it runs`)
      assert.equal((await call(t.app, k, 'DELETE', `/api/v1/workspaces/${id}`)).status, 200)
    }
    await t.app.rigbox.reconciler.idle()
    for (const id of [ws.id, other.id]) {
      assert.deepEqual(qemuPidsFor(id), [])
      assert.equal(fs.existsSync(path.join(vmsDir, id)), false, `${id} directory removed`)
      assert.equal(fs.existsSync(vmCgroupDir(t.dataDir, id)), false, `${id} cgroup removed`)
    }
  })
})
