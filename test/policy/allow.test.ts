import t from 'tap'
import { compileAllow, type AllowIdentity, type AllowRules } from '../../lib/policy/allow.js'
import type { DNAttribute, RDN } from '../../lib/codecs/dn.js'
import { formatDN } from '../../lib/codecs/dn.js'
import { ClientCertInvalidOptionError } from '../../lib/errors.js'
import { CertificateParseError } from '../../lib/codecs/parse-error.js'

const OID: Record<string, string> = {
  CN: '2.5.4.3',
  C: '2.5.4.6',
  O: '2.5.4.10',
  OU: '2.5.4.11',
  UID: '0.9.2342.19200300.100.1.1',
  emailAddress: '1.2.840.113549.1.9.1'
}

function a (type: string, value: string): DNAttribute {
  return { type, oid: OID[type] ?? type, value }
}

const alice: RDN[] = [[a('CN', 'alice')], [a('O', 'Example Corp')], [a('C', 'US')]]
const bob: RDN[] = [[a('CN', 'bob'), a('UID', '1234')], [a('O', 'Example Corp')], [a('C', 'US')]]
const carol: RDN[] = [[a('CN', 'carol')], [a('OU', 'Platform')], [a('OU', 'Engineering')], [a('O', 'Example Corp')], [a('C', 'US')]]
const intermediate: RDN[] = [[a('CN', 'Proxylab Intermediate CA')], [a('OU', 'Client Auth')], [a('O', 'Proxylab')], [a('C', 'US')]]

const FP = 'AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89'

interface SanInput { dns?: string[], email?: string[], uri?: string[] }

function identity (fields: Partial<Omit<AllowIdentity, 'san'>> & { san?: SanInput | null } = {}): AllowIdentity {
  const { san, subjectRDNs = null, issuerRDNs = null, ...rest } = fields
  // A whole SAN record, `ip` included, as the plugin's identities carry it.
  const record = san === undefined || san === null ? null : { dns: [], email: [], uri: [], ip: [], ...san }
  return {
    // What every identity source does: the strings are formatDN of the parsed names.
    subject: subjectRDNs === null ? null : formatDN(subjectRDNs),
    issuer: issuerRDNs === null ? null : formatDN(issuerRDNs),
    subjectRDNs,
    issuerRDNs,
    spiffeId: null,
    fingerprint256: null,
    ...rest,
    san: record
  }
}

function admits (rules: AllowRules, id: AllowIdentity): boolean {
  return compileAllow(rules, 'allow')(id)
}

t.test('subjects: a string is a whole name compared as parsed names', async (t) => {
  t.ok(admits({ subjects: ['CN=alice,O=Example Corp,C=US'] }, identity({ subjectRDNs: alice })))
  t.ok(admits({ subjects: ['cn=alice,o=Example Corp,c=US'] }, identity({ subjectRDNs: alice })), 'types are case-insensitive')
  t.ok(admits({ subjects: ['2.5.4.3=alice,2.5.4.10=Example Corp,2.5.4.6=US'] }, identity({ subjectRDNs: alice })), 'dotted OIDs name the same types')
  t.notOk(admits({ subjects: ['CN=Alice,O=Example Corp,C=US'] }, identity({ subjectRDNs: alice })), 'values are exact')
  t.notOk(admits({ subjects: ['CN=alice,O=Example Corp'] }, identity({ subjectRDNs: alice })), 'a missing RDN')
  t.notOk(admits({ subjects: ['CN=alice,O=Example Corp,C=US,DC=org'] }, identity({ subjectRDNs: alice })), 'an extra RDN')
  t.notOk(admits({ subjects: ['C=US,O=Example Corp,CN=alice'] }, identity({ subjectRDNs: alice })), 'RDN order is significant')
  t.notOk(admits({ subjects: ['CN=alice,O=Example Corp,C=US'] }, identity({ subjectRDNs: bob })))
  t.ok(admits({ subjects: ['CN=nobody', 'CN=bob+UID=1234,O=Example Corp,C=US'] }, identity({ subjectRDNs: bob })))
  t.ok(admits({ subjects: ['UID=1234+CN=bob,O=Example Corp,C=US'] }, identity({ subjectRDNs: bob })),
    'the attributes of a multi-valued RDN are a set (OpenSSL prints them reversed)')
  t.notOk(admits({ subjects: ['CN=bob,UID=1234,O=Example Corp,C=US'] }, identity({ subjectRDNs: bob })),
    'a multi-valued RDN is not two RDNs')
  t.notOk(admits({ subjects: ['CN=bob+UID=1234+UID=1234,O=Example Corp,C=US'] }, identity({ subjectRDNs: bob })),
    'a repeated attribute is not the same RDN')
  t.notOk(admits({ subjects: ['CN=alice,O=Example Corp,C=US'] }, identity({ issuerRDNs: alice })), 'subjects never read the issuer')
})

t.test('issuers: the same rules against the issuer name', async (t) => {
  const id = identity({ subjectRDNs: alice, issuerRDNs: intermediate })
  t.ok(admits({ issuers: ['CN=Proxylab Intermediate CA,OU=Client Auth,O=Proxylab,C=US'] }, id))
  t.ok(admits({ issuers: [{ O: 'Proxylab', OU: 'Client Auth' }] }, id))
  t.ok(admits({ issuers: [/^CN=Proxylab Intermediate CA,/] }, id))
  t.notOk(admits({ issuers: ['CN=alice,O=Example Corp,C=US'] }, id), 'issuers never read the subject')
  t.notOk(admits({ issuers: [{ O: 'Example Corp' }] }, id))
})

t.test('subjects: an object matches names holding every listed attribute', async (t) => {
  t.ok(admits({ subjects: [{ O: 'Example Corp' }] }, identity({ subjectRDNs: alice })))
  t.ok(admits({ subjects: [{ O: 'Example Corp', CN: 'alice' }] }, identity({ subjectRDNs: alice })))
  t.notOk(admits({ subjects: [{ O: 'Example Corp', CN: 'bob' }] }, identity({ subjectRDNs: alice })), 'every attribute must match')
  t.notOk(admits({ subjects: [{ O: 'example corp' }] }, identity({ subjectRDNs: alice })), 'values are exact')
  t.ok(admits({ subjects: [{ CN: ['bob', 'alice'] }] }, identity({ subjectRDNs: alice })), 'an array: any of its values')
  t.notOk(admits({ subjects: [{ CN: ['bob', 'carol'] }] }, identity({ subjectRDNs: alice })))
  t.ok(admits({ subjects: [{ UID: '1234' }] }, identity({ subjectRDNs: bob })), 'inside a multi-valued RDN')
  t.ok(admits({ subjects: [{ OU: 'Engineering', O: 'Example Corp' }] }, identity({ subjectRDNs: carol })), 'any of several OUs')
  t.ok(admits({ subjects: [{ OU: 'Platform' }] }, identity({ subjectRDNs: carol })))
  t.ok(admits({ subjects: [{ cn: 'alice' }] }, identity({ subjectRDNs: alice })), 'attribute names are case-insensitive')
  t.ok(admits({ subjects: [{ commonName: 'alice', organizationName: 'Example Corp' }] }, identity({ subjectRDNs: alice })), 'long names')
  t.ok(admits({ subjects: [{ '2.5.4.3': 'alice' }] }, identity({ subjectRDNs: alice })), 'dotted OIDs')
  const mailer = [[a('emailAddress', 'alice@example.com')], ...alice]
  t.ok(admits({ subjects: [{ emailAddress: 'alice@example.com' }] }, identity({ subjectRDNs: mailer })))
  t.notOk(admits({ subjects: [{ emailAddress: 'alice@example.com' }] }, identity({ subjectRDNs: alice })))
  t.ok(admits({ subjects: [{ O: 'Other' }, { CN: 'alice' }] }, identity({ subjectRDNs: alice })), 'any rule of the list')
  t.notOk(admits({ subjects: [{ O: 'Example Corp' }] }, identity({ subjectRDNs: [] })), 'an empty name')
})

t.test('subjects: a RegExp is tested against the canonical string', async (t) => {
  t.equal(formatDN(alice), 'CN=alice,O=Example Corp,C=US')
  t.ok(admits({ subjects: [/^CN=[a-z]+,O=Example Corp,C=US$/] }, identity({ subjectRDNs: alice })))
  t.notOk(admits({ subjects: [/^CN=[a-z]+,O=Other,C=US$/] }, identity({ subjectRDNs: alice })))
  t.ok(admits({ subjects: [/^cn=ALICE,/i] }, identity({ subjectRDNs: alice })), 'flags other than g and y are kept')
  t.ok(admits({ subjects: [/^x/, /O=Example Corp/] }, identity({ subjectRDNs: alice })))
  const rule = /alice/
  const allow = compileAllow({ subjects: [rule] }, 'allow')
  rule.compile('bob')
  t.ok(allow(identity({ subjectRDNs: alice })), 'the compiled rule keeps its own copy of the RegExp')
  t.notOk(allow(identity({ subjectRDNs: bob })))
})

t.test('DN injection: a value holding ",O=admins" is not an O attribute', async (t) => {
  const injected = identity({ subjectRDNs: [[a('CN', 'x,O=admins')]], issuerRDNs: [[a('CN', 'x,O=admins')]] })
  t.notOk(admits({ subjects: [{ O: 'admins' }] }, injected), 'object rule')
  t.notOk(admits({ subjects: ['CN=x,O=admins'] }, injected), 'whole-name rule')
  t.notOk(admits({ issuers: [{ O: 'admins' }, 'CN=x,O=admins'] }, injected), 'issuer rules')
  t.notOk(admits({ subjects: [/^CN=x,O=admins$/] }, injected), 'an anchored RegExp sees the escaped comma')
  t.equal(formatDN(injected.subjectRDNs ?? []), 'CN=x\\,O=admins')
  t.ok(admits({ subjects: [/O=admins/] }, injected), 'an unanchored RegExp is the sharp tool the docs warn about')
  t.ok(admits({ subjects: ['CN=x\\,O=admins'] }, injected), 'the escaped spelling names the real CN')
})

t.test('DN injection: a value holding "+O=admins" is not a multi-valued RDN', async (t) => {
  const injected = identity({ subjectRDNs: [[a('CN', 'x+O=admins')], [a('C', 'US')]] })
  t.notOk(admits({ subjects: [{ O: 'admins' }] }, injected), 'object rule')
  t.notOk(admits({ subjects: ['CN=x+O=admins,C=US'] }, injected), 'whole-name rule')
  t.ok(admits({ subjects: [{ O: 'admins' }] }, identity({ subjectRDNs: [[a('CN', 'x'), a('O', 'admins')], [a('C', 'US')]] })),
    'a real multi-valued RDN does hold O=admins')
})

t.test('DN injection: the value of another attribute type is not the listed one', async (t) => {
  const id = identity({ subjectRDNs: [[a('CN', 'admins')], [a('OU', 'admins')], [a('O', 'O=admins')]] })
  t.notOk(admits({ subjects: [{ O: 'admins' }] }, id))
  t.ok(admits({ subjects: [{ OU: 'admins' }] }, id))
})

t.test('dns: exact, case-insensitive, one-label wildcards', async (t) => {
  const id = (...dns: string[]): AllowIdentity => identity({ san: { dns } })
  t.ok(admits({ dns: ['api.example.org'] }, id('other.example.org', 'api.example.org')))
  t.ok(admits({ dns: ['API.Example.ORG'] }, id('api.example.org')), 'rule case folded')
  t.ok(admits({ dns: ['api.example.org'] }, id('Api.EXAMPLE.org')), 'certificate case folded')
  t.notOk(admits({ dns: ['api.example.org'] }, id('api.example.org.evil')))
  t.notOk(admits({ dns: ['example.org'] }, id('api.example.org')))
  t.ok(admits({ dns: ['*.example.org'] }, id('a.example.org')))
  t.ok(admits({ dns: ['*.Example.org'] }, id('A-1_x.EXAMPLE.org')))
  t.notOk(admits({ dns: ['*.example.org'] }, id('a.b.example.org')), 'exactly one label')
  t.notOk(admits({ dns: ['*.example.org'] }, id('example.org')), 'not the parent')
  t.notOk(admits({ dns: ['*.example.org'] }, id('.example.org')), 'not an empty label')
  t.notOk(admits({ dns: ['*.example.org'] }, id('a.example.org.evil.net')))
  t.notOk(admits({ dns: ['*.example.org'] }, id('a b.example.org')), 'not a label a DNS name cannot hold')
  t.ok(admits({ dns: ['*.svc.example.net'] }, id('*.svc.example.net')), 'a certificate wildcard matches the identical rule')
  t.notOk(admits({ dns: ['a.svc.example.net'] }, id('*.svc.example.net')), 'but no name it would cover')
  t.notOk(admits({ dns: ['*.example.net'] }, id('*.svc.example.net')))
  t.notOk(admits({ dns: ['*.example.org'] }, id('*.example.org.evil')))
  t.notOk(admits({ dns: ['k.example.org'] }, id('\u212a.example.org')), 'no Unicode case folding (KELVIN SIGN)')
  t.notOk(admits({ dns: ['*.example.org'] }, id('\u212a.example.org')))
  t.notOk(admits({ dns: ['a.example.org'] }, id()))
})

t.test('emails: local part exact, domain case-insensitive', async (t) => {
  const id = (...email: string[]): AllowIdentity => identity({ san: { email } })
  t.ok(admits({ emails: ['alice@example.com'] }, id('bob@example.com', 'alice@example.com')))
  t.ok(admits({ emails: ['alice@Example.COM'] }, id('alice@example.com')))
  t.ok(admits({ emails: ['alice@example.com'] }, id('alice@EXAMPLE.com')))
  t.notOk(admits({ emails: ['alice@example.com'] }, id('Alice@example.com')), 'the local part is exact')
  t.notOk(admits({ emails: ['Alice@example.com'] }, id('alice@example.com')))
  t.ok(admits({ emails: ['"a@b"@example.com'] }, id('"a@b"@Example.com')), 'a quoted local part with an @')
  t.notOk(admits({ emails: ['alice@example.com'] }, id('alice@example.com.evil')))
  t.notOk(admits({ emails: ['alice@example.com'] }, id('alice')), 'no @ at all')
  t.notOk(admits({ emails: ['alice@kelvin.com'] }, id('alice@\u212aelvin.com')), 'no Unicode case folding')
})

t.test('uris: exact', async (t) => {
  const id = (...uri: string[]): AllowIdentity => identity({ san: { uri } })
  t.ok(admits({ uris: ['https://example.org/users/alice'] }, id('urn:x', 'https://example.org/users/alice')))
  t.notOk(admits({ uris: ['https://example.org/users/alice'] }, id('https://example.org/users/Alice')))
  t.notOk(admits({ uris: ['https://example.org/users/alice'] }, id('https://example.org/users/alice/')))
  t.ok(admits({ uris: ['urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6'] }, id('urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6')))
  t.ok(admits({ uris: ['spiffe://example.org/a'] }, id('spiffe://example.org/a', 'spiffe://example.org/b')),
    'a URI rule reads every URI SAN, SPIFFE or not')
})

t.test('spiffe: exact IDs and path prefixes, against spiffeId only', async (t) => {
  const id = (spiffeId: string | null, uri: string[] = []): AllowIdentity => identity({ spiffeId, san: { uri } })
  t.ok(admits({ spiffe: ['spiffe://example.org/ns/prod/sa/api'] }, id('spiffe://example.org/ns/prod/sa/api')))
  t.notOk(admits({ spiffe: ['spiffe://example.org/ns/prod/sa/api'] }, id('spiffe://example.org/ns/prod/sa/api2')))
  t.notOk(admits({ spiffe: ['spiffe://example.org/ns/prod/sa/api'] }, id('spiffe://example.net/ns/prod/sa/api')))
  const admin = ['spiffe://example.org/ns/admin/*']
  t.ok(admits({ spiffe: admin }, id('spiffe://example.org/ns/admin/x')))
  t.ok(admits({ spiffe: admin }, id('spiffe://example.org/ns/admin/x/y')))
  t.notOk(admits({ spiffe: admin }, id('spiffe://example.org/ns/adminx')), 'segment boundaries')
  t.notOk(admits({ spiffe: admin }, id('spiffe://example.org/ns/admin')), 'strictly below the path')
  t.notOk(admits({ spiffe: admin }, id('spiffe://example.net/ns/admin/x')), 'same trust domain only')
  t.ok(admits({ spiffe: ['spiffe://example.org/ns/a/*', 'spiffe://example.org/*'] }, id('spiffe://example.org/x')))
  t.ok(admits({ spiffe: ['spiffe://example.org'] }, id('spiffe://example.org')))
  t.notOk(admits({ spiffe: ['spiffe://example.org/ns/prod/sa/api'] },
    id(null, ['spiffe://example.org/ns/prod/sa/api', 'spiffe://example.org/ns/prod/sa/other'])),
  'a certificate with two SPIFFE URIs has no spiffeId and matches no SPIFFE rule')
})

t.test('fingerprints: SHA-256 in any common spelling', async (t) => {
  const hex = FP.replaceAll(':', '')
  const base64 = Buffer.from(hex, 'hex').toString('base64')
  const id = identity({ fingerprint256: FP })
  t.ok(admits({ fingerprints: [FP] }, id))
  t.ok(admits({ fingerprints: [FP.toLowerCase()] }, id))
  t.ok(admits({ fingerprints: [hex.toLowerCase()] }, id))
  t.ok(admits({ fingerprints: [base64] }, id))
  t.ok(admits({ fingerprints: [base64.replace(/=$/, '').replaceAll('+', '-').replaceAll('/', '_')] }, id), 'base64url')
  t.notOk(admits({ fingerprints: ['00' + FP.slice(2)] }, id))
})

t.test('any entry of any listed kind admits', async (t) => {
  const allow = compileAllow({
    subjects: [{ O: 'Nope' }],
    dns: ['api.example.org'],
    fingerprints: [FP]
  }, 'allow')
  t.ok(allow(identity({ subjectRDNs: alice, san: { dns: ['api.example.org'] } })), 'a later kind')
  t.ok(allow(identity({ fingerprint256: FP })), 'the last kind')
  t.notOk(allow(identity({ subjectRDNs: alice, san: { dns: ['x.example.org'] } })), 'none')
})

t.test('an empty list admits no one', async (t) => {
  const everything = identity({
    subjectRDNs: alice,
    issuerRDNs: intermediate,
    san: { dns: ['a.example.org'], email: ['a@example.org'], uri: ['spiffe://example.org/a'] },
    spiffeId: 'spiffe://example.org/a',
    fingerprint256: FP
  })
  for (const kind of ['subjects', 'issuers', 'dns', 'emails', 'uris', 'spiffe', 'fingerprints']) {
    t.notOk(admits({ [kind]: [] }, everything), kind)
  }
  t.notOk(admits({ subjects: [], issuers: [], dns: [] }, everything), 'several empty lists')
  t.ok(admits({ subjects: [], dns: ['a.example.org'] }, everything), 'an empty list does not silence the others')
})

t.test('a null field matches no rule', async (t) => {
  const nothing = identity()
  t.notOk(admits({ subjects: ['CN=alice', { CN: 'alice' }, /./] }, nothing), 'subjectRDNs')
  t.notOk(admits({ issuers: ['CN=alice', { CN: 'alice' }, /./] }, nothing), 'issuerRDNs')
  t.notOk(admits({ dns: ['a.example.org', '*.example.org'] }, nothing), 'san (dns)')
  t.notOk(admits({ emails: ['a@example.org'] }, nothing), 'san (emails)')
  t.notOk(admits({ uris: ['urn:a'] }, nothing), 'san (uris)')
  t.notOk(admits({ spiffe: ['spiffe://example.org/a', 'spiffe://example.org/*'] }, nothing), 'spiffeId')
  t.notOk(admits({ fingerprints: [FP] }, nothing), 'fingerprint256')
})

t.test('each name rule reads its own field', async (t) => {
  const rules: AllowRules = { subjects: ['CN=alice,O=Example Corp,C=US', { CN: 'alice' }, /^CN=alice,/] }
  const allow = compileAllow(rules, 'allow')
  t.ok(allow(identity({ subjectRDNs: alice, subject: null })), 'parsed names without the string')
  t.ok(allow(identity({ subject: 'CN=alice,O=Example Corp,C=US' })), 'the string without parsed names')
  t.notOk(compileAllow({ subjects: [/^CN=alice,/] }, 'allow')(identity({ subjectRDNs: alice, subject: null })),
    'a RegExp needs the string')
  t.notOk(compileAllow({ subjects: ['CN=alice,O=Example Corp,C=US', { CN: 'alice' }] }, 'allow')(
    identity({ subject: 'CN=alice,O=Example Corp,C=US' })), 'strings and objects need the parsed name')
})

t.test('the compiled predicate ignores later changes to the rules', async (t) => {
  const subjects = ['CN=alice,O=Example Corp,C=US']
  const dns = ['a.example.org']
  const allow = compileAllow({ subjects, dns }, 'allow')
  subjects[0] = 'CN=bob'
  dns.push('b.example.org')
  t.ok(allow(identity({ subjectRDNs: alice })))
  t.notOk(allow(identity({ san: { dns: ['b.example.org'] } })))
})

t.test('invalid rules throw ClientCertInvalidOptionError naming the entry', async (t) => {
  class Rules {}
  const cases: Array<[string, unknown, string]> = [
    ['null', null, 'allow'],
    ['an array', [], 'allow'],
    ['a string', 'CN=alice', 'allow'],
    ['a class instance', new Rules(), 'allow'],
    ['no rule kind', {}, 'allow'],
    ['only undefined kinds', { subjects: undefined }, 'allow'],
    ['an unknown kind', { subject: ['CN=alice'] }, 'allow.subject'],
    ['an unknown kind that is no identifier', { 'dns-names': [] }, 'allow["dns-names"]'],
    ['a list that is not an array', { subjects: 'CN=alice' }, 'allow.subjects'],
    ['a Set for a list', { dns: new Set(['a.example.org']) }, 'allow.dns'],
    ['a number among names', { subjects: ['CN=alice', 42] }, 'allow.subjects[1]'],
    ['null among issuers', { issuers: [null] }, 'allow.issuers[0]'],
    ['an array among names', { subjects: [['CN=alice']] }, 'allow.subjects[0]'],
    ['an empty name', { subjects: [''] }, 'allow.subjects[0]'],
    ['a bad DN string', { subjects: ['CN=ok', 'not a DN'] }, 'allow.subjects[1]'],
    ['a bad issuer DN string', { issuers: ['CN=a,=x'] }, 'allow.issuers[0]'],
    ['a RegExp with g', { subjects: [/alice/g] }, 'allow.subjects[0]'],
    ['a RegExp with y', { issuers: [/alice/y] }, 'allow.issuers[0]'],
    ['an empty object', { subjects: [{}] }, 'allow.subjects[0]'],
    ['an unknown attribute', { subjects: [{ O: 'x', Bogus: 'x' }] }, 'allow.subjects[0].Bogus'],
    ['a malformed OID', { subjects: [{ '2.5..4': 'x' }] }, 'allow.subjects[0]["2.5..4"]'],
    ['an OID outside the three roots', { subjects: [{ '3.1.2': 'x' }] }, 'allow.subjects[0]["3.1.2"]'],
    ['a number as value', { subjects: [{ O: 42 }] }, 'allow.subjects[0].O'],
    ['an object as value', { subjects: [{ O: { x: 1 } }] }, 'allow.subjects[0].O'],
    ['an empty value list', { issuers: [{ OU: [] }] }, 'allow.issuers[0].OU'],
    ['a number in a value list', { subjects: [{ OU: ['a', 1] }] }, 'allow.subjects[0].OU[1]'],
    ['a number among DNS names', { dns: [1] }, 'allow.dns[0]'],
    ['a hole in a sparse array', { dns: ['a.example.org', , 'b.example.org'] }, 'allow.dns[1]'], // eslint-disable-line no-sparse-arrays
    ['an empty DNS name', { dns: [''] }, 'allow.dns[0]'],
    ['an empty label', { dns: ['a..example.org'] }, 'allow.dns[0]'],
    ['a trailing dot', { dns: ['example.org.'] }, 'allow.dns[0]'],
    ['a bare wildcard', { dns: ['*'] }, 'allow.dns[0]'],
    ['a wildcard in the middle', { dns: ['a.*.example.org'] }, 'allow.dns[0]'],
    ['a partial wildcard', { dns: ['a*.example.org'] }, 'allow.dns[0]'],
    ['a double wildcard', { dns: ['*.*.example.org'] }, 'allow.dns[0]'],
    ['a Unicode DNS name', { dns: ['bücher.example'] }, 'allow.dns[0]'],
    ['a label over 63 bytes', { dns: ['a'.repeat(64) + '.example.org'] }, 'allow.dns[0]'],
    ['a name over 253 bytes', { dns: [('a'.repeat(60) + '.').repeat(4) + 'example.org'] }, 'allow.dns[0]'],
    ['an email without @', { emails: ['alice'] }, 'allow.emails[0]'],
    ['an email without local part', { emails: ['@example.org'] }, 'allow.emails[0]'],
    ['an email without domain', { emails: ['a@example.org', 'alice@'] }, 'allow.emails[1]'],
    ['an email with a wildcard domain', { emails: ['alice@*.example.org'] }, 'allow.emails[0]'],
    ['an email with a space in the domain', { emails: ['alice@exa mple.org'] }, 'allow.emails[0]'],
    ['a relative URI', { uris: ['example.org/alice'] }, 'allow.uris[0]'],
    ['a URI with a space', { uris: ['https://example.org/a b'] }, 'allow.uris[0]'],
    ['an empty URI', { uris: [''] }, 'allow.uris[0]'],
    ['a non-SPIFFE URI', { spiffe: ['https://example.org/a'] }, 'allow.spiffe[0]'],
    ['an upper-case trust domain', { spiffe: ['spiffe://Example.org/a'] }, 'allow.spiffe[0]'],
    ['a wildcard inside a SPIFFE path', { spiffe: ['spiffe://example.org/a', 'spiffe://example.org/*/b'] }, 'allow.spiffe[1]'],
    ['a number among SPIFFE IDs', { spiffe: [7] }, 'allow.spiffe[0]'],
    ['a short fingerprint', { fingerprints: ['AB:CD'] }, 'allow.fingerprints[0]'],
    ['a SHA-1 fingerprint', { fingerprints: ['a'.repeat(40)] }, 'allow.fingerprints[0]'],
    ['a number among fingerprints', { fingerprints: [0xab] }, 'allow.fingerprints[0]']
  ]
  for (const [name, rules, path] of cases) {
    t.test(name, async (t) => {
      const err = t.throws(() => compileAllow(rules as AllowRules, 'allow')) as Error & { code?: string }
      t.ok(err instanceof ClientCertInvalidOptionError)
      t.equal(err.code, 'FST_CLIENT_CERT_INVALID_OPTION')
      t.ok(err.message.startsWith(`Invalid fastify-client-cert option ${path}: `), err.message)
    })
  }
})

t.test('errors carry the prefix the caller passes, and the parse error as cause', async (t) => {
  const path = 'config.clientCert of route GET /admin.allow'
  t.throws(() => compileAllow({ spiffe: ['nope'] }, path), { message: new RegExp(`option ${path}\\.spiffe\\[0\\]: `) })
  t.throws(() => compileAllow({ subjects: ['nope'] }, path), { cause: CertificateParseError })
  t.throws(() => compileAllow({ fingerprints: ['nope'] }, path), { cause: CertificateParseError })
  t.throws(() => compileAllow({ spiffe: ['nope'] }, path), { cause: CertificateParseError })
  const err = t.throws(() => compileAllow({ dns: ['*'] }, path)) as Error
  t.equal(err.cause, undefined, 'a rule refused by allow itself has no cause')
  t.throws(() => compileAllow({}, path), { message: /\{ subjects: \[\] \}/ }, 'says how to admit no one')
})
