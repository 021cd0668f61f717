import { fastifyClientCert } from './plugin.js'

export { fastifyClientCert }
export default fastifyClientCert

export type {
  ClientCertCacheStats,
  ClientCertDecorator,
  ClientCertReload,
  ClientCertUser,
  ClientCertUserHolder,
  ClientCertUserProperty,
  FastifyClientCertUser,
  InjectIdentity
} from './plugin.js'
export type {
  AuthorizeHook,
  CacheBounds,
  CacheOptions,
  CertificateCacheBounds,
  ClientCertMode,
  ClientCertPresetName,
  ClientCertRouteOptions,
  FastifyClientCertOptions,
  PemOrDerInput,
  ProxyOptions,
  ResolvedUser,
  ResolveUserHook,
  SpiffeBundleInput,
  SpiffeOptions,
  UserPropertyOption,
  WatchedPaths,
  WatchOptions
} from './options.js'
export type { HttpsMaterial } from './rotation.js'
export type { DistributionPointMode, DistributionPointOptions, RevocationOptions } from './revocation/distribution-points.js'
export type { OcspMode, OcspOptions, OcspUnknown, RevocationOrder } from './revocation/ocsp.js'
export type { SpiffeJwk, SpiffeJwkSet } from './policy/spiffe-bundles.js'
export type { AllowRules, NameRule } from './policy/allow.js'
export type { CustomHeaderMapping, XfccOptions } from './sources/presets/types.js'
export type {
  ClientCertIdentity,
  ClientCertIdentityFields,
  IdentityOptions,
  IdentitySource,
  ProxyCertificateClientCertIdentity,
  ProxyClientCertIdentity,
  ProxyNamesClientCertIdentity,
  ReadCertificateFields,
  TlsClientCertIdentity,
  UnverifiedTlsClientCertIdentity,
  VerifiedClientCertIdentity,
  VerifiedTlsClientCertIdentity,
  WholeCertificateFields
} from './identity.js'
export type { DNAttribute, RDN } from './codecs/dn.js'
export type { SubjectAltNames } from './codecs/san.js'
export { identityFromCertificate } from './identity.js'
export { parseDN, formatDN } from './codecs/dn.js'
export { CertificateParseError } from './codecs/parse-error.js'
export { decisionChannelName } from './observability.js'
export type { ClientCertDecision } from './observability.js'
export { certificateThumbprint, trustCertificateBoundToken, verifyCertificateBinding } from './policy/token-binding.js'
export type { CertificateDigestSource } from './policy/token-binding.js'
// Every error constructor, for `instanceof` checks and custom error handlers.
export * from './errors.js'
