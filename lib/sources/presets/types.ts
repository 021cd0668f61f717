import type { X509Certificate } from 'node:crypto'
import type { BundleEncoding, CertificateEncoding, ChainEncoding } from '../../codecs/cert-encodings.js'
import type { RDN } from '../../codecs/dn.js'
import type { SubjectAltNames } from '../../codecs/san.js'
import type { ParsedCertificate } from '../../codecs/x509.js'

/**
 * Reads one request header by lower-case name. Returns undefined when absent. The plugin's implementation
 * throws when the header is repeated or longer than proxy.maxHeaderBytes, before a decoder sees it.
 */
export type HeaderRead = (name: string) => string | undefined

/** What a proxy's headers say about the client certificate of one request, before any parsing of the certificate. */
export interface ForwardedCert {
  /** the leaf certificate when the proxy forwarded it whole (checked to be one DER SEQUENCE, not yet parsed) */
  der: Buffer | null
  /** further certificates forwarded after the leaf, in the proxy's order (may be empty) */
  chain: Buffer[]
  /** the proxy's own verdict per its status header or, for proxies that forward only verified certificates, their presence */
  verified: boolean
  /** the proxy's own wording when not verified (`unable to verify the first certificate`, `10`, …); null when verified or when the proxy gives no verdict */
  verifyError: string | null
  /** `der` parsed, when the preset had to read it already (Envoy checks the names beside it): not parsed twice */
  certificate?: X509Certificate
  /** `der` read by the project's DER reader, when the preset did so already (Envoy): not read twice */
  parsed?: ParsedCertificate
  // Fields from DN-only or auxiliary headers, given only when `der` is null (else the caller derives them from `der`).
  // A field the headers do not carry is left out, except `spiffeId`, given whenever `san` is.
  subjectRDNs?: RDN[]
  issuerRDNs?: RDN[]
  serialNumber?: string
  fingerprint256?: string
  notBefore?: Date
  notAfter?: Date
  san?: SubjectAltNames
  spiffeId?: string | null
}

export interface Preset {
  /** 'nginx', …, or 'custom' */
  readonly name: string
  /** every header name the preset reads, lower-case: from an untrusted source any of them is refused */
  readonly headers: readonly string[]
  /**
   * the headers among `headers` that are lists (RFC 9110 §5.3): several field lines of one is their comma-joined
   * value, as RFC 9440 `Client-Cert-Chain` may arrive. Every other certificate header repeated is refused.
   */
  readonly listHeaders?: readonly string[]
  /** false: the proxy forwards certificates it has not verified, so registration requires proxy.ca */
  readonly proxyVerifies: boolean
  /** null = no certificate; malformed or contradictory headers → CertificateParseError */
  decode (read: HeaderRead): ForwardedCert | null
}

/** A header holding the whole leaf certificate. `xfcc`: an Envoy `X-Forwarded-Client-Cert` header, read as `proxy.xfcc` says. */
export interface CertHeaderMapping {
  /** header name, any case */
  name: string
  /**
   * - `pem`: PEM; any whitespace may separate its lines (real line breaks cannot reach the app: Node refuses them)
   * - `pem-urlencoded`: URL-encoded PEM (nginx `$ssl_client_escaped_cert`, AWS ALB, Envoy)
   * - `pem-spaces`: PEM whose line breaks became spaces (Apache `%{SSL_CLIENT_CERT}s`)
   * - `der-base64`: base64 of the DER (HAProxy `%[ssl_c_der,base64]`, Caddy `certificate_der_base64`)
   * - `rfc9440`: RFC 9440 `:base64:` byte sequence
   * - `pem-chain`, `pem-urlencoded-chain`: the leaf and then its chain, as consecutive PEM blocks (AWS ALB
   *   passthrough `X-Amzn-Mtls-Clientcert`); the chain is then available to `proxy.ca` (not with `chain`)
   * - `xfcc`: Envoy XFCC, read as for preset `envoy` (see `XfccOptions`): `Cert`/`Chain`, else `Subject`,
   *   `URI`, `DNS`, `Hash`
   */
  encoding: CertificateEncoding | BundleEncoding | 'xfcc'
}

/** A header holding further certificates of the client's chain, leaf excluded. */
export interface ChainHeaderMapping {
  name: string
  /**
   * as for `cert`; `pem*`: consecutive PEM blocks; `der-base64`: comma-separated; `rfc9440`: a structured-field
   * list; `der-base64-concatenated`: the DER certificates back to back in one base64 value (HAProxy
   * `%[ssl_c_chain_der,base64]`). `der-base64` and `rfc9440` are lists: the header may arrive as several lines.
   */
  encoding: ChainEncoding
}

/** A header holding a distinguished name. Raw UTF-8 in the value is handled. */
export interface DNHeaderMapping {
  name: string
  /**
   * - `dn-rfc4514`: RFC 4514 / RFC 2253, most specific RDN first (nginx `$ssl_client_s_dn`, Apache
   *   `SSL_CLIENT_S_DN`, HAProxy `ssl_c_s_dn(,0,rfc2253)`, AWS ALB)
   * - `dn-legacy`: OpenSSL one-line `/C=…/O=…/CN=…` (nginx `$ssl_client_s_dn_legacy`, Apache `+LegacyDNStringFormat`)
   *
   * HAProxy's default `ssl_c_s_dn` slash form is not accepted: it escapes nothing, so a `/` or `=` inside a
   * value cannot be told from a separator.
   */
  encoding: 'dn-rfc4514' | 'dn-legacy'
}

/** A header holding the certificate serial number. */
export interface SerialHeaderMapping {
  name: string
  /** `hex` (any case, optional `:` between bytes; default) or `decimal` (Caddy's `serial`) */
  encoding?: 'hex' | 'decimal'
}

/** A header holding the SHA-256 fingerprint of the certificate: hex (with or without colons, any case) or base64. */
export interface FingerprintHeaderMapping {
  name: string
}

/**
 * How "verified" is decided. A header whose value is one of `success` means verified; one of `none` means no
 * certificate; any other value means not verified (that value becomes `verifyError`), and a missing value
 * next to a certificate is refused. Values compare exactly (case-sensitive).
 */
export interface VerifyHeaderMapping {
  header: string
  /** e.g. `['SUCCESS']` (nginx, Apache) */
  success: readonly string[]
  /** e.g. `['NONE']` */
  none?: readonly string[]
}

/**
 * A header mapping for a proxy without a preset (`proxy.headers`). Give `cert` (the whole certificate; best)
 * or `subject` (a DN only), and always `verified`.
 */
export interface CustomHeaderMapping {
  /** the whole leaf certificate */
  cert?: CertHeaderMapping
  /** further certificates (needs `cert`; not with `xfcc`) */
  chain?: ChainHeaderMapping
  /**
   * the subject DN: the identity when `cert` is not configured. An absent subject beside issuer, serial or
   * fingerprint is read as an empty subject: that is how nginx (no header), Apache (`(null)`) and HAProxy
   * (`''`) forward a certificate whose subject is empty. With `cert` configured, the name headers are never
   * the identity: arriving without the certificate, they are refused (400).
   */
  subject?: DNHeaderMapping
  /** the issuer DN, used with `subject` */
  issuer?: DNHeaderMapping
  /** the serial number, used with `subject` */
  serial?: SerialHeaderMapping
  /** the SHA-256 fingerprint: checked against `cert` when both arrive, else used with `subject` */
  fingerprint?: FingerprintHeaderMapping
  /**
   * - a `VerifyHeaderMapping`: the proxy's status header
   * - `'present'`: the proxy forwards only certificates it verified (Envoy, Caddy `verify_if_given`, …)
   * - `'never'`: the proxy forwards certificates without verifying them: registration then requires `proxy.ca`
   */
  verified: VerifyHeaderMapping | 'present' | 'never'
}

/**
 * How an Envoy `X-Forwarded-Client-Cert` header is read (`proxy.xfcc`, with preset `envoy` or a mapping whose
 * `cert` encoding is `xfcc`). Envoy writes SAN values raw, so a certificate's own text can look like more
 * elements or keys: the header is read only when its shape is exactly what this configuration produces.
 */
export interface XfccOptions {
  /**
   * How many Envoy proxies add an element between the client and the app, counted from the app outwards as
   * `proxy-addr` counts trusted hops: the outermost (the one that terminates the client's TLS) with
   * `forward_client_cert_details: SANITIZE_SET`, each nearer one with `APPEND_FORWARD`. The header must hold
   * exactly this many elements (else 400); the user's is the first. Default 1.
   */
  hops?: number
  /**
   * `true`: that Envoy forwards the certificate (`set_current_client_cert_details: { cert: true }` or
   * `chain: true`), and an element without `Cert` or `Chain` is refused (400) instead of being read by its
   * names. Default `false`: `Cert` is used when present, else the names (see the README on what names alone
   * cannot prove).
   */
  cert?: boolean
}
