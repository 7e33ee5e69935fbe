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

    /// Binds with `bind`, steps the statement to its end and resets it. Throws the statement's
    /// error, with the bindings cleared either way.
    static func run(_ statement: Statement, _ db: Database, _ bind: (DirectBinding) -> Void) throws {
        let handle = statement.sqliteStatement
        let binding = DirectBinding(statement: handle, connection: db.sqliteConnection!)
        defer { sqlite3_clear_bindings(handle) }
        bind(binding)
        var code = sqlite3_step(handle)
        while code == SQLITE_ROW { code = sqlite3_step(handle) }
        guard code == SQLITE_DONE else {
            let message = String(cString: sqlite3_errmsg(binding.connection))
            sqlite3_reset(handle)
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: statement.sql)
        }
        sqlite3_reset(handle)
    }

    func text(_ index: Int32, _ value: String) {
        guard !value.isEmpty else {
            // An empty string, not the NULL a nil pointer would bind.
            sqlite3_bind_text(statement, index, "", 0, Self.transient)
            return
        }
        var value = value
        value.withUTF8 { bytes in
            // By length, so a NUL inside the string is stored rather than ending it.
            bytes.withMemoryRebound(to: CChar.self) { chars in
                _ = sqlite3_bind_text(statement, index, chars.baseAddress, Int32(chars.count), Self.transient)
            }
        }
    }

    func blob(_ index: Int32, _ value: [UInt8]) {
        guard !value.isEmpty else {
            // A zero-length blob, not the NULL a nil pointer would bind.
            sqlite3_bind_zeroblob(statement, index, 0)
            return
        }
        value.withUnsafeBytes { bytes in
            _ = sqlite3_bind_blob(statement, index, bytes.baseAddress, Int32(bytes.count), Self.transient)
        }
    }

    func double(_ index: Int32, _ value: Double) {
        sqlite3_bind_double(statement, index, value)
    }

    func text(_ index: Int32, _ value: String?) {
        if let value { text(index, value) } else { sqlite3_bind_null(statement, index) }
    }

    func double(_ index: Int32, _ value: Double?) {
        if let value { double(index, value) } else { sqlite3_bind_null(statement, index) }
    }

    func blob(_ index: Int32, _ value: [UInt8]?) {
        if let value { blob(index, value) } else { sqlite3_bind_null(statement, index) }
    }
}
