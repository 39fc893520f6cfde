// Build (or find) a guest image until `rig image build` exists:
//   tsx scripts/build-image.ts base|dev [--image-dir DIR] [--force] [--agent-dir DIR]
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { ensureImage } from '../src/images/build.ts'
import { IMAGE_NAMES, type ImageName } from '../src/images/recipe.ts'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'image-dir': { type: 'string' },
    'agent-dir': { type: 'string' },
    force: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})

const name = positionals[0] as ImageName | undefined
if (values.help || !name || !IMAGE_NAMES.includes(name)) {
  console.error(
    `usage: tsx scripts/build-image.ts ${IMAGE_NAMES.join('|')} [--image-dir DIR] [--force] [--agent-dir DIR]`,
  )
  process.exit(values.help ? 0 : 2)
}

const dataDir = process.env.RIGBOX_DATA_DIR ?? path.join(os.homedir(), '.rigbox')
const imageDir = values['image-dir'] ?? process.env.RIGBOX_IMAGE_DIR ?? path.join(dataDir, 'images')

const started = Date.now()
const elapsed = () => ((Date.now() - started) / 1000).toFixed(1).padStart(6)
try {
  const image = await ensureImage(name, {
    imageDir,
    force: values.force,
    agentDir: values['agent-dir'],
    onProgress: (step, detail) =>
      console.log(`[${elapsed()}s] ${step}${detail ? `: ${detail}` : ''}`),
  })
  console.log(JSON.stringify(image, null, 2))
} catch (e) {
  console.error(`image build failed: ${(e as Error).message}`)
  process.exit(1)
}
