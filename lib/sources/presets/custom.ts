import {
  bundleEncodings, certificateEncodings, chainEncodings, checkFingerprint, decodeBundle, decodeCertificate, decodeCertificateList,
  presentValue, type BundleEncoding, type CertificateEncoding, type ChainEncoding
} from '../../codecs/cert-encodings.js'
import { ClientCertInvalidOptionError } from '../../errors.js'
import { normalizeFingerprint256, normalizeSerial } from '../../codecs/fingerprint.js'
import { CertificateParseError } from '../../codecs/parse-error.js'
import { dnFromHeader, forwarded, refuseDetailsWithoutCertificate, statusMissing } from './common.js'
import { decodeXfccValue, defaultXfcc, type NormalizedXfcc } from './envoy.js'
import type { CustomHeaderMapping, ForwardedCert, HeaderRead, Preset } from './types.js'

export type { CustomHeaderMapping } from './types.js'

const OPTION = 'proxy.headers'
const MAPPING_KEYS = ['cert', 'chain', 'subject', 'issuer', 'serial', 'fingerprint', 'verified']
const DN_ENCODINGS = ['dn-rfc4514', 'dn-legacy']
const SERIAL_ENCODINGS = ['hex', 'decimal']
// RFC 9110 §5.6.2 token
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const SLASH_DN = new Set(['dn-haproxy', 'dn-slash', 'dn-oneline-unescaped'])

interface Field<E extends string> { name: string, encoding: E }

interface NormalizedMapping {
  cert?: Field<CertificateEncoding | BundleEncoding | 'xfcc'>
  chain?: Field<ChainEncoding>
  subject?: Field<'dn-rfc4514' | 'dn-legacy'>
  issuer?: Field<'dn-rfc4514' | 'dn-legacy'>
  serial?: Field<'hex' | 'decimal'>
  fingerprint?: { name: string }
  verified: 'present' | 'never' | { header: string, success: ReadonlySet<string>, none: ReadonlySet<string> }
}

function fail (path: string, message: string): never {
  throw new ClientCertInvalidOptionError(path, message)
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function checkKeys (value: Record<string, unknown>, allowed: readonly string[], path: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) fail(`${path}.${key}`, `is not an option (allowed: ${allowed.join(', ')})`)
  }
}

function headerName (value: unknown, path: string): string {
  if (typeof value !== 'string' || !HEADER_NAME.test(value)) fail(path, 'must be an HTTP header name')
  return value.toLowerCase()
}

function field<E extends string> (value: unknown, path: string, encodings: readonly string[], defaultEncoding?: E): Field<E> {
  if (!isObject(value)) fail(path, 'must be an object { name, encoding }')
  checkKeys(value, ['name', 'encoding'], path)
  const name = headerName(value.name, `${path}.name`)
  const encoding = value.encoding === undefined ? defaultEncoding : value.encoding
  if (typeof encoding === 'string' && SLASH_DN.has(encoding)) {
    fail(`${path}.encoding`, 'HAProxy\'s ssl_c_s_dn slash form escapes nothing, so a "/" or "=" inside a value cannot be told ' +
      'from a separator: forward ssl_c_s_dn(,0,rfc2253) as \'dn-rfc4514\', or the certificate (ssl_c_der,base64) as \'der-base64\'')
  }
  if (typeof encoding !== 'string' || !encodings.includes(encoding)) fail(`${path}.encoding`, `must be one of ${encodings.join(', ')}`)
  return { name, encoding: encoding as E }
}

function statusValues (value: unknown, path: string, required: boolean): Set<string> {
  if (value === undefined && !required) return new Set()
  if (!Array.isArray(value) || (required && value.length === 0)) fail(path, `must be ${required ? 'a non-empty' : 'an'} array of strings`)
  for (const v of value) {
    if (typeof v !== 'string' || presentValue(v) !== v) fail(path, 'must hold non-empty strings without surrounding spaces that do not read as absent')
  }
  return new Set(value as string[])
}

function verifiedMapping (value: unknown): NormalizedMapping['verified'] {
  const path = `${OPTION}.verified`
  if (value === 'present' || value === 'never') return value
  if (!isObject(value)) fail(path, 'must be \'present\', \'never\' or { header, success, none? }')
  checkKeys(value, ['header', 'success', 'none'], path)
  const header = headerName(value.header, `${path}.header`)
  const success = statusValues(value.success, `${path}.success`, true)
  const none = statusValues(value.none, `${path}.none`, false)
  for (const v of none) if (success.has(v)) fail(`${path}.none`, 'shares a value with success')
  return { header, success, none }
}

function normalize (mapping: unknown): NormalizedMapping {
  if (!isObject(mapping)) fail(OPTION, 'must be an object')
  checkKeys(mapping, MAPPING_KEYS, OPTION)
  if (mapping.verified === undefined) fail(`${OPTION}.verified`, 'is required: say how the proxy reports verification (a status header, \'present\' or \'never\')')
  const m: NormalizedMapping = { verified: verifiedMapping(mapping.verified) }
  if (mapping.cert !== undefined) m.cert = field(mapping.cert, `${OPTION}.cert`, [...certificateEncodings, ...bundleEncodings, 'xfcc'])
  if (mapping.chain !== undefined) m.chain = field(mapping.chain, `${OPTION}.chain`, chainEncodings)
  if (mapping.subject !== undefined) m.subject = field(mapping.subject, `${OPTION}.subject`, DN_ENCODINGS)
  if (mapping.issuer !== undefined) m.issuer = field(mapping.issuer, `${OPTION}.issuer`, DN_ENCODINGS)
  if (mapping.serial !== undefined) m.serial = field(mapping.serial, `${OPTION}.serial`, SERIAL_ENCODINGS, 'hex')
  if (mapping.fingerprint !== undefined) {
    if (!isObject(mapping.fingerprint)) fail(`${OPTION}.fingerprint`, 'must be an object { name }')
    checkKeys(mapping.fingerprint, ['name'], `${OPTION}.fingerprint`)
    m.fingerprint = { name: headerName(mapping.fingerprint.name, `${OPTION}.fingerprint.name`) }
  }

  if (m.cert === undefined && m.subject === undefined) fail(OPTION, 'needs cert (the whole certificate) or subject')
  if (m.chain !== undefined && m.cert === undefined) fail(`${OPTION}.chain`, 'needs cert')
  if (m.chain !== undefined && (bundleEncodings as readonly string[]).includes(m.cert!.encoding)) {
    fail(`${OPTION}.chain`, `cannot be combined with cert encoding '${m.cert!.encoding}': that header carries the chain`)
  }
  if (m.issuer !== undefined && m.subject === undefined) fail(`${OPTION}.issuer`, 'needs subject')
  if (m.serial !== undefined && m.subject === undefined) fail(`${OPTION}.serial`, 'needs subject')
  if (m.cert?.encoding === 'xfcc') {
    for (const key of ['chain', 'subject', 'issuer', 'serial', 'fingerprint'] as const) {
      if (m[key] !== undefined) fail(`${OPTION}.${key}`, 'cannot be combined with cert encoding \'xfcc\': XFCC carries it')
    }
  }
  return m
}

function headerNames (m: NormalizedMapping): string[] {
  const names = [m.cert, m.chain, m.subject, m.issuer, m.serial, m.fingerprint].flatMap((f) => f === undefined ? [] : [f.name])
  if (typeof m.verified === 'object') names.push(m.verified.header)
  if (new Set(names).size !== names.length) fail(OPTION, 'names the same header twice')
  return names
}

/**
 * A preset for a proxy without one, from `proxy.headers` (see `CustomHeaderMapping`). The mapping is checked
 * and copied here, at registration: a wrong or contradictory one throws `ClientCertInvalidOptionError`
 * naming the option. Decoding: the certificate header when it carries a value; a mapping with `cert` never
 * falls back to its name headers (arriving without the certificate they are refused: the certificate was
 * lost on the way); a mapping without `cert` reads the subject header with issuer, serial and fingerprint
 * (an absent subject beside any of them is an empty name, as proxies send it); else no certificate. Then the
 * verdict as `verified` says. `xfcc` (`proxy.xfcc`) is only for a `cert` of encoding `xfcc`, which is read
 * as the `envoy` preset reads its header.
 */
export function createCustomPreset (mapping: CustomHeaderMapping, xfcc?: NormalizedXfcc): Preset {
  const m = normalize(mapping)
  if (xfcc !== undefined && m.cert?.encoding !== 'xfcc') fail('proxy.xfcc', 'applies to preset \'envoy\' or to proxy.headers.cert with encoding \'xfcc\'')
  const xfccOptions = xfcc ?? defaultXfcc
  const headers = Object.freeze(headerNames(m))
  // A chain of comma-separated members is an RFC 9110 list, which may arrive over several field lines.
  const listHeaders = m.chain !== undefined && (m.chain.encoding === 'der-base64' || m.chain.encoding === 'rfc9440') ? [m.chain.name] : []

  return Object.freeze({
    name: 'custom',
    headers,
    listHeaders: Object.freeze(listHeaders),
    proxyVerifies: m.verified !== 'never',
    decode (read: HeaderRead): ForwardedCert | null {
      const cert = take(m.cert, read)
      const chain = take(m.chain, read)
      const subject = take(m.subject, read)
      const issuer = take(m.issuer, read)
      const serial = take(m.serial, read)
      const fingerprint = take(m.fingerprint, read)
      const status = typeof m.verified === 'object' ? presentValue(read(m.verified.header)) : undefined

      let result: ForwardedCert
      if (cert !== undefined) {
        const { encoding } = cert.field
        if (encoding === 'xfcc') {
          result = decodeXfccValue(cert.value, xfccOptions)
        } else if (encoding === 'pem-chain' || encoding === 'pem-urlencoded-chain') {
          const bundle = decodeBundle(cert.value, encoding)
          result = forwarded(bundle.der, bundle.chain, true, null)
          if (fingerprint !== undefined) checkFingerprint(bundle.der, fingerprint.value, 'certificate fingerprint')
        } else {
          const der = decodeCertificate(cert.value, encoding)
          result = forwarded(der, chain === undefined ? [] : decodeCertificateList(chain.value, chain.field.encoding), true, null)
          if (fingerprint !== undefined) checkFingerprint(der, fingerprint.value, 'certificate fingerprint')
        }
      } else if (m.cert !== undefined) {
        refuseDetailsWithoutCertificate(m.cert.name, [chain, subject, issuer, serial, fingerprint].map((f) => f?.value))
        return null
      } else if ((subject ?? issuer ?? serial ?? fingerprint) !== undefined) {
        result = forwarded(null, [], true, null)
        // Proxies send an empty subject as no header (nginx), `(null)` (Apache) or '' (HAProxy).
        result.subjectRDNs = subject === undefined ? [] : dnFromHeader(subject.value, subject.field.encoding)
        if (issuer !== undefined) result.issuerRDNs = dnFromHeader(issuer.value, issuer.field.encoding)
        if (serial !== undefined) result.serialNumber = normalizeSerial(serial.value, serial.field.encoding)
        if (fingerprint !== undefined) result.fingerprint256 = normalizeFingerprint256(fingerprint.value)
      } else {
        return null
      }

      if (m.verified === 'present') return result
      if (m.verified === 'never') return { ...result, verified: false, verifyError: null }
      if (status === undefined) throw statusMissing(m.verified.header)
      if (m.verified.none.has(status)) throw new CertificateParseError('verify status says no certificate beside a certificate')
      const verified = m.verified.success.has(status)
      return { ...result, verified, verifyError: verified ? null : status }
    }
  })
}

/** A configured header's field and its value, when both exist. */
function take<F extends { name: string }> (field: F | undefined, read: HeaderRead): { field: F, value: string } | undefined {
  if (field === undefined) return undefined
  const value = presentValue(read(field.name))
  return value === undefined ? undefined : { field, value }
}
