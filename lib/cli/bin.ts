#!/usr/bin/env node
import { buffer } from 'node:stream/consumers'
import { main } from './main.js'

main(process.argv.slice(2), {
  stdout: (chunk) => { process.stdout.write(chunk) },
  stderr: (chunk) => { process.stderr.write(chunk) },
  stdin: async () => await buffer(process.stdin),
  env: process.env,
  cwd: process.cwd()
}).then((code) => { process.exitCode = code })
