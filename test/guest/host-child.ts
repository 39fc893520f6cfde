// A host process for the recovery tests: connects, starts a large guest→host transfer on `bulk`
// and reports progress, so that the test can SIGKILL it mid-transfer.
// usage: host-child.ts <agent.sock> <bulk.sock> exec|read [file]
import { GuestChannel } from '../../src/guest/index.ts'

const [agentSock, bulkSock, kind, file] = process.argv.slice(2)
const REPORT_AFTER = 8 << 20

async function main(): Promise<void> {
  const ch = new GuestChannel()
  await ch.connect({ agentSock, bulkSock, timeoutMs: 30_000 })
  let received = 0
  let reported = false
  const progress = (n: number): void => {
    received += n
    if (!reported && received >= REPORT_AFTER) {
      reported = true
      process.stdout.write(`progress ${received}\n`)
    }
  }
  if (kind === 'exec') {
    await ch.exec(
      { command: 'head -c 4000000000 /dev/zero' },
      {
        onStarted: (s) => process.stdout.write(`started pid=${s.pid}\n`),
        onStdout: (c) => progress(c.length),
      },
    )
  } else {
    const { stream } = await ch.readFileStream(file, { maxBytes: 2 ** 40 })
    for await (const c of stream) progress((c as Buffer).length)
  }
  process.stdout.write('transfer finished (the test should have killed us before)\n')
}

main().catch((e: unknown) => {
  process.stderr.write(`host-child: ${String(e)}\n`)
  process.exit(1)
})
