#!/usr/bin/env node
import { buffer } from 'node:stream/consumers'
import { main } from './main.js'

interface Output { write: (chunk: string) => void, settled: (then: (firstError: NodeJS.ErrnoException | null) => void) => void }

/**
 * A standard stream that may go away mid-output. The first error is kept (later writes only report the
 * stream as destroyed) and nothing more is written; `settled` calls back once every write has finished.
 */
function output (stream: NodeJS.WriteStream): Output {
  let firstError: NodeJS.ErrnoException | null = null
  const failed = (error: Error | null | undefined): void => { firstError ??= error ?? null }
  // Without a listener, a closed pipe would end the process with a stack trace.
  stream.on('error', failed)
  return {
    write: (chunk) => { if (firstError === null) stream.write(chunk, failed) },
    settled: (then) => { stream.write('', (error) => { failed(error); then(firstError) }) }
  }
}

const stdout = output(process.stdout)
const stderr = output(process.stderr)

main(process.argv.slice(2), {
  stdout: stdout.write,
  stderr: stderr.write,
  stdin: async () => await buffer(process.stdin),
  env: process.env,
  cwd: process.cwd(),
  stopped: () => {
    const controller = new AbortController()
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => { controller.abort() })
    return controller.signal
  }
}).then((code) => {
  stdout.settled((error) => {
    // A reader that closed the pipe (`inspect … | head -1`) has what it wanted: the exit code stays the
    // command's own. Any other failure (a full disk behind `> file`) left the output incomplete.
    if (error === null || error.code === 'EPIPE') {
      process.exitCode = code
      return
    }
    stderr.write(`fastify-client-cert: cannot write the output: ${error.message}\n`)
    process.exitCode = 1
  })
})
