import path from 'node:path'
import type { Command } from 'commander'
import { action } from '../../action.ts'
import { print, table } from '../../context.ts'
import { loadConfig } from '../../../config/config.ts'

export default (parent: Command) =>
  parent
    .command('gc')
    .description(
      'remove old guest images: those no workspace disk or snapshot sits on (run on the server host)',
    )
    .option('--dry-run', 'only show what would be removed')
    .action(
      action(async (cmd, opts: { dryRun?: boolean }) => {
        const { collectImages } = await import('../../../images/gc.ts')
        const { imageDir, dataDir } = loadConfig()
        const result = await collectImages({
          imageDir,
          dataDir,
          dryRun: opts.dryRun,
          onWait: (holder) => process.stderr.write(`waiting for an image build (${holder})\n`),
        })
        print(cmd, result, () => {
          const gone = opts.dryRun ? 'would go' : 'removed'
          const rows = [
            ...result.removed.map((r) => [path.basename(r.dir), gone, mib(r.bytes), '']),
            ...result.kept.map((k) => [path.basename(k.dir), 'kept', '', k.why]),
          ]
          if (!rows.length) return `no images in ${imageDir}`
          const freed = mib(result.removed.reduce((n, r) => n + r.bytes, 0))
          const summary = `${result.removed.length} ${gone} (${freed} MiB), ${result.kept.length} kept`
          return `${table(['IMAGE', 'ACTION', 'MIB', 'WHY'], rows)}\n${summary}`
        })
      }),
    )

const mib = (bytes: number) => String(Math.round(bytes / 1024 ** 2))
