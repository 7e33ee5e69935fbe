import GRDB

extension TokenStoreError {
    /// Maps a failure of `operation` on the database at `path` to a `TokenStoreError` whose
    /// description is safe to log.
    ///
    /// SQLite's own message is kept only where it names schema objects and never a bound
    /// value (constraint failures); GRDB's description, which may carry SQL, is never used.
    /// `TokenStoreError`, `CancellationError` and errors thrown by a caller's closure (the
    /// `decide` of `updateRefreshToken`) pass through unchanged.
    static func mapping(
        _ error: any Error,
        operation: String,
        path: String,
        file: String = #fileID,
        line: Int = #line
    ) -> any Error {
        switch error {
        case let error as TokenStoreError:
            return error
        case let error as DatabaseError:
            return mapping(error, operation: operation, path: path, file: file, line: line)
        case is RowDecodingError:
            return TokenStoreError(
                .schema,
                "\(operation): a stored row of \(path) cannot be read; the database is damaged",
                file: file,
                line: line
            )
        default:
            return error
        }
    }

    private static func mapping(
        _ error: DatabaseError,
        operation: String,
        path: String,
        file: String,
        line: Int
    ) -> TokenStoreError {
        let code: Code
        let what: String
        var field: String?
        switch error.resultCode {
        case .SQLITE_CONSTRAINT:
            code = .conflict
            what = "a constraint failed (\(error.message ?? "constraint"))"
            field = uniqueField(error)
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            code = .unavailable
            what = "the database is locked by another connection and the busy timeout passed"
        case .SQLITE_READONLY:
            code = .unavailable
            what = "the database or its file system is read-only"
        case .SQLITE_IOERR:
            code = .unavailable
            what = "disk I/O error (SQLite extended code \(error.extendedResultCode.rawValue))"
        case .SQLITE_FULL:
            code = .unavailable
            what = "the disk is full"
        case .SQLITE_CANTOPEN:
            code = .unavailable
            what = "the database file cannot be opened"
        case .SQLITE_PERM, .SQLITE_AUTH:
            code = .unavailable
            what = "permission denied"
        case .SQLITE_CORRUPT:
            code = .schema
            what = "the database file is damaged; restore it from a backup"
        case .SQLITE_NOTADB:
            code = .schema
            what = "the file is not a SQLite database"
        case .SQLITE_INTERRUPT:
            code = .unavailable
            what = "interrupted because the task was cancelled"
        case .SQLITE_MISUSE where error.message == "Connection is closed":
            code = .unavailable
            what = "the store is closed"
        case .SQLITE_NOMEM:
            code = .unavailable
            what = "out of memory"
        default:
            code = .unavailable
            what = "SQLite error \(error.extendedResultCode.rawValue)"
        }
        return TokenStoreError(code, "\(operation) on \(path) failed: \(what)", field: field, file: file, line: line)
    }

    /// The user value a UNIQUE constraint failure is about, as `UserStore` names it. The
    /// stores check these before inserting; this covers a failure that still reaches SQLite.
    private static func uniqueField(_ error: DatabaseError) -> String? {
        guard
            error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE
                || error.extendedResultCode == .SQLITE_CONSTRAINT_PRIMARYKEY,
            let message = error.message
        else { return nil }
        if message.hasSuffix("users.email") { return "email" }
        if message.hasSuffix("'users_by_username'") { return "username" }
        if message.hasSuffix("users.public_id") { return "public_id" }
        return nil
    }
}
