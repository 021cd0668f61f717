/**
 * The four proxies we can run, replayed from byte-exact captures (test/fixtures/proxies, copied from the proxy
 * lab; see its FINDINGS.md): what node:http handed the app behind nginx 1.22, Apache 2.4, HAProxy 2.6 and
 * Caddy 2.6 for each client certificate, including clients that sent every certificate header themselves.
 */
import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { formatDN } from '../../lib/codecs/dn.js'
import { CertificateParseError } from '../../lib/codecs/parse-error.js'
import { createCustomPreset } from '../../lib/sources/presets/custom.js'
import { getPreset } from '../../lib/sources/presets/index.js'
import type { CustomHeaderMapping, ForwardedCert, HeaderRead, Preset } from '../../lib/sources/presets/types.js'

interface Capture {
  file: string
  proxy: 'nginx' | 'apache' | 'haproxy' | 'caddy'
  case: string
  spoofed: boolean
  pem: string | null
  subject: string | null
  serial: string | null
  fingerprint256: string | null
  rawHeaders: string[]
}

const PROXIES = ['nginx', 'apache', 'haproxy', 'caddy'] as const
const dir = new URL('../fixtures/proxies/', import.meta.url)

function load (): Capture[] {
  const captures: Capture[] = []
  for (const proxy of PROXIES) {
    for (const file of readdirSync(new URL(`${proxy}/`, dir)).filter((f) => f.endsWith('.json')).sort()) {
      const json = JSON.parse(readFileSync(new URL(`${proxy}/${file}`, dir), 'utf8'))
      captures.push({
        file: `${proxy}/${file}`,
        proxy,
        case: json.case,
        spoofed: json.client.spoofed_headers.length > 0,
        pem: json.cert?.pem ?? null,
        subject: json.cert?.openssl?.subject_rfc2253_utf8 ?? null,
        serial: json.cert?.x509?.serialNumber ?? null,
        fingerprint256: json.cert?.x509?.fingerprint256 ?? null,
        rawHeaders: json.upstream.node.rawHeaders
      })
    }
  }
  return captures
}

const captures = load()

/** `read` as the plugin builds it from `rawHeaders`: names case-insensitive, a repeated header refused. */
function reader (rawHeaders: readonly string[]): HeaderRead {
  const values = new Map<string, string>()
  const repeated = new Set<string>()
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase()
    if (values.has(name)) repeated.add(name)
    values.set(name, rawHeaders[i + 1])
  }
  return (name) => {
    if (repeated.has(name)) throw new Error(`repeated header ${name}`)
    return values.get(name)
  }
}

function header (capture: Capture, name: string): string | undefined {
  return reader(capture.rawHeaders)(name)
}

// The header the lab configured for the whole certificate, and the name the preset reads it under.
const LAB_CERT_HEADER: Record<Capture['proxy'], string> = {
  nginx: 'x-ssl-client-escaped-cert',
  apache: 'x-ssl-client-cert',
  haproxy: 'x-ssl-client-der',
  caddy: 'x-ssl-client-cert-der-b64'
}
const PRESET_CERT_HEADER = 'x-ssl-client-cert'

/**
 * The request as the same proxy configured per the preset would send it: the lab's certificate header under the
 * preset's name. A proxy that sets a header replaces the client's header of that name (FINDINGS.md §11, checked
 * for all four), so a client's own `X-SSL-Client-Cert`, which the lab let through, goes.
 */
function asConfiguredForPreset (capture: Capture): string[] {
  const lab = LAB_CERT_HEADER[capture.proxy]
  const out: string[] = []
  for (let i = 0; i < capture.rawHeaders.length; i += 2) {
    const name = capture.rawHeaders[i].toLowerCase()
    if (name === PRESET_CERT_HEADER && lab !== PRESET_CERT_HEADER) continue
    out.push(name === lab ? PRESET_CERT_HEADER : capture.rawHeaders[i], capture.rawHeaders[i + 1])
  }
  return out
}

/** The verdict the capture's own status headers state. */
function capturedVerdict (capture: Capture): { verified: boolean, verifyError: string | null } {
  switch (capture.proxy) {
    case 'nginx':
    case 'apache': {
      const status = header(capture, 'x-ssl-client-verify') as string
      return status === 'SUCCESS' ? { verified: true, verifyError: null } : { verified: false, verifyError: status.replace(/^FAILED:/, '') }
    }
    case 'haproxy': {
      const status = header(capture, 'x-ssl-client-verify') as string
      return status === '0' ? { verified: true, verifyError: null } : { verified: false, verifyError: status }
    }
    case 'caddy':
      return { verified: true, verifyError: null }
  }
}

function decodeOrRefuse (preset: Preset, rawHeaders: readonly string[]): ForwardedCert | null | CertificateParseError {
  try {
    return preset.decode(reader(rawHeaders))
  } catch (err) {
    if (err instanceof CertificateParseError) return err
    throw err
  }
}

const derOf = (pem: string): Buffer => new X509Certificate(pem).raw

t.test('the copied captures are complete', async (t) => {
  for (const proxy of PROXIES) {
    const cases = captures.filter((c) => c.proxy === proxy).map((c) => c.case)
    t.same(cases, ['alice', 'multirdn', 'nocert', 'nocn', 'san', 'spoof-alice', 'twoou', 'utf8'], proxy)
  }
})

t.test('presets over every capture, as a proxy configured per the preset sends it', async (t) => {
  for (const capture of captures) {
    const result = getPreset(capture.proxy)?.decode(reader(asConfiguredForPreset(capture)))
    if (capture.pem === null) {
      t.equal(result, null, `${capture.file}: no certificate`)
      continue
    }
    t.same(result, { der: derOf(capture.pem), chain: [], ...capturedVerdict(capture) }, `${capture.file}: the certificate, verdict as captured`)
    t.equal(result?.verified, true, `${capture.file}: every certificate here was verified`)
  }
})

t.test('spoofed headers never become a certificate', async (t) => {
  const spoofs = captures.filter((c) => c.spoofed)
  t.equal(spoofs.length, 4)
  for (const capture of spoofs) {
    const proxyDer = derOf(capture.pem as string)
    const preset = getPreset(capture.proxy) as Preset
    // Configured per the preset: the proxy's own value wins.
    t.same(preset.decode(reader(asConfiguredForPreset(capture)))?.der, proxyDer, `${capture.file}: the proxy's certificate`)

    // Exactly as captured, where the lab set other names and let the client's X-SSL-Client-Cert through
    // (all but Apache, whose lab name is the preset's): SPOOFED is refused, never read as a certificate.
    const raw = decodeOrRefuse(preset, capture.rawHeaders)
    if (capture.proxy === 'apache') {
      t.same(raw !== null && !(raw instanceof CertificateParseError) ? raw.der : raw, proxyDer, `${capture.file}: Apache overwrote it`)
    } else {
      t.equal(header(capture, PRESET_CERT_HEADER), 'SPOOFED', `${capture.file}: the client's header passed through the lab proxy`)
      t.ok(raw instanceof CertificateParseError, `${capture.file}: and is refused`)
    }
    // Every header name the client spoofed that a preset reads, decoded by every preset that reads it.
    for (const name of ['nginx', 'apache', 'haproxy', 'caddy', 'envoy', 'traefik', 'aws-alb', 'gcp', 'cloudflare', 'azure', 'rfc9440']) {
      const other = getPreset(name) as Preset
      const got = decodeOrRefuse(other, capture.rawHeaders)
      const fromSpoof = got !== null && !(got instanceof CertificateParseError) && (got.der === null || !got.der.equals(proxyDer))
      t.notOk(fromSpoof, `${capture.file} through ${name}: nothing taken from SPOOFED`)
    }
  }
})

/** Custom mappings naming exactly what each lab proxy sent: the captures decode byte for byte, no renaming. */
const LAB_MAPPINGS: Record<Capture['proxy'], { cert: CustomHeaderMapping, dn?: CustomHeaderMapping, legacy?: CustomHeaderMapping }> = {
  nginx: {
    cert: {
      cert: { name: 'X-SSL-Client-Escaped-Cert', encoding: 'pem-urlencoded' },
      verified: { header: 'X-SSL-Client-Verify', success: ['SUCCESS'], none: ['NONE'] }
    },
    dn: {
      subject: { name: 'X-SSL-Client-S-DN', encoding: 'dn-rfc4514' },
      issuer: { name: 'X-SSL-Client-I-DN', encoding: 'dn-rfc4514' },
      serial: { name: 'X-SSL-Client-Serial' },
      verified: { header: 'X-SSL-Client-Verify', success: ['SUCCESS'], none: ['NONE'] }
    },
    legacy: {
      subject: { name: 'X-SSL-Client-S-DN-Legacy', encoding: 'dn-legacy' },
      issuer: { name: 'X-SSL-Client-I-DN-Legacy', encoding: 'dn-legacy' },
      verified: { header: 'X-SSL-Client-Verify', success: ['SUCCESS'], none: ['NONE'] }
    }
  },
  apache: {
    cert: {
      cert: { name: 'X-SSL-Client-Cert', encoding: 'pem-spaces' },
      chain: { name: 'X-SSL-Client-Cert-Chain-0', encoding: 'pem-spaces' },
      verified: { header: 'X-SSL-Client-Verify', success: ['SUCCESS'], none: ['NONE'] }
    },
    dn: {
      subject: { name: 'X-SSL-Client-S-DN', encoding: 'dn-rfc4514' },
      issuer: { name: 'X-SSL-Client-I-DN', encoding: 'dn-rfc4514' },
      serial: { name: 'X-SSL-Client-M-Serial' },
      verified: { header: 'X-SSL-Client-Verify', success: ['SUCCESS'], none: ['NONE'] }
    }
  },
  haproxy: {
    cert: {
      cert: { name: 'x-ssl-client-der', encoding: 'der-base64' },
      chain: { name: 'x-ssl-client-chain-der', encoding: 'der-base64' },
      verified: { header: 'x-ssl-client-verify', success: ['0'] }
    },
    dn: {
      subject: { name: 'x-ssl-client-s-dn-rfc2253', encoding: 'dn-rfc4514' },
      issuer: { name: 'x-ssl-client-i-dn-rfc2253', encoding: 'dn-rfc4514' },
      serial: { name: 'x-ssl-client-serial' },
      verified: { header: 'x-ssl-client-verify', success: ['0'] }
    }
  },
  caddy: {
    cert: {
      cert: { name: 'X-Ssl-Client-Cert-Der-B64', encoding: 'der-base64' },
      fingerprint: { name: 'X-Ssl-Client-Fingerprint' },
      verified: 'present'
    }
  }
}

t.test('custom mappings of the lab headers, byte for byte', async (t) => {
  for (const capture of captures) {
    const mappings = LAB_MAPPINGS[capture.proxy]
    const whole = createCustomPreset(mappings.cert).decode(reader(capture.rawHeaders))
    if (capture.pem === null) {
      t.equal(whole, null, `${capture.file}: no certificate`)
    } else {
      t.same(whole?.der, derOf(capture.pem), `${capture.file}: whole certificate`)
      t.equal(whole?.verified, true, `${capture.file}: verified`)
    }

    for (const [kind, mapping] of [['rfc 2253', mappings.dn], ['legacy', mappings.legacy]] as const) {
      if (mapping === undefined) continue
      const dn = createCustomPreset(mapping).decode(reader(capture.rawHeaders))
      if (capture.pem === null) {
        t.equal(dn, null, `${capture.file} ${kind}: no certificate`)
        continue
      }
      t.equal(dn?.der, null, `${capture.file} ${kind}`)
      // nocn: an empty subject arrives as no header (nginx), `(null)` (Apache) or '' (HAProxy)
      t.not(dn?.subjectRDNs, undefined, `${capture.file} ${kind}: a subject`)
      t.equal(formatDN(dn?.subjectRDNs ?? []), capture.subject, `${capture.file} ${kind}: subject as openssl -nameopt RFC2253,-esc_msb`)
      t.equal(formatDN(dn?.issuerRDNs ?? []), new X509Certificate(capture.pem).issuer.split('\n').reverse().join(','), `${capture.file} ${kind}: issuer`)
      if (kind === 'rfc 2253') t.equal(dn?.serialNumber, capture.serial, `${capture.file}: serial as Node prints it`)
    }
  }
})
