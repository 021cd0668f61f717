import { fastifyClientCert } from './plugin.js'

export { fastifyClientCert }
export default fastifyClientCert

export type {
  ClientCertCacheStats,
  ClientCertDecorator,
  ClientCertUser,
  FastifyClientCertUser,
  InjectIdentity
} from './plugin.js'
export type {
  AuthorizeHook,
  CacheBounds,
  CacheOptions,
  CertificateCacheBounds,
  ClientCertMode,
  ClientCertRouteOptions,
  FastifyClientCertOptions,
  PemOrDerInput,
  ProxyOptions,
  ResolvedUser,
  ResolveUserHook
} from './options.js'
export type { AllowRules, NameRule } from './policy/allow.js'
export type { CustomHeaderMapping, XfccOptions } from './sources/presets/types.js'
export type { ClientCertIdentity, IdentityOptions, IdentitySource } from './identity.js'
export type { DNAttribute, RDN } from './codecs/dn.js'
export type { SubjectAltNames } from './codecs/san.js'
export { identityFromCertificate } from './identity.js'
export { parseDN, formatDN } from './codecs/dn.js'
export { CertificateParseError } from './codecs/parse-error.js'
// Every error constructor, for `instanceof` checks and custom error handlers.
export * from './errors.js'
