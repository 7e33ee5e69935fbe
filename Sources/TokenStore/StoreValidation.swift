/// Checks shared by every implementation before a write.
package enum StoreValidation {
    /// The length of a SHA-256 digest: the only form in which a refresh token is stored.
    package static let hashLength = 32

    package static func checkHash(_ hash: [UInt8], _ what: String) throws {
        guard hash.count == hashLength else {
            throw TokenStoreError.conflict(
                "\(what) must be a \(hashLength)-byte SHA-256 digest, got \(hash.count) bytes"
            )
        }
    }

    package static func checkNewFamily(_ family: RefreshFamily, firstToken: RefreshTokenRecord) throws {
        try checkHash(firstToken.hash, "the refresh token hash")
        if let successor = firstToken.successorHash { try checkHash(successor, "the successor hash") }
        guard firstToken.familyID == family.id else {
            throw TokenStoreError.conflict(
                "the first refresh token names family \(firstToken.familyID), not \(family.id)"
            )
        }
    }

    package static func checkRotation(spent: RefreshTokenRecord, successor: RefreshTokenRecord) throws {
        try checkHash(spent.hash, "the spent token hash")
        try checkHash(successor.hash, "the successor token hash")
        if let next = spent.successorHash { try checkHash(next, "the successor hash") }
        guard spent.familyID == successor.familyID else {
            throw TokenStoreError.conflict(
                "rotation crosses families: spent token of \(spent.familyID), successor of \(successor.familyID)"
            )
        }
        guard spent.hash != successor.hash else {
            throw TokenStoreError.conflict("rotation to the same token hash in family \(spent.familyID)")
        }
    }
}
