public import CodedErrors

/// A store failure: what went wrong, naming the operation and the failure, never a token, a hash
/// or another bound value.
///
/// Equality is on ``code`` only; ``description`` is safe to log.
public struct TokenStoreError: CodedError {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code as people read it, in logs and messages.
        public let description: String

        private init(_ description: String) {
            self.description = description
        }

        /// The store cannot be reached or opened; retry later.
        public static let unavailable = Code("unavailable")
        /// Files have unsafe permissions or cannot be created.
        public static let permissions = Code("permissions")
        /// The schema is newer than this binary or damaged.
        public static let schema = Code("schema")
        /// A constraint failed (duplicate id, …) or the input is invalid.
        public static let conflict = Code("conflict")

    }

    /// For a `.conflict` over a value that must be unique, the value's name: `"email"`,
    /// `"username"` or `"public_id"` for users (`UserStore.createUser`). Nil for every other
    /// error, including invalid input. Callers decide on this, never on `reason`'s wording.
    public var field: String? { storage.details }

    public let storage: CodedErrorStorage<Code, String?>

    init(_ code: Code, _ reason: String, field: String? = nil, file: String, line: Int) {
        self.storage = CodedErrorStorage(code, reason, details: field, file: file, line: line)
    }

    /// The store cannot be reached or opened.
    public static func unavailable(_ reason: String, file: String = #fileID, line: Int = #line) -> TokenStoreError {
        TokenStoreError(.unavailable, reason, file: file, line: line)
    }

    /// Files have unsafe permissions or cannot be created.
    public static func permissions(_ reason: String, file: String = #fileID, line: Int = #line) -> TokenStoreError {
        TokenStoreError(.permissions, reason, file: file, line: line)
    }

    /// The schema is newer than this binary or damaged.
    public static func schema(_ reason: String, file: String = #fileID, line: Int = #line) -> TokenStoreError {
        TokenStoreError(.schema, reason, file: file, line: line)
    }

    /// A constraint failed (duplicate id, …); `field` names the unique value that is taken.
    public static func conflict(
        _ reason: String,
        field: String? = nil,
        file: String = #fileID,
        line: Int = #line
    ) -> TokenStoreError {
        TokenStoreError(.conflict, reason, field: field, file: file, line: line)
    }
}
