// A proxy mapping that forwards names only (subject, issuer and serial as RFC 4514 strings, a verify status),
// trusted from 127.0.0.1: what the attack tests on names-only identities configure.
export const namesOnlyProxy = {
  trust: '127.0.0.1',
  headers: {
    subject: { name: 'x-client-s-dn', encoding: 'dn-rfc4514' as const },
    issuer: { name: 'x-client-i-dn', encoding: 'dn-rfc4514' as const },
    serial: { name: 'x-client-serial' },
    verified: { header: 'x-client-verify', success: ['SUCCESS'] }
  }
}
