import path from 'node:path'
import { findImage, readImage, type ImageInfo } from '../images/build.ts'
import { diskInfo } from '../vm/disks.ts'
import type { VmLaunchSpec } from '../vm/types.ts'
import type { WorkspaceSpec } from './types.ts'

async function findBuiltImage(name: string, imageDir: string): Promise<ImageInfo> {
  const image = await findImage(name as ImageInfo['name'], imageDir)
  if (!image) {
    throw Object.assign(
      new Error(`image "${name}" is not built on this node: run \`rig image build ${name}\``),
      { code: 'IMAGE_MISSING' },
    )
  }
  return image
}

/**
 * The image a workspace's disk was made on: its overlay names that base, and booting the
 * overlay on any other base (say, the image rebuilt after an upgrade) would corrupt it. New
 * workspaces get the current image.
 */
async function imageOf(spec: WorkspaceSpec, dir: string, imageDir: string): Promise<ImageInfo> {
  const overlay = path.join(dir, 'disk.qcow2')
  const backing = await diskInfo(overlay).then(
    (d) => d.backingFile,
    () => null,
  )
  if (!backing) return findBuiltImage(spec.image, imageDir)
  const image = await readImage(path.dirname(backing))
  if (!image) {
    throw Object.assign(new Error(`the image this workspace was made on is gone: ${backing}`), {
      code: 'IMAGE_MISSING',
    })
  }
  return image
}

/** What the driver needs to boot a workspace in `dir`. */
export async function launchSpecFor(
  spec: WorkspaceSpec,
  dir: string,
  ipAddress: string,
  imageDir: string,
): Promise<VmLaunchSpec> {
  const image = await imageOf(spec, dir, imageDir)
  return {
    id: spec.id,
    dir,
    image: {
      kernelPath: image.kernelPath,
      initrdPath: image.initrdPath,
      rootfsPath: image.rootfsPath,
      cmdline: image.cmdline,
    },
    memMb: spec.ramMb,
    vcpus: spec.vcpus,
    diskMb: spec.diskMb,
    ipAddress,
  }
}
