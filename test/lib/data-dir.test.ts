import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'
import { secureDataDir } from '../../src/lib/data-dir.ts'
import { makeApp, tempDir } from '../helpers/app.ts'

const mode = (p: string) => fs.statSync(p).mode & 0o7777

/** Whether `nobody` (another local user) can read the file: its error code, or 'read'. */
function readAsNobody(file: string): Promise<string> {
  return new Promise((resolve) => {
    execFile(
      'setpriv',
      ['--reuid=65534', '--regid=65534', '--clear-groups', 'cat', file],
      (err, _out, stderr) =>
        resolve(err ? (/Permission denied/.test(stderr) ? 'EACCES' : stderr) : 'read'),
    )
  })
}

/** Every file and directory under `dir` (not following links). */
function walk(dir: string, out: string[] = []): string[] {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    out.push(p)
    if (e.isDirectory()) walk(p, out)
  }
  return out
}

describe('data dir permissions', () => {
  it('a fresh data dir: 0700 directories, 0600 files, nothing readable by another user', async () => {
    const t = await makeApp()
    try {
      const db = path.join(t.dataDir, 'rigbox.db')
      // Workspace env secrets go into the database (and its WAL) on the first write.
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/v1/workspaces',
        headers: { authorization: `Bearer ${t.adminKey}` },
        payload: { name: 'secretive', env_vars: { TOKEN: 'hunter2' } },
      })
      assert.equal(res.statusCode, 201)
      assert.ok(fs.existsSync(`${db}-wal`), 'the WAL exists')
      assert.equal(mode(t.dataDir), 0o700)
      for (const p of walk(t.dataDir)) {
        const st = fs.lstatSync(p)
        if (st.isDirectory()) assert.equal(st.mode & 0o777, 0o700, p)
        else if (st.isFile()) assert.equal(st.mode & 0o777, 0o600, p)
      }
      for (const f of [db, `${db}-wal`, `${db}-shm`, path.join(t.dataDir, 'admin.key')]) {
        assert.equal(await readAsNobody(f), 'EACCES', f)
      }
    } finally {
      await t.close()
    }
  })

  it('is checked at every start and repaired', async () => {
    const dataDir = tempDir()
    const first = await makeApp({ dataDir })
    await first.close()
    const db = path.join(dataDir, 'rigbox.db')
    // As an earlier version left it: world-readable database, a traversable data dir.
    fs.chmodSync(dataDir, 0o711)
    for (const f of [db, `${db}-wal`, `${db}-shm`]) if (fs.existsSync(f)) fs.chmodSync(f, 0o644)
    fs.mkdirSync(path.join(dataDir, 'snapshots', 'ws-aaaaaaaa'), { recursive: true, mode: 0o755 })
    fs.writeFileSync(path.join(dataDir, 'snapshots', 'ws-aaaaaaaa', 's.qcow2'), 'x', {
      mode: 0o644,
    })
    const second = await makeApp({ dataDir })
    try {
      assert.equal(mode(dataDir), 0o700)
      assert.equal(mode(db), 0o600)
      assert.equal(mode(path.join(dataDir, 'snapshots')), 0o700)
      assert.equal(mode(path.join(dataDir, 'snapshots', 'ws-aaaaaaaa', 's.qcow2')), 0o600)
      assert.equal(await readAsNobody(db), 'EACCES')
    } finally {
      await second.close()
    }
  })

  it('keeps guest images readable for the jail and VM dirs owned by their jail uid', () => {
    const dataDir = tempDir()
    const image = path.join(dataDir, 'images', 'base-1')
    fs.mkdirSync(image, { recursive: true, mode: 0o755 })
    fs.writeFileSync(path.join(image, 'vmlinux'), 'k', { mode: 0o444 })
    const vm = path.join(dataDir, 'vms', 'ws-bbbbbbbb')
    fs.mkdirSync(path.join(vm, 'host'), { recursive: true, mode: 0o755 })
    fs.chownSync(vm, 4242, 4242)
    fs.writeFileSync(path.join(vm, 'console.log'), 'boot', { mode: 0o644 })
    fs.writeFileSync(path.join(vm, 'host', 'run.json'), '{}', { mode: 0o644 })
    const repaired = secureDataDir(dataDir, { imageDir: path.join(dataDir, 'images') })
    assert.ok(repaired.includes(path.join(vm, 'console.log')))
    assert.equal(mode(path.join(dataDir, 'images')), 0o700)
    assert.equal(mode(image), 0o755, 'inside images/ nothing changes')
    assert.equal(mode(path.join(image, 'vmlinux')), 0o444)
    assert.equal(fs.statSync(vm).uid, 4242, 'a VM dir keeps its jail owner')
    assert.equal(mode(vm), 0o700)
    assert.equal(mode(path.join(vm, 'console.log')), 0o600)
    assert.equal(mode(path.join(vm, 'host')), 0o700)
    assert.equal(mode(path.join(vm, 'host', 'run.json')), 0o600)
    assert.deepEqual(secureDataDir(dataDir, { imageDir: path.join(dataDir, 'images') }), [])
  })
})
