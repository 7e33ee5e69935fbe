/// The one shape of tokend's errors: a ``Code`` to decide on, a ``reason`` for people, and the
/// place that raised the error, captured by the error type's factory methods.
///
/// An error type declares its `Code` (a struct over the text people read, with a static member
/// per kind; the texts of one type differ, they are what tells codes apart) and its factories,
/// and keeps its fields in ``storage``; this extension gives it the rest. Equality and hashing are on ``code`` alone, never on the wording. ``description`` —
/// the reason, the code and the place — is safe to log: reasons never hold a token, a password,
/// a hash or key material.
public protocol CodedError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure this is.
    associatedtype Code: Hashable, Sendable, CustomStringConvertible
    /// What a caller needs beyond the code (which field conflicts, when to retry); `Void`
    /// when nothing.
    associatedtype Details: Sendable = Void

    /// The fields behind ``code``, ``reason``, ``file`` and ``line``, in one reference, so a
    /// thrown error stays one word wide.
    var storage: CodedErrorStorage<Code, Details> { get }
}

extension CodedError {
    /// The kind of failure.
    public var code: Code { storage.code }
    /// A human explanation: what was wrong and what is accepted.
    public var reason: String { storage.reason }
    /// Where the error was raised.
    public var file: String { storage.file }
    /// Where the error was raised.
    public var line: Int { storage.line }

    public var description: String {
        "\(reason) (\(code); \(file):\(line))"
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.code == rhs.code
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
    }
}

/// The fields of a ``CodedError``, immutable once made.
public final class CodedErrorStorage<Code: Hashable & Sendable, Details: Sendable>: Sendable {
    public let code: Code
    public let reason: String
    public let details: Details
    public let file: String
    public let line: Int

    public init(_ code: Code, _ reason: String, details: Details, file: String, line: Int) {
        self.code = code
        self.reason = reason
        self.details = details
        self.file = file
        self.line = line
    }
}

extension CodedErrorStorage where Details == Void {
    public convenience init(_ code: Code, _ reason: String, file: String, line: Int) {
        self.init(code, reason, details: (), file: file, line: line)
    }
}
