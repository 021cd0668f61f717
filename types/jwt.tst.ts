import Fastify from 'fastify'
import fastifyJwt from '@fastify/jwt'
import { expect, test } from 'tstyche'
import fastifyClientCert, { type VerifiedClientCertIdentity } from 'fastify-client-cert'

// Both plugins in one program: jwt keeps request.user, the certificate's user lives in request.account.
declare module '@fastify/jwt' {
  interface FastifyJWT {
    payload: { sub: string, scope: string }
    user: { sub: string, scope: string }
  }
}
declare module 'fastify-client-cert' {
  interface FastifyClientCertUser {
    user: { id: number, name: string }
    userProperty: 'account'
  }
}

test('@fastify/jwt and fastify-client-cert type their users side by side', () => {
  const app = Fastify()
  app.register(fastifyJwt, { secret: 'a secret of some length' })
  app.register(fastifyClientCert, { userProperty: 'account', resolveUser: async (identity) => ({ id: 1, name: identity.commonName ?? '' }) })
  app.get('/', async (request) => {
    await request.jwtVerify()
    expect(request.user).type.toBe<{ sub: string, scope: string }>()
    expect(request.account).type.toBe<{ id: number, name: string } | null>()
    expect(request.requireClientCert()).type.toBe<VerifiedClientCertIdentity>()
  })
})

test('the declared userProperty must be given at registration, and no other name', () => {
  const app = Fastify()
  expect(app.register).type.not.toBeCallableWith(fastifyClientCert, { resolveUser: async () => ({ id: 1, name: 'a' }) })
  expect(app.register).type.not.toBeCallableWith(fastifyClientCert, { userProperty: 'user' })
  expect(app.register).type.toBeCallableWith(fastifyClientCert, { userProperty: 'account' })
})
