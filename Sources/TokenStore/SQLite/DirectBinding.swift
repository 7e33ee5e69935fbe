import GRDB
import GRDBSQLite

/// Runs a cached statement with its values bound straight through the SQLite C API, for the
/// statements every refresh rotation executes.
///
/// GRDB's `execute(arguments:)` boxes every value in a `DatabaseValue`, copies blobs into
/// `Data` and checks the arguments on every call; on the rotation path that cost more CPU than
/// SQLite's own work on the four statements. The statement still comes from GRDB's cache
/// (compiled once per connection, finalized by GRDB), and a failure still throws GRDB's
/// `DatabaseError` with SQLite's code and message, so the callers' error mapping is the same.
///
/// Only for statements inside a transaction the caller opened that do not end it (data
/// statements, savepoints): GRDB's transaction bookkeeping and observers (tokend registers
/// none) do not see these statements.
struct DirectBinding {
    private let statement: OpaquePointer
    private let connection: OpaquePointer

    /// Tells SQLite to copy a bound text or blob before the bind call returns.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    /// Resets the statement, binds with `bind`, steps it to its end and resets it again.
    /// Throws the statement's error, or a binding's (the statement then does not run), with
    /// the bindings cleared either way.
    ///
    /// The reset comes first because GRDB leaves a statement it ran finished but not reset
    /// (it resets before it runs one), and SQLite refuses to bind to a finished statement: the
    /// `sqlite3_step` after such refused bindings would run it with every parameter NULL.
    static func run(_ statement: Statement, _ db: Database, _ bind: (DirectBinding) throws -> Void) throws {
        guard let connection = db.sqliteConnection else {
            throw DatabaseError(resultCode: .SQLITE_MISUSE, message: "the connection is closed", sql: statement.sql)
        }
        let handle = statement.sqliteStatement
        let binding = DirectBinding(statement: handle, connection: connection)
        sqlite3_reset(handle)
        defer { sqlite3_clear_bindings(handle) }
        try bind(binding)
        var code = sqlite3_step(handle)
        while code == SQLITE_ROW { code = sqlite3_step(handle) }
        guard code == SQLITE_DONE else {
            let message = String(cString: sqlite3_errmsg(binding.connection))
            sqlite3_reset(handle)
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: statement.sql)
        }
        sqlite3_reset(handle)
    }

    /// Throws when SQLite refused a binding (an index out of range, a statement not reset).
    private func check(_ code: Int32, _ index: Int32) throws {
        guard code != SQLITE_OK else { return }
        throw DatabaseError(
            resultCode: ResultCode(rawValue: code),
            message: "binding parameter \(index): \(String(cString: sqlite3_errstr(code)))",
            sql: String(cString: sqlite3_sql(statement))
        )
    }

    func text(_ index: Int32, _ value: String) throws {
        guard !value.isEmpty else {
            // An empty string, not the NULL a nil pointer would bind.
            try check(sqlite3_bind_text(statement, index, "", 0, Self.transient), index)
            return
        }
        var value = value
        let code = value.withUTF8 { bytes in
            // By length, so a NUL inside the string is stored rather than ending it.
            bytes.withMemoryRebound(to: CChar.self) { chars in
                sqlite3_bind_text(statement, index, chars.baseAddress, Int32(chars.count), Self.transient)
            }
        }
        try check(code, index)
    }

    func blob(_ index: Int32, _ value: [UInt8]) throws {
        guard !value.isEmpty else {
            // A zero-length blob, not the NULL a nil pointer would bind.
            try check(sqlite3_bind_zeroblob(statement, index, 0), index)
            return
        }
        let code = value.withUnsafeBytes { bytes in
            sqlite3_bind_blob(statement, index, bytes.baseAddress, Int32(bytes.count), Self.transient)
        }
        try check(code, index)
    }

    func double(_ index: Int32, _ value: Double) throws {
        try check(sqlite3_bind_double(statement, index, value), index)
    }

    func text(_ index: Int32, _ value: String?) throws {
        if let value { try text(index, value) } else { try check(sqlite3_bind_null(statement, index), index) }
    }

    func double(_ index: Int32, _ value: Double?) throws {
        if let value { try double(index, value) } else { try check(sqlite3_bind_null(statement, index), index) }
    }

    func blob(_ index: Int32, _ value: [UInt8]?) throws {
        if let value { try blob(index, value) } else { try check(sqlite3_bind_null(statement, index), index) }
    }
}
