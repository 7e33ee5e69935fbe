internal import CArgon2

/// The libargon2 calls, synchronous: they run on the pool's worker threads (or the benchmark's
/// calling thread), never on an event loop or the cooperative pool.
enum PasswordArgon2 {
    /// Argon2id of `password` with `salt`, as the PHC string libargon2 encodes.
    static func hashEncoded(
        password: UnsafeRawBufferPointer,
        salt: [UInt8],
        parameters: PasswordHashingParameters,
        hashLength: Int = PasswordHashingParameters.hashLength
    ) throws(PasswordHashingError) -> String {
        let p = parameters
        let length = argon2_encodedlen(
            p.iterations,
            p.memoryKiB,
            p.parallelism,
            UInt32(salt.count),
            UInt32(hashLength),
            Argon2_id
        )
        var encoded = [CChar](repeating: 0, count: length + 16)
        let status = salt.withUnsafeBytes { salt in
            encoded.withUnsafeMutableBufferPointer { out in
                argon2id_hash_encoded(
                    p.iterations,
                    p.memoryKiB,
                    p.parallelism,
                    password.baseAddress,
                    password.count,
                    salt.baseAddress,
                    salt.count,
                    hashLength,
                    out.baseAddress,
                    out.count
                )
            }
        }
        guard status == ARGON2_OK.rawValue else { throw .hashingFailed("argon2id hashing failed: \(message(status))") }
        return encoded.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// True on a match, false on a mismatch (compared in constant time by libargon2), nil when
    /// libargon2 cannot decode `phc`; throws when it cannot compute (out of memory).
    static func verify(phc: String, password: UnsafeRawBufferPointer) throws(PasswordHashingError) -> Bool? {
        let status = phc.withCString { argon2id_verify($0, password.baseAddress, password.count) }
        switch status {
        case ARGON2_OK.rawValue: return true
        case ARGON2_VERIFY_MISMATCH.rawValue: return false
        case ARGON2_MEMORY_ALLOCATION_ERROR.rawValue, ARGON2_THREAD_FAIL.rawValue:
            throw .hashingFailed("argon2id verification failed: \(message(status))")
        default: return nil
        }
    }

    /// One raw Argon2id hash into `out` (the benchmark's unit of work).
    static func hashRaw(
        password: UnsafeRawBufferPointer,
        salt: UnsafeRawBufferPointer,
        parameters: PasswordHashingParameters,
        out: UnsafeMutableRawBufferPointer
    ) -> Bool {
        let p = parameters
        return argon2id_hash_raw(
            p.iterations,
            p.memoryKiB,
            p.parallelism,
            password.baseAddress,
            password.count,
            salt.baseAddress,
            salt.count,
            out.baseAddress,
            out.count
        ) == ARGON2_OK.rawValue
    }

    static func message(_ status: Int32) -> String {
        guard let text = argon2_error_message(status) else { return "error \(status)" }
        return String(cString: text)
    }
}
