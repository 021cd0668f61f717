import t from 'tap'
import { createHash } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { formatDN } from '../../lib/codecs/dn.js'
import { ClientCertInvalidOptionError } from '../../lib/errors.js'
import { CertificateParseError } from '../../lib/codecs/parse-error.js'
import { parseTimestamp } from '../../lib/sources/presets/common.js'
import { createCustomPreset } from '../../lib/sources/presets/custom.js'
import { createEnvoyPreset } from '../../lib/sources/presets/envoy.js'
import { getPreset, presetNames } from '../../lib/sources/presets/index.js'
import type { CustomHeaderMapping, ForwardedCert, HeaderRead, Preset } from '../../lib/sources/presets/types.js'
import { getCorpus } from '../helpers/certs.js'
import { opensslName } from '../helpers/openssl.js'

const corpus = await getCorpus()
const { alice, san, utf8, nocn } = corpus.leaves
const intermediate = corpus.intermediate

type Headers = Record<string, string | undefined>

/**
 * A `read` like the plugin's: case-insensitive names. It also fails the test (with an error that is not a
 * CertificateParseError) when a preset reads a header it does not list in `headers`.
 */
function reader (headers: Headers, preset: Preset): HeaderRead {
  const values = new Map<string, string>()
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) values.set(name.toLowerCase(), value)
  return (name) => {
    if (name !== name.toLowerCase() || !preset.headers.includes(name)) throw new Error(`preset read unlisted header ${name}`)
    return values.get(name)
  }
}

function decode (preset: Preset, headers: Headers): ForwardedCert | null {
  return preset.decode(reader(headers, preset))
}

function preset (name: string): Preset {
  const found = getPreset(name)
  if (found === undefined) throw new Error(`no preset ${name}`)
  return found
}

const b64 = (der: Buffer): string => der.toString('base64')
// What node:http hands the app for a header whose bytes are this UTF-8 text: one latin1 code unit per byte.
const asReceived = (text: string): string => Buffer.from(text, 'utf8').toString('latin1')
const sha256 = (der: Buffer): Buffer => createHash('sha256').update(der).digest()
// X509Certificate#fingerprint256 form
const colonSha256 = (der: Buffer): string => sha256(der).toString('hex').toUpperCase().replace(/(..)(?!$)/g, '$1:')
// nginx $ssl_client_escaped_cert: everything but [A-Za-z0-9-] percent-encoded (FINDINGS.md)
const nginxEscape = (pem: string): string =>
  pem.replace(/[^A-Za-z0-9-]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'))
// Apache SSL_CLIENT_CERT: every LF a space; node:http trims the trailing one
const apacheForm = (pem: string): string => pem.replaceAll('\n', ' ').trim()
// Go url.QueryEscape of a base64 body (Traefik up to 2.9.3)
const queryEscape = (text: string): string => text.replaceAll('+', '%2B').replaceAll('/', '%2F').replaceAll('=', '%3D')
// Envoy's urlEncodedPemEncodedPeerCertificate (1.2x): exactly these five replacements
const envoyEncode = (pem: string): string =>
  pem.replaceAll('\n', '%0A').replaceAll(' ', '%20').replaceAll('+', '%2B').replaceAll('/', '%2F').replaceAll('=', '%3D')
// AWS ALB: URL-encoded PEM with +=/ as safe characters
const albEncode = (pem: string): string =>
  encodeURIComponent(pem).replaceAll('%2B', '+').replaceAll('%3D', '=').replaceAll('%2F', '/')

t.test('registry', async (t) => {
  t.same(presetNames, ['nginx', 'apache', 'haproxy', 'caddy', 'envoy', 'traefik', 'aws-alb', 'aws-alb-passthrough', 'gcp', 'cloudflare', 'azure', 'rfc9440'])
  t.ok(Object.isFrozen(presetNames))
  for (const name of presetNames) {
    const p = preset(name)
    t.equal(p.name, name)
    t.ok(Object.isFrozen(p) && Object.isFrozen(p.headers), `${name} is frozen`)
    t.ok(p.headers.length > 0 && p.headers.every((h) => h === h.toLowerCase()), `${name} lists lower-case headers`)
    t.equal(p.proxyVerifies, !['cloudflare', 'azure', 'aws-alb-passthrough'].includes(name), `${name} proxyVerifies`)
    t.equal(decode(p, {}), null, `${name}: no headers, no certificate`)
  }
  for (const name of ['NGINX', 'custom', '__proto__', 'constructor', 'toString', '']) t.equal(getPreset(name), undefined, name)
})

t.test('nginx: URL-encoded PEM and $ssl_client_verify', async (t) => {
  const nginx = preset('nginx')
  const cert = nginxEscape(alice.certPem)
  t.same(decode(nginx, { 'X-SSL-Client-Cert': cert, 'X-SSL-Client-Verify': 'SUCCESS' }), { der: alice.der, chain: [], verified: true, verifyError: null })
  t.same(decode(nginx, { 'X-SSL-Client-Cert': cert, 'X-SSL-Client-Verify': 'FAILED:unable to verify the first certificate' }),
    { der: alice.der, chain: [], verified: false, verifyError: 'unable to verify the first certificate' })
  t.same(decode(nginx, { 'X-SSL-Client-Cert': cert, 'X-SSL-Client-Verify': 'FAILED:' })?.verifyError, 'FAILED:')
  t.equal(decode(nginx, { 'X-SSL-Client-Verify': 'NONE' }), null, 'nginx omits the header without a certificate')
  t.equal(decode(nginx, { 'X-SSL-Client-Verify': 'SUCCESS' }), null, 'a status alone is no certificate')
  t.equal(decode(nginx, { 'X-SSL-Client-Cert': '' }), null)
  const refused: Record<string, Headers> = {
    'NONE beside a certificate': { 'X-SSL-Client-Cert': cert, 'X-SSL-Client-Verify': 'NONE' },
    'status missing': { 'X-SSL-Client-Cert': cert },
    'unknown status': { 'X-SSL-Client-Cert': cert, 'X-SSL-Client-Verify': 'success' },
    'GENEROUS is Apache\'s': { 'X-SSL-Client-Cert': cert, 'X-SSL-Client-Verify': 'GENEROUS' },
    'malformed escape': { 'X-SSL-Client-Cert': cert.replace('%0A', '%0'), 'X-SSL-Client-Verify': 'SUCCESS' },
    'two certificates': { 'X-SSL-Client-Cert': nginxEscape(alice.certPem + san.certPem), 'X-SSL-Client-Verify': 'SUCCESS' },
    spoofed: { 'X-SSL-Client-Cert': 'SPOOFED', 'X-SSL-Client-Verify': 'SUCCESS' }
  }
  for (const [name, headers] of Object.entries(refused)) t.throws(() => decode(nginx, headers), CertificateParseError, name)
})

t.test('apache: PEM with spaces, (null), GENEROUS', async (t) => {
  const apache = preset('apache')
  const cert = apacheForm(alice.certPem)
  t.same(decode(apache, { 'X-SSL-Client-Cert': cert, 'X-SSL-Client-Verify': 'SUCCESS' }), { der: alice.der, chain: [], verified: true, verifyError: null })
  t.same(decode(apache, { 'X-SSL-Client-Cert': cert, 'X-SSL-Client-Verify': 'GENEROUS' }), { der: alice.der, chain: [], verified: false, verifyError: 'GENEROUS' })
  t.same(decode(apache, { 'X-SSL-Client-Cert': cert, 'X-SSL-Client-Verify': 'FAILED:certificate has expired' })?.verifyError, 'certificate has expired')
  t.equal(decode(apache, { 'X-SSL-Client-Cert': '(null)', 'X-SSL-Client-Verify': 'NONE' }), null)
  for (const [name, headers] of Object.entries({
    'NONE beside a certificate': { 'X-SSL-Client-Cert': cert, 'X-SSL-Client-Verify': 'NONE' },
    'status (null)': { 'X-SSL-Client-Cert': cert, 'X-SSL-Client-Verify': '(null)' },
    'unknown status': { 'X-SSL-Client-Cert': cert, 'X-SSL-Client-Verify': 'OK' },
    'text around the PEM': { 'X-SSL-Client-Cert': 'x ' + cert, 'X-SSL-Client-Verify': 'SUCCESS' }
  })) t.throws(() => decode(apache, headers), CertificateParseError, name)
})

t.test('haproxy: ssl_c_used decides presence, ssl_c_verify the verdict', async (t) => {
  const haproxy = preset('haproxy')
  const cert = b64(alice.der)
  const h = (used: string | undefined, verify: string | undefined, c = cert): Headers =>
    ({ 'x-ssl-client-cert': c, 'x-ssl-client-used': used, 'x-ssl-client-verify': verify })
  t.same(decode(haproxy, h('1', '0')), { der: alice.der, chain: [], verified: true, verifyError: null })
  t.same(decode(haproxy, h('1', '10')), { der: alice.der, chain: [], verified: false, verifyError: '10' })
  t.equal(decode(haproxy, h('0', '0', '')), null, 'no certificate: empty der, used 0, verify 0')
  t.equal(decode(haproxy, h('0', '0')), null, 'used 0 is no certificate, whatever else arrives')
  t.equal(decode(haproxy, h('1', '0', '')), null, 'used 1 without a certificate (resumed session) is none')
  t.equal(decode(haproxy, h(undefined, undefined, '')), null)
  for (const [name, headers] of Object.entries({
    'used missing': h(undefined, '0'),
    'verify missing': h('1', undefined),
    'verify not a number': h('1', 'ok'),
    'verify negative': h('1', '-1'),
    'used 2': h('2', '0'),
    'used yes': h('yes', '0', ''),
    'PEM instead of base64': h('1', '0', alice.certPem.replaceAll('\n', ' ')),
    spoofed: h('1', '0', 'SPOOFED')
  })) t.throws(() => decode(haproxy, headers), CertificateParseError, name)
})

t.test('caddy: base64 DER, placeholder when none, presence means verified', async (t) => {
  const caddy = preset('caddy')
  t.same(decode(caddy, { 'X-Ssl-Client-Cert': b64(alice.der) }), { der: alice.der, chain: [], verified: true, verifyError: null })
  t.equal(decode(caddy, { 'X-Ssl-Client-Cert': '{http.request.tls.client.certificate_der_base64}' }), null)
  t.throws(() => decode(caddy, { 'X-Ssl-Client-Cert': 'SPOOFED' }), CertificateParseError)
  t.throws(() => decode(caddy, { 'X-Ssl-Client-Cert': b64(alice.der).slice(1) }), CertificateParseError, 'cut base64')
})

t.test('envoy: XFCC, exactly `hops` elements, Cert/Chain/Hash or one Subject/URI/DNS', async (t) => {
  const envoy = preset('envoy')
  const xfcc = (value: string, p: Preset = envoy) => decode(p, { 'X-Forwarded-Client-Cert': value })
  const hash = (der: Buffer) => sha256(der).toString('hex')
  const cert = (pem: string) => `Cert="${envoyEncode(pem)}"`
  // What Envoy writes for the subject: OpenSSL's RFC 2253 text (UTF-8 as \XX), between quotes, unescaped.
  const subject = (leaf: keyof typeof corpus.leaves) => `Subject="${opensslName(corpus.leaves[leaf].certPath, 'subject', 'RFC2253')}"`

  t.same(xfcc(`By=spiffe://example.org/ns/front;Hash=${hash(alice.der)};${cert(alice.certPem)}`),
    { der: alice.der, chain: [], verified: true, verifyError: null }, 'Cert and matching Hash')
  t.same(xfcc(`Hash=${hash(alice.der)};Chain="${envoyEncode(alice.certPem + intermediate.certPem)}"`),
    { der: alice.der, chain: [intermediate.der], verified: true, verifyError: null }, 'Chain alone: leaf first')
  t.same(xfcc(`${cert(alice.certPem)};Chain="${encodeURIComponent(alice.certPem + intermediate.certPem)}"`),
    { der: alice.der, chain: [intermediate.der], verified: true, verifyError: null }, 'Cert and Chain')
  t.same(xfcc(`By=spiffe://example.org/ns/front;By=https://front.example;Hash=${hash(san.der)};${cert(san.certPem)};${subject('san')};` +
    'URI=spiffe://example.org/ns/prod/sa/api;DNS=api.example.org;DNS=*.svc.example.net')?.der, san.der,
  'Cert beside the Subject, URI and DNS Envoy read out of it (and one By per URI SAN of the proxy)')
  for (const leaf of ['alice', 'tricky', 'utf8', 'multirdn', 'twoou', 'nocn'] as const) {
    const { der, certPem } = corpus.leaves[leaf]
    const uri = leaf === 'nocn' ? 'URI=spiffe://example.org/ns/empty' : 'URI='
    t.same(xfcc(`Hash=${hash(der)};${cert(certPem)};${subject(leaf)};${uri}`)?.der, der, `${leaf}: Envoy's Subject agrees with its Cert`)
  }

  const istio = xfcc(`By=spiffe://cluster.local/ns/default/sa/api;Hash=${hash(san.der)};Subject="CN=api.example.org,O=Example Corp,C=US";` +
    'URI=spiffe://example.org/ns/prod/sa/api')
  t.equal(istio?.der, null)
  t.equal(istio?.verified, true)
  t.equal(formatDN(istio?.subjectRDNs ?? []), 'CN=api.example.org,O=Example Corp,C=US')
  t.same(istio?.san, { dns: [], email: [], uri: ['spiffe://example.org/ns/prod/sa/api'], ip: [] })
  t.equal(istio?.spiffeId, 'spiffe://example.org/ns/prod/sa/api')
  t.equal(istio?.fingerprint256, colonSha256(san.der))
  t.same(xfcc(`Hash=${hash(san.der)};DNS=api.example.org`)?.san, { dns: ['api.example.org'], email: [], uri: [], ip: [] }, 'one DNS SAN alone')

  const sidecar = xfcc(`Hash=${hash(nocn.der)};Subject="";URI=spiffe://example.org/ns/empty`)
  t.same(sidecar?.subjectRDNs, [], 'Subject="" is an empty name')
  t.equal(sidecar?.spiffeId, 'spiffe://example.org/ns/empty')
  const noUri = xfcc(`Hash=${hash(alice.der)};Subject="CN=alice,O=Example Corp,C=US";URI=`)
  t.same(noUri?.san?.uri, [], 'URI= means no URI SAN')
  t.equal(noUri?.spiffeId, null)
  const hashOnly = xfcc(`Hash=${hash(alice.der)}`)
  t.same(Object.keys(hashOnly ?? {}).sort(), ['chain', 'der', 'fingerprint256', 'verified', 'verifyError'], 'unknown fields are left out')
  t.equal(formatDN(xfcc('Subject="CN=J\\C3\\BCrgen,C=DE"')?.subjectRDNs ?? []), 'CN=Jürgen,C=DE', 'BoringSSL escapes UTF-8 as \\XX')
  t.equal(formatDN(xfcc(subject('tricky'))?.subjectRDNs ?? []), opensslName(corpus.leaves.tricky.certPath, 'subject', 'RFC2253,-esc_msb'),
    'a name with " and \\ is read whole: OpenSSL escapes both, so the closing quote is found')

  // Two Envoys: an ingress gateway (SANITIZE_SET) that terminated the client's TLS, then a sidecar (APPEND_FORWARD)
  const twoHops = createEnvoyPreset({ hops: 2, cert: true })
  const gateway = `By=spiffe://example.org/ns/prod/sa/app;Hash=${hash(san.der)};${cert(san.certPem)};URI=spiffe://example.org/ns/prod/sa/api`
  const user = `By=spiffe://example.org/ns/prod/sa/api;Hash=${hash(alice.der)};${cert(alice.certPem)};URI=`
  t.same(xfcc(`${user},${gateway}`, twoHops)?.der, alice.der, 'hops: 2 reads the first element, the one the outermost Envoy wrote')
  t.throws(() => xfcc(gateway, twoHops), { message: 'XFCC holds 1 elements where proxy.xfcc.hops expects 2' }, 'one element where two hops add two')
  t.throws(() => xfcc(`${user},${user},${gateway}`, twoHops), CertificateParseError, 'three elements where two hops add two')
  t.throws(() => xfcc(`${user},${gateway}`), { message: 'XFCC holds 2 elements where proxy.xfcc.hops expects 1' }, 'the default is one element')
  t.throws(() => xfcc(`Hash=${hash(alice.der)};Subject="CN=alice";URI=`, createEnvoyPreset({ hops: 1, cert: true })),
    { message: 'XFCC element has no Cert where proxy.xfcc.cert expects one' }, 'cert: true refuses an element without Cert')

  t.equal(decode(envoy, { 'X-Forwarded-Client-Cert': '' }), null)
  for (const [name, value] of Object.entries({
    'Hash does not match Cert': `Hash=${hash(san.der)};${cert(alice.certPem)}`,
    'Subject does not match Cert': `${cert(alice.certPem)};${subject('san')}`,
    'URI does not match Cert': `${cert(san.certPem)};URI=spiffe://example.org/ns/prod/sa/admin`,
    'URI= beside a Cert that has a URI SAN': `${cert(san.certPem)};URI=`,
    'one URI too many beside Cert': `${cert(san.certPem)};URI=spiffe://example.org/ns/prod/sa/api;URI=spiffe://example.org/ns/admin/sa/root`,
    'DNS does not match Cert': `${cert(san.certPem)};DNS=api.example.org`,
    'Chain does not start with Cert': `${cert(alice.certPem)};Chain="${encodeURIComponent(san.certPem)}"`,
    'Cert holds two certificates': cert(alice.certPem + san.certPem),
    'Cert not URL-encoded PEM': 'Cert="SPOOFED"',
    'Cert malformed escape': 'Cert="%zz"',
    'Hash not a digest': 'Hash=abc',
    'only By': 'By=spiffe://example.org/ns/front',
    'two URI values without Cert': `Hash=${hash(san.der)};URI=https://apps.example/m;URI=spiffe://example.org/ns/admin/sa/root`,
    'URI and DNS without Cert': `Hash=${hash(san.der)};URI=spiffe://example.org/ns/prod/sa/api;DNS=api.example.org`,
    'URI= and DNS without Cert': `Hash=${hash(san.der)};URI=;DNS=admin.example.org`,
    'Subject not a DN': `Hash=${hash(alice.der)};Subject="no equals sign"`,
    'syntax error': 'Hash=a;Hash=b',
    'second element malformed': `Hash=${hash(alice.der)},Cert="x`
  })) t.throws(() => xfcc(value), CertificateParseError, name)
})

t.test('traefik: base64 DER list, URL-escaped or not; Info alone refused', async (t) => {
  const traefik = preset('traefik')
  const header = (value: string | undefined, info?: string) =>
    decode(traefik, { 'X-Forwarded-Tls-Client-Cert': value, 'X-Forwarded-Tls-Client-Cert-Info': info })
  const body = b64(alice.der)
  t.ok(/[+/=]/.test(body), 'the test certificate has characters Traefik used to escape')
  t.same(header(body), { der: alice.der, chain: [], verified: true, verifyError: null }, 'Traefik 2.9.4+: unescaped')
  t.same(header(queryEscape(body)), { der: alice.der, chain: [], verified: true, verifyError: null }, 'Traefik up to 2.9.3: QueryEscape')
  t.same(header(`${body},${b64(intermediate.der)}`), { der: alice.der, chain: [intermediate.der], verified: true, verifyError: null }, 'chain, leaf first')
  t.same(header(`${queryEscape(body)},${queryEscape(b64(intermediate.der))}`)?.chain, [intermediate.der], 'escaped chain')
  const info = encodeURIComponent('Subject="C=US,O=Example Corp,CN=alice";NB="1700000000";NA="1900000000"')
  t.same(header(body, info)?.der, alice.der, 'Info beside the certificate is ignored')
  t.equal(header(undefined), null)
  t.throws(() => header(undefined, info), CertificateParseError, 'Info alone cannot be trusted: unescaped subject')
  t.throws(() => header(`AAAA,${body}`), CertificateParseError, 'an unparseable first certificate is never replaced by the next')
  t.throws(() => header(`${body},AAAA`), CertificateParseError, 'nor skipped when later')
  t.throws(() => header(encodeURIComponent(alice.certPem)), CertificateParseError, 'markers are not expected')
})

t.test('aws-alb: leaf with +=/ raw; the other headers never stand in for it', async (t) => {
  const alb = preset('aws-alb')
  const leaf = albEncode(alice.certPem)
  t.ok(/[+/=]/.test(leaf) && leaf.includes('%0A'), 'the raw +=/ quirk is exercised')
  t.same(decode(alb, { 'X-Amzn-Mtls-Clientcert-Leaf': leaf, 'X-Amzn-Mtls-Clientcert-Subject': 'ignored' }),
    { der: alice.der, chain: [], verified: true, verifyError: null })
  t.same(decode(alb, { 'X-Amzn-Mtls-Clientcert-Leaf': encodeURIComponent(alice.certPem) })?.der, alice.der, 'fully encoded works too')

  // Verify mode sends all five headers together: without the leaf, the others mean it was lost on the way.
  const details: Headers = {
    'X-Amzn-Mtls-Clientcert-Subject': asReceived('CN=Jürgen Ünicode 测试,O=Beispiel GmbH,C=DE'),
    'X-Amzn-Mtls-Clientcert-Issuer': 'CN=Example Intermediate CA,OU=Client Auth,O=Example Corp,C=US',
    'X-Amzn-Mtls-Clientcert-Serial-Number': 'a1b2c3d4e5f60718',
    'X-Amzn-Mtls-Clientcert-Validity': 'NotBefore=2023-09-21T01:50:17Z;NotAfter=2024-09-20T01:50:17Z'
  }
  t.same(decode(alb, { ...details, 'X-Amzn-Mtls-Clientcert-Leaf': leaf })?.der, alice.der, 'the leaf beside its details')
  t.throws(() => decode(alb, details), CertificateParseError, 'all four details without the leaf')
  t.throws(() => decode(alb, { ...details, 'X-Amzn-Mtls-Clientcert-Leaf': '-' }), CertificateParseError, 'beside a placeholder leaf')
  for (const [name, value] of Object.entries(details)) {
    t.throws(() => decode(alb, { [name]: value }), CertificateParseError, `${name} alone`)
  }
  t.throws(() => decode(alb, { 'X-Amzn-Mtls-Clientcert-Leaf': '%zz' }), CertificateParseError, 'leaf malformed')
  t.equal(decode(alb, { 'X-Amzn-Mtls-Clientcert-Leaf': '-' }), null)
  t.equal(decode(alb, { 'X-Amzn-Mtls-Clientcert-Subject': '', 'X-Amzn-Mtls-Clientcert-Serial-Number': '' }), null, 'empty values: no certificate')
})

t.test('gcp: Google\'s mTLS custom headers', async (t) => {
  const gcp = preset('gcp')
  const leaf = `:${b64(alice.der)}:`
  const base = { 'X-Client-Cert-Present': 'true', 'X-Client-Cert-Chain-Verified': 'true', 'X-Client-Cert-Error': '' }
  // ALLOW_INVALID_OR_MISSING_CLIENT_CERT: Google forwards a certificate that failed validation, described, without its leaf.
  const failed = { 'X-Client-Cert-Present': 'true', 'X-Client-Cert-Chain-Verified': 'false', 'X-Client-Cert-Error': 'client_cert_chain_invalid_eku' }
  t.same(decode(gcp, { ...base, 'X-Client-Cert-Leaf': leaf, 'X-Client-Cert-Chain': `:${b64(intermediate.der)}:`, 'X-Client-Cert-Hash': sha256(alice.der).toString('base64').replace(/=+$/, '') }),
    { der: alice.der, chain: [intermediate.der], verified: true, verifyError: null }, 'leaf, chain, matching unpadded base64 hash')

  const described = decode(gcp, {
    ...failed,
    'X-Client-Cert-Hash': sha256(san.der).toString('base64').replace(/=+$/, ''),
    'X-Client-Cert-Serial-Number': '00:a1:b2:c3:d4:e5:f6:07:18',
    'X-Client-Cert-SPIFFE': 'spiffe://example.org/ns/prod/sa/api',
    'X-Client-Cert-URI-SANs': [Buffer.from('https://api.example.org').toString('base64'), Buffer.from('urn:x').toString('base64')].join(','),
    'X-Client-Cert-DNSName-SANs': Buffer.from('api.example.org').toString('base64') + ',' + Buffer.from('*.svc.example.net').toString('base64'),
    'X-Client-Cert-Valid-Not-Before': '2023-09-12T14:55:19+00:00',
    'X-Client-Cert-Valid-Not-After': '2023-10-12T14:55:18+02:00'
  })
  t.equal(described?.der, null)
  t.equal(described?.verified, false)
  t.equal(described?.verifyError, 'client_cert_chain_invalid_eku')
  t.equal(described?.fingerprint256, colonSha256(san.der))
  t.equal(described?.serialNumber, 'A1B2C3D4E5F60718', 'GCP colon hex with the DER sign byte, as Node prints it')
  t.same(described?.san, { dns: ['api.example.org', '*.svc.example.net'], email: [], uri: ['spiffe://example.org/ns/prod/sa/api', 'https://api.example.org', 'urn:x'], ip: [] })
  t.equal(described?.spiffeId, 'spiffe://example.org/ns/prod/sa/api')
  t.equal(described?.notBefore?.toISOString(), '2023-09-12T14:55:19.000Z')
  t.equal(described?.notAfter?.toISOString(), '2023-10-12T12:55:18.000Z')
  const uriOnly = decode(gcp, { ...failed, 'X-Client-Cert-URI-SANs': 'dXJuOng' })
  t.same(uriOnly?.san, { dns: [], email: [], uri: ['urn:x'], ip: [] }, 'unpadded SAN base64')
  t.equal(uriOnly?.spiffeId, null)
  t.throws(() => decode(gcp, { ...base }), CertificateParseError, 'verified without the leaf, nothing else: refused')
  t.throws(() => decode(gcp, { ...base, 'X-Client-Cert-Hash': sha256(san.der).toString('base64'), 'X-Client-Cert-SPIFFE': 'spiffe://example.org/ns/prod/sa/api' }),
    CertificateParseError, 'verified without the leaf, described: refused, never judged on the description')

  t.same(decode(gcp, { ...base, 'X-Client-Cert-Chain-Verified': 'false', 'X-Client-Cert-Error': 'client_cert_chain_invalid_eku', 'X-Client-Cert-Hash': 'G+SrKkjfs6Kom73j7sp+hY6/5kZ+UjPdBDEyiaOUk08' }),
    { der: null, chain: [], verified: false, verifyError: 'client_cert_chain_invalid_eku', fingerprint256: '1B:E4:AB:2A:48:DF:B3:A2:A8:9B:BD:E3:EE:CA:7E:85:8E:BF:E6:46:7E:52:33:DD:04:31:32:89:A3:94:93:4F' },
    'ALLOW_INVALID_OR_MISSING_CLIENT_CERT forwards an invalid one (Google\'s own example values)')
  t.equal(decode(gcp, { ...base, 'X-Client-Cert-Chain-Verified': 'false' })?.verifyError, 'client_cert_chain_verified false')
  t.equal(decode(gcp, { 'X-Client-Cert-Present': 'false', 'X-Client-Cert-Chain-Verified': 'false', 'X-Client-Cert-Error': 'client_cert_not_provided' }), null)
  t.equal(decode(gcp, { 'X-Client-Cert-Present': '', 'X-Client-Cert-Leaf': '' }), null, 'no mTLS on the load balancer: empty values')

  for (const [name, headers] of Object.entries({
    'leaf without present': { 'X-Client-Cert-Leaf': leaf },
    'leaf with present false': { 'X-Client-Cert-Present': 'false', 'X-Client-Cert-Leaf': leaf },
    'present yes': { 'X-Client-Cert-Present': 'yes' },
    'chain-verified missing': { 'X-Client-Cert-Present': 'true', 'X-Client-Cert-Leaf': leaf },
    'chain-verified TRUE': { ...base, 'X-Client-Cert-Chain-Verified': 'TRUE' },
    'leaf not a byte sequence': { ...base, 'X-Client-Cert-Leaf': b64(alice.der) },
    'leaf not DER': { ...base, 'X-Client-Cert-Leaf': ':AAAA:' },
    'chain without leaf': { ...failed, 'X-Client-Cert-Chain': `:${b64(intermediate.der)}:` },
    'chain member not DER': { ...base, 'X-Client-Cert-Leaf': leaf, 'X-Client-Cert-Chain': ':AAAA:' },
    'hash does not match leaf': { ...base, 'X-Client-Cert-Leaf': leaf, 'X-Client-Cert-Hash': sha256(san.der).toString('base64') },
    'invalid SPIFFE ID': { ...failed, 'X-Client-Cert-SPIFFE': 'spiffe://Example.org/x' },
    'SAN not base64': { ...failed, 'X-Client-Cert-DNSName-SANs': 'api.example.org' },
    'SAN not UTF-8': { ...failed, 'X-Client-Cert-URI-SANs': Buffer.from([0xff, 0xfe]).toString('base64') },
    'serial not hex': { ...failed, 'X-Client-Cert-Serial-Number': 'zz' },
    'timestamp malformed': { ...failed, 'X-Client-Cert-Valid-Not-Before': '2023-09-12 14:55:19' },
    'timestamp offset invalid': { ...failed, 'X-Client-Cert-Valid-Not-After': '2023-09-12T14:55:19+24:00' }
  } as Record<string, Headers>)) t.throws(() => decode(gcp, headers), CertificateParseError, name)
})

t.test('cloudflare: DER and SHA-256, never verified by the proxy', async (t) => {
  const cf = preset('cloudflare')
  const hex = sha256(alice.der).toString('hex')
  t.same(decode(cf, { 'Cf-Client-Cert-Der-Base64': b64(alice.der), 'Cf-Client-Cert-Sha256': hex }), { der: alice.der, chain: [], verified: false, verifyError: null })
  t.same(decode(cf, { 'Cf-Client-Cert-Der-Base64': b64(alice.der) })?.der, alice.der, 'hash optional')
  t.throws(() => decode(cf, { 'Cf-Client-Cert-Der-Base64': b64(alice.der), 'Cf-Client-Cert-Sha256': sha256(san.der).toString('hex') }), CertificateParseError, 'mismatch')
  t.throws(() => decode(cf, { 'Cf-Client-Cert-Sha256': hex }), CertificateParseError, 'hash without certificate')
  t.throws(() => decode(cf, { 'Cf-Client-Cert-Der-Base64': 'SPOOFED' }), CertificateParseError)
})

t.test('azure: X-ARR-ClientCert, never verified by the proxy', async (t) => {
  const azure = preset('azure')
  t.same(decode(azure, { 'X-ARR-ClientCert': b64(alice.der) }), { der: alice.der, chain: [], verified: false, verifyError: null })
  t.throws(() => decode(azure, { 'X-ARR-ClientCert': alice.certPem }), CertificateParseError)
})

t.test('rfc9440: strict structured fields', async (t) => {
  const rfc = preset('rfc9440')
  t.same(decode(rfc, { 'Client-Cert': `:${b64(alice.der)}:` }), { der: alice.der, chain: [], verified: true, verifyError: null })
  t.same(decode(rfc, { 'Client-Cert': `:${b64(alice.der)}:`, 'Client-Cert-Chain': `:${b64(intermediate.der)}:, :${b64(corpus.root.der)}:` })?.chain,
    [intermediate.der, corpus.root.der])
  for (const [name, headers] of Object.entries({
    'chain without leaf': { 'Client-Cert-Chain': `:${b64(intermediate.der)}:` },
    'no colons': { 'Client-Cert': b64(alice.der) },
    parameters: { 'Client-Cert': `:${b64(alice.der)}:;a=1` },
    'chain trailing comma': { 'Client-Cert': `:${b64(alice.der)}:`, 'Client-Cert-Chain': `:${b64(intermediate.der)}:,` },
    'leaf not DER': { 'Client-Cert': ':AAAA:' }
  } as Record<string, Headers>)) t.throws(() => decode(rfc, headers), CertificateParseError, name)
})

t.test('placeholders a proxy left unreplaced read as absent', async (t) => {
  for (const placeholder of ['{http.request.tls.client.certificate_der_base64}', '%{SSL_CLIENT_CERT}s', '%[ssl_c_der,base64]', '(null)', '-', '']) {
    for (const name of presetNames) {
      const p = preset(name)
      t.equal(decode(p, Object.fromEntries(p.headers.map((h) => [h, placeholder]))), null, `${name}: ${JSON.stringify(placeholder)}`)
    }
  }
})

t.test('oversized values are decoded (or refused) in linear time', async (t) => {
  const n = 1 << 20
  const huge = ['A'.repeat(n), '-----BEGIN CERTIFICATE-----' + 'A'.repeat(n), '%41'.repeat(n / 3), ':' + 'A'.repeat(n) + ':',
    'Hash=' + 'a'.repeat(n), 'URI=x;'.repeat(n / 6) + 'URI=x', ','.repeat(n), 'true']
  for (const name of presetNames) {
    const p = preset(name)
    for (const value of huge) {
      const start = performance.now()
      try {
        decode(p, Object.fromEntries(p.headers.map((h) => [h, h.endsWith('present') || h.endsWith('used') || h.endsWith('verified') ? value.slice(0, 4) : value])))
      } catch (err) {
        if (!(err instanceof CertificateParseError)) throw err
      }
      const ms = performance.now() - start
      if (ms > 2000) t.fail(`${name}: ${ms.toFixed(0)} ms for a 1 MiB value`)
    }
    t.pass(`${name}: 1 MiB values in linear time`)
  }
})

t.test('a repeated or oversized header: read throws, the preset lets it through', async (t) => {
  const repeated = new Error('repeated header')
  for (const name of presetNames) {
    t.throws(() => preset(name).decode(() => { throw repeated }), repeated, name)
  }
})

t.test('parseTimestamp', async (t) => {
  t.equal(parseTimestamp('2024-02-29T23:59:59Z', 'x').toISOString(), '2024-02-29T23:59:59.000Z', 'leap day')
  t.equal(parseTimestamp('2000-02-29T00:00:00Z', 'x').toISOString(), '2000-02-29T00:00:00.000Z', '400-year leap day')
  t.equal(parseTimestamp('0050-01-01T00:00:00Z', 'x').toISOString(), '0050-01-01T00:00:00.000Z', 'two-digit years are not 1900+')
  t.equal(parseTimestamp('2022-07-01T18:05:09.5-01:30', 'x').toISOString(), '2022-07-01T19:35:09.500Z')
  t.equal(parseTimestamp('2022-07-01T18:05:09.123456789Z', 'x').toISOString(), '2022-07-01T18:05:09.123Z')
  for (const text of ['2023-02-29T00:00:00Z', '1900-02-29T00:00:00Z', '2023-04-31T00:00:00Z', '2023-13-01T00:00:00Z',
    '2023-00-01T00:00:00Z', '2023-01-00T00:00:00Z', '2023-01-01T24:00:00Z', '2023-01-01T00:60:00Z', '2023-01-01T00:00:60Z',
    '2023-01-01T00:00:00+00:60', '2023-01-01T00:00:00', '2023-01-01t00:00:00z', ' 2023-01-01T00:00:00Z', '2023-1-01T00:00:00Z']) {
    t.throws(() => parseTimestamp(text, 'x'), CertificateParseError, text)
  }
})

t.test('custom mapping: validation names the option', async (t) => {
  const invalid = (mapping: unknown, option: string, message?: RegExp) => {
    try {
      createCustomPreset(mapping as CustomHeaderMapping)
      t.fail(`accepted: ${option}`)
    } catch (err) {
      t.ok(err instanceof ClientCertInvalidOptionError, option)
      t.match((err as Error).message, new RegExp(`option ${option.replaceAll('.', '\\.')}:`), option)
      if (message !== undefined) t.match((err as Error).message, message, option)
    }
  }
  const cert = { name: 'X-Cert', encoding: 'pem-urlencoded' }
  invalid(null, 'proxy.headers')
  invalid([], 'proxy.headers')
  invalid({ cert }, 'proxy.headers.verified', /is required/)
  invalid({ cert, verified: 'always' }, 'proxy.headers.verified')
  invalid({ cert, verified: true }, 'proxy.headers.verified')
  invalid({ cert, verified: 'present', extra: 1 }, 'proxy.headers.extra', /allowed: cert, chain/)
  invalid({ verified: 'present' }, 'proxy.headers', /needs cert .* or subject/)
  invalid({ cert: 'x-cert', verified: 'present' }, 'proxy.headers.cert')
  invalid({ cert: { name: 'x-cert' }, verified: 'present' }, 'proxy.headers.cert.encoding', /must be one of pem, pem-urlencoded, pem-spaces, der-base64, rfc9440, pem-chain, pem-urlencoded-chain, xfcc/)
  invalid({ cert: { name: 'x-cert', encoding: 'base64' }, verified: 'present' }, 'proxy.headers.cert.encoding')
  invalid({ cert: { name: 'x cert', encoding: 'pem' }, verified: 'present' }, 'proxy.headers.cert.name')
  invalid({ cert: { name: '', encoding: 'pem' }, verified: 'present' }, 'proxy.headers.cert.name')
  invalid({ cert: { name: 1, encoding: 'pem' }, verified: 'present' }, 'proxy.headers.cert.name')
  invalid({ cert: { ...cert, extra: true }, verified: 'present' }, 'proxy.headers.cert.extra')
  invalid({ cert, chain: { name: 'x-chain', encoding: 'xfcc' }, verified: 'present' }, 'proxy.headers.chain.encoding')
  invalid({ subject: { name: 'x-dn', encoding: 'dn-haproxy' }, verified: 'present' }, 'proxy.headers.subject.encoding', /HAProxy's ssl_c_s_dn slash form/)
  invalid({ subject: { name: 'x-dn', encoding: 'dn-slash' }, verified: 'present' }, 'proxy.headers.subject.encoding', /ambiguous|escapes nothing/)
  invalid({ subject: { name: 'x-dn', encoding: 'pem' }, verified: 'present' }, 'proxy.headers.subject.encoding', /dn-rfc4514, dn-legacy/)
  invalid({ subject: { name: 'x-dn', encoding: 'dn-rfc4514' }, issuer: { name: 'x-idn', encoding: 'dn-oneline-unescaped' }, verified: 'present' }, 'proxy.headers.issuer.encoding')
  invalid({ subject: { name: 'x-dn', encoding: 'dn-rfc4514' }, serial: { name: 'x-s', encoding: 'octal' }, verified: 'present' }, 'proxy.headers.serial.encoding')
  invalid({ cert, fingerprint: 'x-fp', verified: 'present' }, 'proxy.headers.fingerprint')
  invalid({ cert, fingerprint: { name: 'x-fp', algorithm: 'sha1' }, verified: 'present' }, 'proxy.headers.fingerprint.algorithm')
  invalid({ cert, fingerprint: { name: 'x:fp' }, verified: 'present' }, 'proxy.headers.fingerprint.name')
  invalid({ chain: { name: 'x-chain', encoding: 'pem' }, subject: { name: 'x-dn', encoding: 'dn-rfc4514' }, verified: 'present' }, 'proxy.headers.chain', /needs cert/)
  invalid({ cert, issuer: { name: 'x-idn', encoding: 'dn-rfc4514' }, verified: 'present' }, 'proxy.headers.issuer', /needs subject/)
  invalid({ cert, serial: { name: 'x-s' }, verified: 'present' }, 'proxy.headers.serial', /needs subject/)
  for (const key of ['chain', 'subject', 'fingerprint'] as const) {
    const extra = key === 'chain' ? { name: 'x-o', encoding: 'pem' } : key === 'subject' ? { name: 'x-o', encoding: 'dn-rfc4514' } : { name: 'x-o' }
    invalid({ cert: { name: 'x-fcc', encoding: 'xfcc' }, [key]: extra, verified: 'present' }, `proxy.headers.${key}`, /XFCC carries it/)
  }
  invalid({ cert, verified: { header: 'x-v' } }, 'proxy.headers.verified.success', /non-empty array/)
  invalid({ cert, verified: { header: 'x-v', success: [] } }, 'proxy.headers.verified.success')
  invalid({ cert, verified: { header: 'x-v', success: 'SUCCESS' } }, 'proxy.headers.verified.success')
  invalid({ cert, verified: { header: 'x-v', success: [''] } }, 'proxy.headers.verified.success')
  invalid({ cert, verified: { header: 'x-v', success: [' OK'] } }, 'proxy.headers.verified.success')
  invalid({ cert, verified: { header: 'x-v', success: ['(null)'] } }, 'proxy.headers.verified.success')
  invalid({ cert, verified: { header: 'x-v', success: [1] } }, 'proxy.headers.verified.success')
  invalid({ cert, verified: { header: 'x-v', success: ['OK'], none: 'NONE' } }, 'proxy.headers.verified.none', /an array/)
  invalid({ cert, verified: { header: 'x-v', success: ['OK'], none: ['OK'] } }, 'proxy.headers.verified.none', /shares a value/)
  invalid({ cert, verified: { header: 'x v', success: ['OK'] } }, 'proxy.headers.verified.header')
  invalid({ cert, verified: { header: 'x-v', success: ['OK'], failed: ['X'] } }, 'proxy.headers.verified.failed')
  invalid({ cert: { name: 'X-Same', encoding: 'pem' }, verified: { header: 'x-same', success: ['OK'] } }, 'proxy.headers', /same header twice/)
})

t.test('custom mapping: decoding', async (t) => {
  const nginxLike = createCustomPreset({
    cert: { name: 'X-SSL-Client-Escaped-Cert', encoding: 'pem-urlencoded' },
    chain: { name: 'X-SSL-Client-Chain', encoding: 'pem-urlencoded' },
    fingerprint: { name: 'X-SSL-Client-SHA256' },
    subject: { name: 'X-SSL-Client-S-DN', encoding: 'dn-rfc4514' },
    verified: { header: 'X-SSL-Client-Verify', success: ['SUCCESS'], none: ['NONE'] }
  })
  t.equal(nginxLike.name, 'custom')
  t.same(nginxLike.headers, ['x-ssl-client-escaped-cert', 'x-ssl-client-chain', 'x-ssl-client-s-dn', 'x-ssl-client-sha256', 'x-ssl-client-verify'])
  t.equal(nginxLike.proxyVerifies, true)
  t.ok(Object.isFrozen(nginxLike) && Object.isFrozen(nginxLike.headers))
  const cert = nginxEscape(alice.certPem)
  t.same(decode(nginxLike, { 'x-ssl-client-escaped-cert': cert, 'x-ssl-client-verify': 'SUCCESS' }), { der: alice.der, chain: [], verified: true, verifyError: null })
  t.same(decode(nginxLike, { 'x-ssl-client-escaped-cert': cert, 'x-ssl-client-chain': nginxEscape(intermediate.certPem), 'x-ssl-client-sha256': sha256(alice.der).toString('hex'), 'x-ssl-client-verify': 'FAILED:x' }),
    { der: alice.der, chain: [intermediate.der], verified: false, verifyError: 'FAILED:x' }, 'custom verify errors are the raw value')
  t.equal(decode(nginxLike, { 'x-ssl-client-verify': 'NONE' }), null)
  t.equal(decode(nginxLike, { 'x-ssl-client-verify': 'SUCCESS' }), null)
  for (const [name, headers] of Object.entries({
    'none beside a certificate': { 'x-ssl-client-escaped-cert': cert, 'x-ssl-client-verify': 'NONE' },
    'status missing': { 'x-ssl-client-escaped-cert': cert },
    'fingerprint mismatch': { 'x-ssl-client-escaped-cert': cert, 'x-ssl-client-sha256': sha256(san.der).toString('hex'), 'x-ssl-client-verify': 'SUCCESS' },
    'chain without cert': { 'x-ssl-client-chain': nginxEscape(intermediate.certPem), 'x-ssl-client-verify': 'SUCCESS' },
    'chain beside a subject but no cert': { 'x-ssl-client-chain': nginxEscape(intermediate.certPem), 'x-ssl-client-s-dn': 'CN=x', 'x-ssl-client-verify': 'SUCCESS' },
    'fingerprint without cert or subject': { 'x-ssl-client-sha256': sha256(san.der).toString('hex') },
    'bad chain': { 'x-ssl-client-escaped-cert': cert, 'x-ssl-client-chain': 'SPOOFED', 'x-ssl-client-verify': 'SUCCESS' }
  } as Record<string, Headers>)) t.throws(() => decode(nginxLike, headers), CertificateParseError, name)

  const names = {
    subject: { name: 'x-s-dn', encoding: 'dn-legacy' },
    issuer: { name: 'x-i-dn', encoding: 'dn-rfc4514' },
    serial: { name: 'x-serial', encoding: 'decimal' },
    fingerprint: { name: 'x-fp' },
    verified: 'present'
  } as const
  const certAndNames = createCustomPreset({ cert: { name: 'x-cert', encoding: 'der-base64' }, ...names })
  t.same(decode(certAndNames, { 'x-cert': b64(alice.der), 'x-s-dn': 'ignored' }), { der: alice.der, chain: [], verified: true, verifyError: null }, 'the certificate wins')
  for (const [name, headers] of Object.entries({
    'subject without the certificate': { 'x-s-dn': '/CN=x' },
    'issuer and serial without the certificate': { 'x-i-dn': 'CN=x', 'x-serial': '15' },
    'fingerprint without the certificate': { 'x-fp': sha256(alice.der).toString('hex') },
    'names beside an empty certificate header': { 'x-cert': '', 'x-s-dn': '/CN=x' }
  } as Record<string, Headers>)) t.throws(() => decode(certAndNames, headers), CertificateParseError, `a mapping with cert: ${name} is refused`)
  t.equal(decode(certAndNames, { 'x-cert': '(null)', 'x-s-dn': '(null)' }), null, 'every header says none')

  const dnOnly = createCustomPreset(names)
  t.equal(decode(dnOnly, { 'x-s-dn': '(null)', 'x-serial': '' }), null, 'names-only mapping, every header says none')
  const described = decode(dnOnly, {
    'x-s-dn': '/C=US/O=Example Corp/CN=bob+UID=1234',
    'x-i-dn': 'CN=Example Intermediate CA,OU=Client Auth,O=Example Corp,C=US',
    'x-serial': '11651590505119483672',
    'x-fp': sha256(alice.der).toString('base64')
  })
  t.equal(formatDN(described?.subjectRDNs ?? []), 'UID=1234+CN=bob,O=Example Corp,C=US', 'as OpenSSL prints a multi-valued RDN')
  t.equal(formatDN(described?.issuerRDNs ?? []), 'CN=Example Intermediate CA,OU=Client Auth,O=Example Corp,C=US')
  t.equal(described?.serialNumber, 'A1B2C3D4E5F60718', 'Caddy-style decimal serial')
  t.equal(described?.fingerprint256, colonSha256(alice.der))
  t.equal(described?.verified, true)
  t.same(Object.keys(decode(dnOnly, { 'x-s-dn': '/CN=x' }) ?? {}).sort(), ['chain', 'der', 'subjectRDNs', 'verified', 'verifyError'])
  const emptySubject = decode(dnOnly, { 'x-i-dn': 'CN=x', 'x-serial': '15' })
  t.same(emptySubject?.subjectRDNs, [], 'issuer and serial without subject: the empty subject nginx sends as no header')
  t.equal(emptySubject?.serialNumber, '0F')
  t.same(decode(dnOnly, { 'x-fp': sha256(alice.der).toString('hex') })?.subjectRDNs, [])

  const hexSerial = createCustomPreset({ subject: { name: 'x-dn', encoding: 'dn-rfc4514' }, serial: { name: 'x-serial' }, verified: 'present' })
  t.equal(decode(hexSerial, { 'x-dn': 'CN=x', 'x-serial': '0f' })?.serialNumber, '0F', 'serial encoding defaults to hex')
  const utf8Raw = asReceived('CN=Jürgen Ünicode 测试,O=Beispiel GmbH,C=DE')
  t.equal(formatDN(decode(hexSerial, { 'x-dn': utf8Raw })?.subjectRDNs ?? []), 'CN=Jürgen Ünicode 测试,O=Beispiel GmbH,C=DE', 'Apache\'s raw UTF-8 DN')

  const unverified = createCustomPreset({ cert: { name: 'X-Amzn-Mtls-Clientcert', encoding: 'pem-urlencoded' }, chain: { name: 'x-chain', encoding: 'der-base64' }, verified: 'never' })
  t.equal(unverified.proxyVerifies, false)
  t.same(decode(unverified, { 'x-amzn-mtls-clientcert': albEncode(utf8.certPem), 'x-chain': b64(intermediate.der) }),
    { der: utf8.der, chain: [intermediate.der], verified: false, verifyError: null }, 'ALB passthrough as a custom mapping')

  const mesh = createCustomPreset({ cert: { name: 'x-forwarded-client-cert', encoding: 'xfcc' }, verified: { header: 'x-mesh-verified', success: ['yes'] } })
  t.same(decode(mesh, { 'x-forwarded-client-cert': `Cert="${encodeURIComponent(alice.certPem)}"`, 'x-mesh-verified': 'yes' }), { der: alice.der, chain: [], verified: true, verifyError: null })
  const meshNo = decode(mesh, { 'x-forwarded-client-cert': 'URI=spiffe://example.org/a', 'x-mesh-verified': 'no' })
  t.equal(meshNo?.verified, false)
  t.equal(meshNo?.verifyError, 'no')
  t.equal(meshNo?.spiffeId, 'spiffe://example.org/a')
  const meshNever = createCustomPreset({ cert: { name: 'x-forwarded-client-cert', encoding: 'xfcc' }, verified: 'never' })
  t.same(decode(meshNever, { 'x-forwarded-client-cert': `Cert="${encodeURIComponent(alice.certPem)}"` }), { der: alice.der, chain: [], verified: false, verifyError: null })

  for (const encoding of ['pem', 'pem-spaces', 'rfc9440'] as const) {
    const p = createCustomPreset({ cert: { name: 'x-c', encoding }, verified: 'present' })
    const value = encoding === 'rfc9440' ? `:${b64(alice.der)}:` : encoding === 'pem' ? alice.certPem.replaceAll('\n', '\t') : apacheForm(alice.certPem)
    t.same(decode(p, { 'x-c': value })?.der, alice.der, encoding)
  }
  const mapping: CustomHeaderMapping = { cert: { name: 'X-C', encoding: 'der-base64' }, verified: { header: 'x-v', success: ['OK'] } }
  const copied = createCustomPreset(mapping)
  mapping.cert = { name: 'x-other', encoding: 'pem' }
  t.same(copied.headers, ['x-c', 'x-v'], 'the mapping is copied at registration')
})
