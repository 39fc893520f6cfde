import type { Command } from 'commander'
import { action } from '../../action.ts'
import { CliError, progress } from '../../context.ts'
import { loadConfig } from '../../../config/config.ts'

export default (parent: Command) =>
  parent
    .command('build <image>')
    .description('build a guest image (base or dev) into RIGBOX_IMAGE_DIR; cached by recipe')
    .option('--force', 'rebuild even if a cached image matches')
    .action(
      action(async (_cmd, name: string, opts: { force?: boolean }) => {
        if (name !== 'base' && name !== 'dev') throw new CliError('the images are: base, dev')
        const { ensureImage } = await import('../../../images/build.ts')
        const bar = progress(`image ${name}`)
        const image = await ensureImage(name, {
          imageDir: loadConfig().imageDir,
          force: opts.force,
          onProgress: (step, detail) => bar.update(detail ? `${step}: ${detail}` : step),
        })
        bar.done(`image ${name} ready in ${image.dir}`)
      }),
    )
