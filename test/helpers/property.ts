import type { Test } from 'tap'
import fc from 'fast-check'
import { performance } from 'node:perf_hooks'
import { CertificateParseError } from '../../lib/codecs/parse-error.js'

/**
 * Helpers for "returns or refuses" properties: `parsesOrRefuses` accepts a CertificateParseError as an answer
 * and lets any other exception fail the property; `timed` runs a property and reports how long it took (a slow
 * codec shows up in the output) and how many inputs were accepted (a generator that never gets past the first
 * check shows up too).
 */
export function propertyRunner (numRuns: number) {
  let accepted = 0
  let refused = 0
  return {
    parsesOrRefuses<T> (fn: () => T): T | undefined {
      try {
        const result = fn()
        accepted++
        return result
      } catch (err) {
        if (err instanceof CertificateParseError) {
          refused++
          return undefined
        }
        throw err
      }
    },
    timed (t: Test, name: string, property: fc.IProperty<any>, runs = numRuns): void {
      accepted = refused = 0
      const start = performance.now()
      fc.assert(property, { numRuns: runs })
      const ms = performance.now() - start
      const mix = accepted + refused > 0 ? `; ${accepted} accepted, ${refused} refused` : ''
      t.comment(`${name}: ${runs} runs in ${ms.toFixed(0)} ms (${(ms * 1000 / runs).toFixed(1)} µs/run)${mix}`)
      t.pass(name)
    }
  }
}
