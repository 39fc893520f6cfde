import {
  chmod,
  lchown,
  mkdir,
  readdir,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
  copyFile,
} from 'node:fs/promises'
import path from 'node:path'
import { run } from './exec.ts'
import { removeBuildDir } from './host.ts'
import type { AgentPayload } from './agent.ts'
import { AGENT_BUNDLE_PATH, AGENT_UNIT_NAME, GUEST_CLI_LAUNCHER, GUEST_CLI_PATH } from './agent.ts'
import { ENABLED_UNITS, GUEST_USER, LAYER_FILES, MASKED_UNITS } from './guest-files.ts'
import type { KernelFiles } from './kernel.ts'
import { baseLayerKey, type Recipe } from './recipe.ts'

type Progress = (detail: string) => void

/** Join an absolute guest path onto the staging root. */
const inRoot = (root: string, guestPath: string) => path.join(root, guestPath)

/**
 * The mmdebstrap layer (the slow part, ~35 s for base), cached as a directory keyed by what
 * mmdebstrap sees: `<cacheDir>/debian-<suite>-<key12>`. Built into a temp name and renamed when complete.
 */
export async function ensureBaseLayer(
  recipe: Recipe,
  cacheDir: string,
  progress: Progress,
): Promise<string> {
  const key = baseLayerKey(recipe).slice(0, 12)
  const dir = path.join(cacheDir, `debian-${recipe.suite}-${key}`)
  if (await stat(dir).catch(() => null)) return dir

  await mkdir(cacheDir, { recursive: true })
  const tmp = path.join(cacheDir, `.tmp-${process.pid}-debian-${key}`)
  await removeBuildDir(tmp)
  await mkdir(tmp)
  try {
    const target = path.join(tmp, 'root')
    progress(`mmdebstrap ${recipe.suite} (minbase + ${recipe.packages.length} packages)`)
    await run(
      'mmdebstrap',
      [
        '--mode=root',
        '--variant=minbase',
        `--include=${recipe.packages.join(',')}`,
        ...recipe.dpkgOptions.map((o) => `--dpkgopt=${o}`),
        recipe.suite,
        target,
        ...recipe.sources,
      ],
      { onLine: (line) => progress(line.replace(/^I: /, '')) },
    )
    await rename(target, dir)
    return dir
  } finally {
    await removeBuildDir(tmp)
  }
}

async function writeGuestFile(
  root: string,
  guestPath: string,
  content: string | Buffer,
  mode: number,
) {
  const file = inRoot(root, guestPath)
  await mkdir(path.dirname(file), { recursive: true })
  // Replace rather than write through: mmdebstrap may leave a symlink (resolv.conf) here.
  await rm(file, { force: true })
  await writeFile(file, content)
  await chmod(file, mode)
}

const chroot = (root: string, args: string[]) => run('chroot', [root, ...args])

async function addUser(root: string) {
  const groups = ['sudo', 'adm', 'systemd-journal']
  await chroot(root, [
    'useradd',
    '--create-home',
    '--uid',
    String(GUEST_USER.uid),
    '--user-group',
    '--home-dir',
    GUEST_USER.home,
    '--shell',
    '/bin/bash',
    '--groups',
    groups.join(','),
    GUEST_USER.name,
  ])
  // '*' (no password can match) rather than useradd's '!' (locked): some sshd setups refuse key
  // logins to locked accounts; sudo is passwordless through /etc/sudoers.d.
  await chroot(root, ['usermod', '--password', '*', GUEST_USER.name])
  await run('chown', ['-R', `${GUEST_USER.uid}:${GUEST_USER.uid}`, inRoot(root, GUEST_USER.home)])
}

async function installNode(root: string, nodeTarball: string, npmTarball: string) {
  const bin = inRoot(root, '/usr/local/bin')
  await mkdir(bin, { recursive: true })
  await run('tar', [
    '-xzf',
    nodeTarball,
    '--no-same-owner',
    '-C',
    bin,
    '--strip-components=2',
    'package/bin/node',
  ])
  await chmod(path.join(bin, 'node'), 0o755)
  const npmDir = inRoot(root, '/usr/local/lib/node_modules/npm')
  await mkdir(npmDir, { recursive: true })
  await run('tar', ['-xzf', npmTarball, '--no-same-owner', '-C', npmDir, '--strip-components=1'])
  for (const [name, target] of [
    ['npm', '../lib/node_modules/npm/bin/npm-cli.js'],
    ['npx', '../lib/node_modules/npm/bin/npx-cli.js'],
  ]) {
    await rm(path.join(bin, name), { force: true })
    await symlink(target, path.join(bin, name))
  }
}

async function installAgent(root: string, agent: AgentPayload) {
  await writeGuestFile(root, AGENT_BUNDLE_PATH, agent.bundle, 0o644)
  await writeGuestFile(root, GUEST_CLI_PATH, agent.cli, 0o644)
  await writeGuestFile(
    root,
    GUEST_CLI_LAUNCHER,
    `#!/bin/sh\nexec /usr/local/bin/node ${GUEST_CLI_PATH} "$@"\n`,
    0o755,
  )
  const unitPath = `/etc/systemd/system/${AGENT_UNIT_NAME}`
  await writeGuestFile(root, unitPath, agent.unit, 0o644)
  for (const target of agent.wantedBy) {
    const wants = inRoot(root, `/etc/systemd/system/${target}.wants`)
    await mkdir(wants, { recursive: true })
    await rm(path.join(wants, AGENT_UNIT_NAME), { force: true })
    await symlink(unitPath, path.join(wants, AGENT_UNIT_NAME))
  }
  for (const f of agent.files) {
    const dest = inRoot(root, f.path)
    await mkdir(path.dirname(dest), { recursive: true })
    await copyFile(f.src, dest)
    await chmod(dest, f.mode)
    await lchown(dest, 0, 0)
  }
}

async function clearDir(dir: string) {
  for (const entry of await readdir(dir).catch(() => [] as string[])) {
    await rm(path.join(dir, entry), { recursive: true, force: true })
  }
}

export interface FinalLayerInputs {
  kernel: KernelFiles
  nodeTarball: string
  npmTarball: string
  agent: AgentPayload
}

/** Everything on top of the cached Debian tree, applied to a private copy of it at `root`. */
export async function applyFinalLayer(root: string, inputs: FinalLayerInputs, progress: Progress) {
  progress('config files, user developer')
  for (const f of LAYER_FILES) await writeGuestFile(root, f.path, f.content, f.mode)
  await addUser(root)

  progress(`Node.js ${path.basename(inputs.nodeTarball)}, ${path.basename(inputs.npmTarball)}`)
  await installNode(root, inputs.nodeTarball, inputs.npmTarball)

  progress(`kernel modules ${inputs.kernel.release}`)
  const modules = inRoot(root, `/lib/modules/${inputs.kernel.release}`)
  await rm(modules, { recursive: true, force: true })
  await mkdir(path.dirname(modules), { recursive: true })
  await run('cp', ['-a', inputs.kernel.modulesDir, modules])
  await run('depmod', ['-b', root, inputs.kernel.release])

  progress('guest agent and systemd units')
  await installAgent(root, inputs.agent)
  await chroot(root, ['systemctl', 'enable', '--quiet', ...ENABLED_UNITS])
  await chroot(root, ['systemctl', 'mask', '--quiet', ...MASKED_UNITS])
  // Nothing graphical in a VM: boot to multi-user.target, the readiness point we measure.
  await chroot(root, ['systemctl', 'set-default', '--quiet', 'multi-user.target'])

  progress('per-VM identity: no SSH host keys, empty machine-id')
  for (const f of await readdir(inRoot(root, '/etc/ssh'))) {
    if (f.startsWith('ssh_host_')) await rm(inRoot(root, `/etc/ssh/${f}`))
  }
  // An empty (not missing) machine-id: systemd generates a fresh one per VM at boot and commits it
  // once the root is writable.
  await writeGuestFile(root, '/etc/machine-id', '', 0o444)
  await rm(inRoot(root, '/var/lib/dbus/machine-id'), { force: true })
  await clearDir(inRoot(root, '/tmp'))
  await clearDir(inRoot(root, '/var/tmp'))
}

/** Disk bytes used by a tree (du counts blocks, which is what the filesystem needs). */
async function treeBytes(dir: string): Promise<number> {
  const out = await run('du', ['-s', '-x', '--block-size=1', dir])
  return Number(out.stdout.split(/\s/)[0])
}

/**
 * Make the raw ext4 image from the staged tree: content + headroom, at least the recipe minimum,
 * rounded to 64 MiB. Run as root, mkfs.ext4 -d keeps the tree's owners (developer's home 1000:1000).
 */
export async function makeRootfsImage(root: string, out: string, recipe: Recipe): Promise<number> {
  const used = await treeBytes(root)
  const step = 64 * 1024 ** 2
  const wanted = Math.max(recipe.minRootfsBytes, used * (1 + recipe.headroom) + 128 * 1024 ** 2)
  const size = Math.ceil(wanted / step) * step
  await run('mkfs.ext4', [
    '-q',
    '-F',
    '-L',
    'rigbox-root',
    // 1% reserved instead of 5%: the disk belongs to one user, who is root in the VM anyway.
    '-m',
    '1',
    '-E',
    'root_owner=0:0',
    '-d',
    root,
    out,
    `${size / 1024}k`,
  ])
  return size
}
