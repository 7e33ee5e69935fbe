/// What a token store can do right now, as `TokenStore.health()` finds it: each part is nil
/// when it works, else the reason it does not (safe to log and to show on `/healthz`).
public struct StoreHealth: Sendable, Equatable {
    /// Why reads fail (refresh, sign-in, explain), or nil.
    public var reads: String?
    /// Why writes fail or are refused (revocations, sign-ups, refresh rotations), or nil.
    public var writes: String?

    public init(reads: String? = nil, writes: String? = nil) {
        self.reads = reads
        self.writes = writes
    }
}
