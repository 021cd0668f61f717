/**
 * Every certificate-header decoder, fed arbitrary text, returns or throws CertificateParseError: never another
 * exception, never a hang. Inputs mix uniform noise with the tokens the decoders look for and with valid values
 * edited by a character or two, which reach far deeper than noise.
 */
import t from 'tap'
import fc from 'fast-check'
import { X509Certificate, createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import {
  assertDerCertificate, certificateEncodings, decodeBase64, decodeCertificate, decodeCertificateList, derFromBase64,
  derFromPem, dersFromPem, parseSfBinary, parseSfBinaryList, percentDecode, presentValue
} from '../../lib/codecs/cert-encodings.js'
import { propertyRunner } from '../helpers/property.js'
import { createCustomPreset } from '../../lib/sources/presets/custom.js'
import { getPreset, presetNames } from '../../lib/sources/presets/index.js'
import type { ForwardedCert, Preset } from '../../lib/sources/presets/types.js'
import { parseXFCC } from '../../lib/codecs/xfcc.js'

const numRuns = process.env.CI ? 100_000 : 10_000
t.setTimeout(process.env.CI ? 1_200_000 : 300_000)

const capture = JSON.parse(readFileSync(new URL('../fixtures/proxies/nginx/alice.json', import.meta.url), 'utf8'))
const pem: string = capture.cert.pem
const cert = new X509Certificate(pem)
const b64 = cert.raw.toString('base64')
const hashHex = createHash('sha256').update(cert.raw).digest('hex')

const { parsesOrRefuses, timed } = propertyRunner(numRuns)

// Valid values each decoder meets in practice, to be edited.
const VALID = [
  pem, pem.replaceAll('\n', ' ').trim(), encodeURIComponent(pem), b64, `:${b64}:`, `:${b64}:, :${b64}:`, `${b64},${b64}`,
  `By=spiffe://a/b;Hash=${hashHex};Cert="${encodeURIComponent(pem)}";Subject="CN=a,O=b";URI=spiffe://a/c;DNS=x.example`,
  `Hash=${hashHex};URI=spiffe://a/b,Hash=${hashHex};Subject="";URI=`,
  'CN=alice,O=Example Corp,C=US', '/C=US/O=Example Corp/CN=alice', 'NotBefore=2023-09-21T01:50:17Z;NotAfter=2024-09-20T01:50:17Z',
  '2022-07-01T18:05:09+00:00', '00:a1:b2', 'SUCCESS', 'FAILED:unable to verify the first certificate', 'NONE', '0', '1', '10', 'true', 'false',
  hashHex, 'dXJuOng='
]
const TOKENS = [
  '-----BEGIN CERTIFICATE-----', '-----END CERTIFICATE-----', '-----BEGIN%20CERTIFICATE-----', '%0A', '%2B', '%3D', '%', '%C3',
  ':', ',', ';', '=', '"', '\\"', '\\', ' ', '\t', '\n', '+', '/', '==', 'A', 'MII', b64.slice(0, 40), b64,
  'Cert=', 'Chain=', 'Hash=', 'By=', 'Subject=', 'URI=', 'DNS=', 'spiffe://example.org/x', '(null)', '-', '{http.x}', '%{X}s', '%[x]',
  'CN=', 'O=', '/CN=', '+', '#', 'NotBefore=', ';NotAfter=', 'T', 'Z', '2023-', '\u00c3\u00bc', '\u00ff', '\u0000', '\ud800'
]

const edit = fc.record({ at: fc.nat(), drop: fc.nat({ max: 3 }), insert: fc.string({ unit: 'binary', maxLength: 3 }) })
const mutated = fc.tuple(fc.constantFrom(...VALID), fc.array(edit, { maxLength: 3 })).map(([text, edits]) => {
  for (const { at, drop, insert } of edits) {
    const i = at % (text.length + 1)
    text = text.slice(0, i) + insert + text.slice(i + drop)
  }
  return text
})
const tokens = fc.array(fc.oneof(fc.constantFrom(...TOKENS), fc.string({ unit: 'binary', maxLength: 2 })), { maxLength: 20 }).map((a) => a.join(''))
// What node:http can hand over: latin1 code units.
const latin1 = fc.string({ unit: fc.integer({ min: 0, max: 0xff }).map((c) => String.fromCharCode(c)), maxLength: 80 })
const anyText = fc.oneof(
  { arbitrary: fc.string({ unit: 'binary', maxLength: 80 }), weight: 1 },
  { arbitrary: fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 40 }), weight: 1 },
  { arbitrary: latin1, weight: 1 },
  { arbitrary: tokens, weight: 3 },
  { arbitrary: mutated, weight: 4 }
)

/** A preset's headers, each absent or arbitrary, in random case. */
function headersFor (preset: Preset): fc.Arbitrary<Map<string, string>> {
  return fc.tuple(...preset.headers.map(() => fc.option(anyText, { nil: undefined, freq: 3 }))).map((values) => {
    const map = new Map<string, string>()
    preset.headers.forEach((name, i) => { if (values[i] !== undefined) map.set(name, values[i] as string) })
    return map
  })
}

function checkResult (result: ForwardedCert | null | undefined): boolean {
  if (result === null || result === undefined) return true
  if (result.der !== null) assertDerCertificate(result.der, 'der')
  return typeof result.verified === 'boolean' && (result.verified ? result.verifyError === null : true) && Array.isArray(result.chain)
}

t.test('cert-encodings decoders', async (t) => {
  timed(t, 'presentValue never throws', fc.property(anyText, (text) => {
    const v = presentValue(text)
    return v === undefined || (v.length > 0 && text.includes(v))
  }))
  timed(t, 'decodeBase64 (required padding)', fc.property(anyText, (text) => { parsesOrRefuses(() => decodeBase64(text, 'x')) }))
  timed(t, 'decodeBase64 round-trips what it accepts', fc.property(anyText, (text) => {
    const bytes = parsesOrRefuses(() => decodeBase64(text, 'x', 'optional'))
    return bytes === undefined || bytes.toString('base64').replace(/=+$/, '') === text.replace(/=+$/, '')
  }))
  timed(t, 'assertDerCertificate on bytes', fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
    parsesOrRefuses(() => assertDerCertificate(Buffer.from(bytes), 'x'))
  }))
  const decoders: Record<string, (text: string) => unknown> = {
    derFromBase64,
    derFromPem,
    dersFromPem,
    percentDecode: (text) => percentDecode(text, 'x'),
    parseSfBinary: (text) => parseSfBinary(text, 'x'),
    parseSfBinaryList: (text) => parseSfBinaryList(text, 'x')
  }
  for (const [name, fn] of Object.entries(decoders)) {
    timed(t, name, fc.property(anyText, (text) => { parsesOrRefuses(() => fn(text)) }))
  }
  for (const encoding of certificateEncodings) {
    timed(t, `decodeCertificate ${encoding}`, fc.property(anyText, (text) => { parsesOrRefuses(() => decodeCertificate(text, encoding)) }))
    timed(t, `decodeCertificateList ${encoding}`, fc.property(anyText, (text) => { parsesOrRefuses(() => decodeCertificateList(text, encoding)) }))
  }
})

t.test('parseXFCC', async (t) => {
  timed(t, 'parseXFCC', fc.property(anyText, (text) => {
    const elements = parsesOrRefuses(() => parseXFCC(text))
    return elements === undefined || elements.length > 0
  }))
})

t.test('every preset and custom mappings', async (t) => {
  const presets: Preset[] = presetNames.map((name) => getPreset(name) as Preset)
  presets.push(
    createCustomPreset({
      cert: { name: 'x-cert', encoding: 'pem-urlencoded' },
      chain: { name: 'x-chain', encoding: 'rfc9440' },
      subject: { name: 'x-s-dn', encoding: 'dn-rfc4514' },
      issuer: { name: 'x-i-dn', encoding: 'dn-legacy' },
      serial: { name: 'x-serial', encoding: 'decimal' },
      fingerprint: { name: 'x-fp' },
      verified: { header: 'x-verify', success: ['SUCCESS'], none: ['NONE'] }
    }),
    createCustomPreset({ cert: { name: 'x-xfcc', encoding: 'xfcc' }, verified: 'never' }),
    createCustomPreset({ cert: { name: 'x-cert', encoding: 'pem-spaces' }, chain: { name: 'x-chain', encoding: 'der-base64' }, verified: 'present' }),
    createCustomPreset({ subject: { name: 'x-s-dn', encoding: 'dn-legacy' }, serial: { name: 'x-serial' }, verified: 'present' })
  )
  for (const preset of presets) {
    timed(t, `${preset.name} ${preset.headers.join(' ')}`, fc.property(headersFor(preset), (headers) => {
      return checkResult(parsesOrRefuses(() => preset.decode((name) => headers.get(name))))
    }))
  }
})
