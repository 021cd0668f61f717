import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { expect, test } from 'tstyche'
import fastifyClientCert, {
  ClientCertForbiddenError,
  ClientCertMissingError,
  fastifyClientCert as named,
  formatDN,
  identityFromCertificate,
  parseDN,
  type ClientCertIdentity,
  type FastifyClientCertOptions,
  type RDN
} from 'fastify-client-cert'

test('the default and the named export are the same plugin', () => {
  expect(fastifyClientCert).type.toBe(named)
})

test('options are typed', () => {
  const app = Fastify()
  app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'nginx', trust: ['10.0.0.0/8'] } })
  app.register(fastifyClientCert, { required: false, allow: { spiffe: ['spiffe://example.org/ns/admin/*'] } })
  app.register(fastifyClientCert, {
    authorize: async (identity) => identity.commonName === 'alice',
    resolveUser: async (identity) => ({ id: identity.fingerprint256 }),
    cache: { max: 100, ttl: 1000 }
  })
  app.register(fastifyClientCert, {
    resolveUser: async (identity) => identity.commonName === null ? false : { name: identity.commonName },
    cache: { ttl: 1000, users: { max: 0 }, certificates: { max: 500, maxBytes: 1 << 24 } }
  })
  expect({ cache: { certificates: { size: 1 } } } as const).type.not.toBeAssignableTo<FastifyClientCertOptions>()
  expect({ cache: { users: { maxBytes: 1 } } } as const).type.not.toBeAssignableTo<FastifyClientCertOptions>()
  expect({ mode: 'auto', proxy: { preset: 'nginx', trust: '127.0.0.1' } } as const).type.toBeAssignableTo<FastifyClientCertOptions>()
  expect({ mode: 'mtls' } as const).type.not.toBeAssignableTo<FastifyClientCertOptions>()
  expect({ proxy: { preset: 'nginx' } } as const).type.not.toBeAssignableTo<FastifyClientCertOptions>()
  expect({ required: 'yes' } as const).type.not.toBeAssignableTo<FastifyClientCertOptions>()
  expect({ mode: 'proxy', proxy: { preset: 'envoy', trust: '127.0.0.1', xfcc: { hops: 2, cert: true } } } as const).type.toBeAssignableTo<FastifyClientCertOptions>()
  expect({ mode: 'proxy', proxy: { preset: 'envoy', trust: '127.0.0.1', xfcc: { hops: '2' } } } as const).type.not.toBeAssignableTo<FastifyClientCertOptions>()
  expect({ mode: 'proxy', proxy: { preset: 'envoy', trust: '127.0.0.1', xfcc: { last: true } } } as const).type.not.toBeAssignableTo<FastifyClientCertOptions>()
  app.register(fastifyClientCert, {
    spiffe: { bundles: { 'example.org': '-----BEGIN CERTIFICATE-----', 'partner.example': { keys: [{ kty: 'EC', use: 'x509-svid', x5c: ['MII…'] }] } } }
  })
  expect({ spiffe: { bundles: { 'example.org': [Buffer.alloc(1), '{"keys":[]}'] } } }).type.toBeAssignableTo<FastifyClientCertOptions>()
  expect({ spiffe: { bundles: { 'example.org': 42 } } } as const).type.not.toBeAssignableTo<FastifyClientCertOptions>()
  expect({ spiffe: { 'example.org': '-----BEGIN CERTIFICATE-----' } } as const).type.not.toBeAssignableTo<FastifyClientCertOptions>()
})

test('request.clientCert and route config are typed', () => {
  const app = Fastify()
  app.get('/', { config: { clientCert: { required: false, allow: { subjects: [{ O: 'Example Corp' }] } } } }, async (request) => {
    expect(request.clientCert).type.toBe<ClientCertIdentity | null>()
    if (request.clientCert !== null) {
      expect(request.clientCert.subjectRDNs).type.toBe<ReadonlyArray<Readonly<RDN>> | null>()
      expect(request.clientCert.verified).type.toBe<boolean>()
      expect(request.clientCert.notAfter).type.toBe<Date | null>()
    }
  })
  app.get('/health', { config: { clientCert: false } }, async () => 'ok')
  expect(app.get).type.not.toBeCallableWith('/x', { config: { clientCert: { required: 'no' } } }, async () => 'x')
})

test('the decorator and the verifier hook', () => {
  const app = Fastify()
  expect(app.clientCert.reload).type.toBeCallableWith({ crl: '-----BEGIN X509 CRL-----' })
  expect(app.clientCert.reload).type.toBeCallableWith({ ca: null })
  expect(app.clientCert.stats()).type.toBe<{ users: { entries: number }, certificates: { entries: number, bytes: number } }>()
  const hook = app.clientCert.verify({ allow: { dns: ['api.example.org'] } })
  expect(hook).type.toBeAssignableTo<(request: FastifyRequest, reply: FastifyReply) => Promise<void>>()
})

test('exported helpers', () => {
  expect(parseDN('CN=a')).type.toBe<RDN[]>()
  expect(formatDN(parseDN('CN=a'))).type.toBe<string>()
  expect(identityFromCertificate('pem', { source: 'proxy', proxy: 'nginx', verified: true })).type.toBe<ClientCertIdentity>()
  expect(new ClientCertMissingError().code).type.toBe<'FST_CLIENT_CERT_MISSING'>()
  expect(new ClientCertForbiddenError()).type.toBeAssignableTo<Error>()
})
