/// `PasswordHasher` as `AccountService` uses it.
extension PasswordHasher: PasswordHashing {
    public func hashPassword(_ password: String) async throws -> String {
        try await hash(password)
    }

    public func verifyPassword(_ password: String, phc: String) async throws -> (matches: Bool, needsRehash: Bool) {
        let result = try await verify(password: password, phc: phc)
        return (result.matches, result.needsRehash)
    }

    public func verifyDummyPassword(_ password: String) async throws {
        try await verifyDummy(password: password)
    }

    public func isOverloaded(_ error: any Error) -> Bool {
        (error as? PasswordHashingError)?.code == .overloaded
    }
}
