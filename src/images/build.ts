import {
  chmod,
  copyFile,
  mkdir,
  readdir,
  readFile,
  rename,
  stat,
  writeFile,
} from 'node:fs/promises'
import path from 'node:path'
import { loadAgent, AGENT_UNIT_NAME, type AgentPayload } from './agent.ts'
import { run, which } from './exec.ts'
import { LAYER_FILES, ENABLED_UNITS, MASKED_UNITS } from './guest-files.ts'
import { checkBuildHost, removeBuildDir, removeStaleTemps } from './host.ts'
import { INIT_SCRIPT, INITRD_MODULES, buildInitrd } from './initrd.ts'
import { ensureKernel, resolveKernelPackage, type KernelPackage } from './kernel.ts'
import { withLock } from './lock.ts'
import { cachedTarball, ensureTarball } from './node-runtime.ts'
import {
  IMAGE_NAMES,
  RECIPE_VERSION,
  getRecipe,
  imageDirName,
  recipeHash,
  sha256,
  type HashedFile,
  type ImageName,
  type Recipe,
} from './recipe.ts'
import { applyFinalLayer, ensureBaseLayer, makeRootfsImage } from './rootfs.ts'

export type { ImageName } from './recipe.ts'

export interface ImageInfo {
  name: ImageName
  /** Full recipe hash (sha256 hex); the directory is named after its first 12 characters. */
  hash: string
  dir: string
  kernelPath: string
  initrdPath: string
  rootfsPath: string
  /** Kernel command line the image needs; the driver adds accelerator flags (tsc_early_khz...). */
  cmdline: string
  /** `uname -r` in the guest, e.g. 6.1.0-50-cloud-amd64 */
  kernelVersion: string
  /** Size of rootfs.img: the smallest disk a workspace on this image can have. */
  sizeBytes: number
}

export type ProgressFn = (step: string, detail?: string) => void

export interface EnsureImageOptions {
  /** `$RIGBOX_IMAGE_DIR`: images live in `<imageDir>/<name>-<hash12>/`, caches in `cache/`. */
  imageDir: string
  onProgress?: ProgressFn
  /**
   * Rebuild even when the image exists (caches are reused: remove `<imageDir>/cache` for fresh
   * packages). The old directory is replaced: qcow2 overlays made on it must not be used after.
   */
  force?: boolean
  /** Where the guest agent's sources are (default: the repository's agent/). */
  agentDir?: string
}

interface Manifest {
  name: ImageName
  hash: string
  kernel_version: string
  created_at: string
  size_bytes: number
  cmdline: string
  kernel_package: string
  node: string
  recipe_version: number
  build_seconds: number
}

interface Resolved {
  recipe: Recipe
  kernel: KernelPackage
  nodeTarball: string
  npmTarball: string
  agent: AgentPayload
  hash: string
}

const cachePaths = (imageDir: string) => {
  const cache = path.join(imageDir, 'cache')
  return {
    cache,
    kernel: path.join(cache, 'kernel'),
    npm: path.join(cache, 'npm'),
    rootfs: path.join(cache, 'rootfs'),
  }
}

const hashed = (p: string, mode: number, content: string | Buffer): HashedFile => ({
  path: p,
  mode,
  sha256: sha256(content),
})

/**
 * Pin every input of the image and hash it. Offline (`network: false`) it uses only the apt lists
 * and the cache, and returns null when a download would be needed (then no image can exist yet).
 */
async function resolveInputs(
  name: ImageName,
  imageDir: string,
  agentDir: string | undefined,
  network: boolean,
  progress: ProgressFn,
): Promise<Resolved | null> {
  const recipe = getRecipe(name)
  const dirs = cachePaths(imageDir)
  const agent = await loadAgent(agentDir)
  const kernel = await resolveKernelPackage(recipe.kernelMetaPackage, dirs.kernel, {
    allowUpdate: network,
  })
  const npmProgress = (d: string) => progress('download', d)
  const nodeTarball = network
    ? await ensureTarball(recipe.nodePackage, dirs.npm, npmProgress)
    : await cachedTarball(recipe.nodePackage, dirs.npm)
  const npmTarball = network
    ? await ensureTarball(recipe.npmPackage, dirs.npm, npmProgress)
    : await cachedTarball(recipe.npmPackage, dirs.npm)
  if (!nodeTarball || !npmTarball) return null

  const busybox = await which('busybox')
  const files = [
    ...LAYER_FILES.map((f) => hashed(f.path, f.mode, f.content)),
    hashed('initrd:/init', 0o755, INIT_SCRIPT),
    hashed('initrd:modules', 0o644, INITRD_MODULES.join('\n')),
    hashed('initrd:/bin/busybox', 0o755, busybox ? await readFile(busybox) : 'missing'),
  ]
  const agentFiles = [
    ...agent.files,
    hashed(`/etc/systemd/system/${AGENT_UNIT_NAME}`, 0o644, agent.unit),
  ]
  const hash = recipeHash({
    recipe,
    kernelPackage: `${kernel.name}=${kernel.version}`,
    nodeTarball: path.basename(nodeTarball),
    npmTarball: path.basename(npmTarball),
    files,
    units: { masked: MASKED_UNITS, enabled: ENABLED_UNITS },
    agentBundleSha256: agent.bundleSha256,
    agentFiles,
  })
  return { recipe, kernel, nodeTarball, npmTarball, agent, hash }
}

/** The image in `dir` (by its manifest), whatever recipe made it. */
export async function readImage(dir: string): Promise<ImageInfo | null> {
  const text = await readFile(path.join(dir, 'manifest.json'), 'utf8').catch(() => null)
  if (text === null) return null
  const m = JSON.parse(text) as Manifest
  return {
    name: m.name,
    hash: m.hash,
    dir,
    kernelPath: path.join(dir, 'vmlinux'),
    initrdPath: path.join(dir, 'initrd.img'),
    rootfsPath: path.join(dir, 'rootfs.img'),
    cmdline: m.cmdline,
    kernelVersion: m.kernel_version,
    sizeBytes: m.size_bytes,
  }
}

/** The built image for the current recipe of `name`, or null when it has not been built. */
export async function findImage(
  name: ImageName,
  imageDir: string,
  opts: { agentDir?: string } = {},
): Promise<ImageInfo | null> {
  const dir = await currentImageDir(name, imageDir, opts)
  return dir ? readImage(dir) : null
}

/**
 * Where the current recipe of `name` is (or would be) built, offline; null when the recipe cannot
 * be pinned without downloading (then no image of it can exist yet either).
 */
export async function currentImageDir(
  name: ImageName,
  imageDir: string,
  opts: { agentDir?: string } = {},
): Promise<string | null> {
  const resolved = await resolveInputs(name, path.resolve(imageDir), opts.agentDir, false, () => {})
  return resolved ? path.join(path.resolve(imageDir), imageDirName(name, resolved.hash)) : null
}

/** Every complete image in `imageDir`, current recipe or not (for listing and garbage collection). */
export async function listImages(imageDir: string): Promise<ImageInfo[]> {
  const names = await readdir(imageDir).catch(() => [] as string[])
  const images: ImageInfo[] = []
  for (const n of names.filter((n) => IMAGE_NAMES.some((i) => n.startsWith(`${i}-`)))) {
    const info = await readImage(path.join(imageDir, n))
    if (info) images.push(info)
  }
  return images
}

async function build(
  r: Resolved,
  imageDir: string,
  busybox: string,
  progress: ProgressFn,
): Promise<ImageInfo> {
  const started = Date.now()
  const dirs = cachePaths(imageDir)
  const finalDir = path.join(imageDir, imageDirName(r.recipe.name, r.hash))
  const tmp = path.join(imageDir, `.tmp-${process.pid}-${path.basename(finalDir)}`)
  await removeBuildDir(tmp)
  await mkdir(tmp)
  try {
    const kernel = await ensureKernel(r.kernel, dirs.kernel, (d) => progress('kernel', d))
    const base = await ensureBaseLayer(r.recipe, dirs.rootfs, (d) => progress('base-layer', d))

    progress('rootfs', 'copying the Debian layer')
    const root = path.join(tmp, 'root')
    await run('cp', ['-a', base, root])
    const inputs = { kernel, nodeTarball: r.nodeTarball, npmTarball: r.npmTarball, agent: r.agent }
    await applyFinalLayer(root, inputs, (d) => progress('rootfs', d))

    progress('initrd', `busybox + ${INITRD_MODULES.join(', ')}`)
    await buildInitrd(kernel, busybox, path.join(tmp, 'initrd.img'), tmp)
    await copyFile(kernel.vmlinux, path.join(tmp, 'vmlinux'))

    progress('filesystem', 'mkfs.ext4')
    const size = await makeRootfsImage(root, path.join(tmp, 'rootfs.img'), r.recipe)
    await removeBuildDir(root)

    const manifest: Manifest = {
      name: r.recipe.name,
      hash: r.hash,
      kernel_version: kernel.release,
      created_at: new Date().toISOString(),
      size_bytes: size,
      cmdline: r.recipe.cmdline,
      kernel_package: `${kernel.name}=${kernel.version}`,
      node: path.basename(r.nodeTarball, '.tgz'),
      recipe_version: RECIPE_VERSION,
      build_seconds: Math.round((Date.now() - started) / 100) / 10,
    }
    await writeFile(path.join(tmp, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n')
    // Read-only: the image is the shared backing file of every workspace overlay.
    for (const f of ['vmlinux', 'initrd.img', 'rootfs.img', 'manifest.json']) {
      await chmod(path.join(tmp, f), 0o444)
    }

    if (await stat(finalDir).catch(() => null)) {
      const old = path.join(imageDir, `.tmp-${process.pid}-old-${path.basename(finalDir)}`)
      await rename(finalDir, old)
      await rename(tmp, finalDir)
      await removeBuildDir(old)
    } else {
      await rename(tmp, finalDir)
    }
    progress('done', `${path.basename(finalDir)} in ${manifest.build_seconds} s`)
    return (await readImage(finalDir))!
  } catch (e) {
    await removeBuildDir(tmp).catch(() => {})
    throw e
  }
}

/**
 * Return the image for the current recipe of `name`, building it when missing (or when `force`).
 * The cached case costs a recipe hash (bundling the agent, reading apt lists): well under a second.
 */
export async function ensureImage(name: ImageName, opts: EnsureImageOptions): Promise<ImageInfo> {
  const progress: ProgressFn = (step, detail) => opts.onProgress?.(step, detail)
  const imageDir = path.resolve(opts.imageDir)
  getRecipe(name)
  if (!opts.force) {
    const found = await findImage(name, imageDir, { agentDir: opts.agentDir })
    if (found) return found
  }
  await mkdir(imageDir, { recursive: true })
  progress('check', 'host tools')
  const { busybox } = await checkBuildHost(imageDir)
  const lockPath = path.join(imageDir, `.lock-${name}`)
  const onWait = (holder: string) =>
    progress('wait', `another build of ${name} holds ${lockPath} (${holder})`)
  return withLock(lockPath, onWait, async () => {
    // The build we waited for may have produced exactly this image.
    if (!opts.force) {
      const found = await findImage(name, imageDir, { agentDir: opts.agentDir })
      if (found) return found
    }
    await removeStaleTemps(imageDir)
    for (const d of Object.values(cachePaths(imageDir))) await removeStaleTemps(d)
    progress('resolve', 'pinning kernel, Node.js and agent versions')
    const r = (await resolveInputs(name, imageDir, opts.agentDir, true, progress))!
    progress(
      'resolve',
      `${r.kernel.name}=${r.kernel.version}, ${path.basename(r.nodeTarball)}, hash ${r.hash.slice(0, 12)}`,
    )
    return build(r, imageDir, busybox, progress)
  })
}
