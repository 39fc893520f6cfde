import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, CliError, print } from '../../context.ts'

export default (parent: Command) =>
  parent
    .command('add [file]')
    .description(
      'register a public key (default ~/.ssh/id_ed25519.pub); synced into running workspaces',
    )
    .option('--name <name>', 'a name for the key', os.hostname())
    .action(
      action(async (cmd, file: string | undefined, opts: { name: string }) => {
        const keyFile = file ?? path.join(os.homedir(), '.ssh', 'id_ed25519.pub')
        let publicKey: string
        try {
          publicKey = fs.readFileSync(keyFile, 'utf8')
        } catch {
          throw new CliError(`cannot read ${keyFile} (make one with ssh-keygen -t ed25519)`)
        }
        const key = unwrap(
          await apiClient().POST('/api/v1/ssh-keys', {
            body: { name: opts.name, public_key: publicKey },
          }),
        )
        print(cmd, key, () => `added ${key.name} (${key.fingerprint})`)
      }),
    )
