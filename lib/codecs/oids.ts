/**
 * Attribute types of distinguished names. The first name of each row is the one OpenSSL 3 prints
 * with XN_FLAG_FN_SN (so nginx, Apache, HAProxy and Node's X509Certificate print it too), checked
 * against `openssl x509 -nameopt RFC2253` for every row; the canonical string must reproduce it.
 * OpenSSL dumps a type it does not know as `<dotted OID>=#<DER hex>`, so this table holds every
 * attribute-type OID of the X.520, PKCS #9, RFC 1274 (pilot), RFC 3739 (personal data), EV
 * jurisdiction and Russian arcs that OpenSSL names: a type missing here would print differently.
 * Later names are aliases accepted on input: OpenSSL's long names and the usual short forms
 * (Microsoft's E, S, T, G, I, POBox, Phone).
 */
const TABLE: ReadonlyArray<readonly [oid: string, name: string, ...aliases: string[]]> = [
  ['2.5.4.3', 'CN', 'commonName'],
  ['2.5.4.4', 'SN', 'surname'],
  ['2.5.4.5', 'serialNumber'],
  ['2.5.4.6', 'C', 'countryName'],
  ['2.5.4.7', 'L', 'localityName'],
  ['2.5.4.8', 'ST', 'stateOrProvinceName', 'S'],
  ['2.5.4.9', 'street', 'streetAddress'],
  ['2.5.4.10', 'O', 'organizationName'],
  ['2.5.4.11', 'OU', 'organizationalUnitName'],
  ['2.5.4.12', 'title', 'T'],
  ['2.5.4.13', 'description'],
  ['2.5.4.14', 'searchGuide'],
  ['2.5.4.15', 'businessCategory'],
  ['2.5.4.16', 'postalAddress'],
  ['2.5.4.17', 'postalCode'],
  ['2.5.4.18', 'postOfficeBox', 'POBox'],
  ['2.5.4.19', 'physicalDeliveryOfficeName'],
  ['2.5.4.20', 'telephoneNumber', 'Phone'],
  ['2.5.4.21', 'telexNumber'],
  ['2.5.4.22', 'teletexTerminalIdentifier'],
  ['2.5.4.23', 'facsimileTelephoneNumber'],
  ['2.5.4.24', 'x121Address'],
  ['2.5.4.25', 'internationaliSDNNumber'],
  ['2.5.4.26', 'registeredAddress'],
  ['2.5.4.27', 'destinationIndicator'],
  ['2.5.4.28', 'preferredDeliveryMethod'],
  ['2.5.4.29', 'presentationAddress'],
  ['2.5.4.30', 'supportedApplicationContext'],
  ['2.5.4.31', 'member'],
  ['2.5.4.32', 'owner'],
  ['2.5.4.33', 'roleOccupant'],
  ['2.5.4.34', 'seeAlso'],
  ['2.5.4.35', 'userPassword'],
  ['2.5.4.36', 'userCertificate'],
  ['2.5.4.37', 'cACertificate'],
  ['2.5.4.38', 'authorityRevocationList'],
  ['2.5.4.39', 'certificateRevocationList'],
  ['2.5.4.40', 'crossCertificatePair'],
  ['2.5.4.41', 'name'],
  ['2.5.4.42', 'GN', 'givenName', 'G'],
  ['2.5.4.43', 'initials', 'I'],
  ['2.5.4.44', 'generationQualifier'],
  ['2.5.4.45', 'x500UniqueIdentifier'],
  ['2.5.4.46', 'dnQualifier'],
  ['2.5.4.47', 'enhancedSearchGuide'],
  ['2.5.4.48', 'protocolInformation'],
  ['2.5.4.49', 'distinguishedName'],
  ['2.5.4.50', 'uniqueMember'],
  ['2.5.4.51', 'houseIdentifier'],
  ['2.5.4.52', 'supportedAlgorithms'],
  ['2.5.4.53', 'deltaRevocationList'],
  ['2.5.4.54', 'dmdName'],
  ['2.5.4.65', 'pseudonym'],
  ['2.5.4.72', 'role'],
  ['2.5.4.97', 'organizationIdentifier'],
  ['2.5.4.98', 'c3', 'countryCode3c'],
  ['2.5.4.99', 'n3', 'countryCode3n'],
  ['2.5.4.100', 'dnsName'],
  ['1.2.840.113549.1.9.1', 'emailAddress', 'E', 'EMAIL'],
  ['1.2.840.113549.1.9.2', 'unstructuredName'],
  ['1.2.840.113549.1.9.3', 'contentType'],
  ['1.2.840.113549.1.9.4', 'messageDigest'],
  ['1.2.840.113549.1.9.5', 'signingTime'],
  ['1.2.840.113549.1.9.6', 'countersignature'],
  ['1.2.840.113549.1.9.7', 'challengePassword'],
  ['1.2.840.113549.1.9.8', 'unstructuredAddress'],
  ['1.2.840.113549.1.9.9', 'extendedCertificateAttributes'],
  ['1.2.840.113549.1.9.14', 'extReq'],
  ['1.2.840.113549.1.9.15', 'SMIME-CAPS'],
  ['1.2.840.113549.1.9.16', 'SMIME'],
  ['1.2.840.113549.1.9.20', 'friendlyName'],
  ['1.2.840.113549.1.9.21', 'localKeyID'],
  // UID before uid: case-insensitively `uid` is userId (RFC 4514); only the exact
  // spelling `uid`, OpenSSL's name for uniqueIdentifier, means .44.
  ['0.9.2342.19200300.100.1.1', 'UID', 'userId'],
  ['0.9.2342.19200300.100.1.2', 'textEncodedORAddress'],
  ['0.9.2342.19200300.100.1.3', 'mail', 'rfc822Mailbox'],
  ['0.9.2342.19200300.100.1.4', 'info'],
  ['0.9.2342.19200300.100.1.5', 'favouriteDrink'],
  ['0.9.2342.19200300.100.1.6', 'roomNumber'],
  ['0.9.2342.19200300.100.1.7', 'photo'],
  ['0.9.2342.19200300.100.1.8', 'userClass'],
  ['0.9.2342.19200300.100.1.9', 'host'],
  ['0.9.2342.19200300.100.1.10', 'manager'],
  ['0.9.2342.19200300.100.1.11', 'documentIdentifier'],
  ['0.9.2342.19200300.100.1.12', 'documentTitle'],
  ['0.9.2342.19200300.100.1.13', 'documentVersion'],
  ['0.9.2342.19200300.100.1.14', 'documentAuthor'],
  ['0.9.2342.19200300.100.1.15', 'documentLocation'],
  ['0.9.2342.19200300.100.1.20', 'homeTelephoneNumber'],
  ['0.9.2342.19200300.100.1.21', 'secretary'],
  ['0.9.2342.19200300.100.1.22', 'otherMailbox'],
  ['0.9.2342.19200300.100.1.23', 'lastModifiedTime'],
  ['0.9.2342.19200300.100.1.24', 'lastModifiedBy'],
  ['0.9.2342.19200300.100.1.25', 'DC', 'domainComponent'],
  ['0.9.2342.19200300.100.1.26', 'aRecord'],
  ['0.9.2342.19200300.100.1.27', 'pilotAttributeType27'],
  ['0.9.2342.19200300.100.1.28', 'mXRecord'],
  ['0.9.2342.19200300.100.1.29', 'nSRecord'],
  ['0.9.2342.19200300.100.1.30', 'sOARecord'],
  ['0.9.2342.19200300.100.1.31', 'cNAMERecord'],
  ['0.9.2342.19200300.100.1.37', 'associatedDomain'],
  ['0.9.2342.19200300.100.1.38', 'associatedName'],
  ['0.9.2342.19200300.100.1.39', 'homePostalAddress'],
  ['0.9.2342.19200300.100.1.40', 'personalTitle'],
  ['0.9.2342.19200300.100.1.41', 'mobileTelephoneNumber'],
  ['0.9.2342.19200300.100.1.42', 'pagerTelephoneNumber'],
  ['0.9.2342.19200300.100.1.43', 'friendlyCountryName'],
  ['0.9.2342.19200300.100.1.44', 'uid', 'uniqueIdentifier'],
  ['0.9.2342.19200300.100.1.45', 'organizationalStatus'],
  ['0.9.2342.19200300.100.1.46', 'janetMailbox'],
  ['0.9.2342.19200300.100.1.47', 'mailPreferenceOption'],
  ['0.9.2342.19200300.100.1.48', 'buildingName'],
  ['0.9.2342.19200300.100.1.49', 'dSAQuality'],
  ['0.9.2342.19200300.100.1.50', 'singleLevelQuality'],
  ['0.9.2342.19200300.100.1.51', 'subtreeMinimumQuality'],
  ['0.9.2342.19200300.100.1.52', 'subtreeMaximumQuality'],
  ['0.9.2342.19200300.100.1.53', 'personalSignature'],
  ['0.9.2342.19200300.100.1.54', 'dITRedirect'],
  ['0.9.2342.19200300.100.1.55', 'audio'],
  ['0.9.2342.19200300.100.1.56', 'documentPublisher'],
  ['1.3.6.1.5.5.7.9.1', 'id-pda-dateOfBirth'],
  ['1.3.6.1.5.5.7.9.2', 'id-pda-placeOfBirth'],
  ['1.3.6.1.5.5.7.9.3', 'id-pda-gender'],
  ['1.3.6.1.5.5.7.9.4', 'id-pda-countryOfCitizenship'],
  ['1.3.6.1.5.5.7.9.5', 'id-pda-countryOfResidence'],
  ['1.3.6.1.4.1.311.60.2.1.1', 'jurisdictionL', 'jurisdictionLocalityName'],
  ['1.3.6.1.4.1.311.60.2.1.2', 'jurisdictionST', 'jurisdictionStateOrProvinceName'],
  ['1.3.6.1.4.1.311.60.2.1.3', 'jurisdictionC', 'jurisdictionCountryName'],
  ['1.2.643.3.131.1.1', 'INN'],
  ['1.2.643.100.1', 'OGRN'],
  ['1.2.643.100.3', 'SNILS'],
  ['1.2.643.100.5', 'OGRNIP']
]

/** An attribute type: OpenSSL's short name and the dotted OID. */
export interface AttributeType {
  readonly name: string
  readonly oid: string
}

const byOID = new Map<string, AttributeType>()
const byName = new Map<string, AttributeType>()
const byLowerName = new Map<string, AttributeType>()

for (const [oid, name, ...aliases] of TABLE) {
  const type: AttributeType = Object.freeze({ name, oid })
  byOID.set(oid, type)
  byName.set(name, type)
  for (const alias of [name, ...aliases]) {
    const lower = alias.toLowerCase()
    if (!byLowerName.has(lower)) byLowerName.set(lower, type)
  }
}

/** The type OpenSSL names for a dotted OID, or undefined when OpenSSL would print the OID. */
export function attributeTypeByOID (oid: string): AttributeType | undefined {
  return byOID.get(oid)
}

/**
 * The type for a name: OpenSSL's exact spelling first (so every OpenSSL rendering reads back as
 * written), then any name or alias case-insensitively (RFC 4514 section 3). Undefined if unknown.
 */
export function attributeTypeByName (name: string): AttributeType | undefined {
  return byName.get(name) ?? byLowerName.get(name.toLowerCase())
}

/** Every known type, in table order (for tests and documentation). */
export function attributeTypes (): AttributeType[] {
  return [...byOID.values()]
}
