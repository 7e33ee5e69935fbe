internal import CArgon2

/// The one copy tokend makes of a password's UTF-8 bytes, on the heap, overwritten with zeros
/// (explicit_bzero) and freed when the last reference goes — after the worker has hashed it, or
/// when a queued job is refused or cancelled.
final class PasswordBuffer: @unchecked Sendable {
    // Safety: the bytes are written only in init, before the buffer is shared with a worker,
    // and in deinit, when no other reference exists; every access in between only reads.
    private let storage: UnsafeMutableRawBufferPointer
    let count: Int

    /// Copies `password`'s UTF-8 bytes without an intermediate array.
    init(copying password: String) {
        let utf8 = password.utf8
        count = utf8.count
        storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 1)
        let storage = self.storage
        let copied: Void? = utf8.withContiguousStorageIfAvailable { source in
            storage.copyMemory(from: UnsafeRawBufferPointer(source))
        }
        if copied == nil {
            for (offset, byte) in utf8.enumerated() { storage[offset] = byte }
        }
    }

    deinit {
        tokend_argon2_wipe(storage.baseAddress, storage.count)
        storage.deallocate()
    }

    /// The password bytes, valid only inside `body`.
    func withBytes<Result, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try body(UnsafeRawBufferPointer(rebasing: storage[0..<count]))
    }
}
