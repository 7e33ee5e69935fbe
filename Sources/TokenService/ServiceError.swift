/// A failure of a TokenService operation, with a reason safe to show and log.
public struct ServiceError: Error, CustomStringConvertible, Equatable, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public var description: String { name }

        /// The request is malformed or names something that cannot be.
        public static let invalidRequest = Code(name: "invalid_request")
        /// Rotation refused because the next key is not yet safe to use.
        public static let rotationTooEarly = Code(name: "rotation_too_early")
        /// No such key, user, token or family.
        public static let notFound = Code(name: "not_found")
        /// The store or key directory cannot answer; retry later.
        public static let unavailable = Code(name: "temporarily_unavailable")
        /// The key directory or keyring is inconsistent.
        public static let keyring = Code(name: "keyring_error")
    }

    public let code: Code
    public let reason: String
    public let file: String
    public let line: Int

    public init(_ code: Code, _ reason: String, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.reason = reason
        self.file = file
        self.line = line
    }

    public var description: String { reason }

    public static func == (lhs: ServiceError, rhs: ServiceError) -> Bool { lhs.code == rhs.code }
}
