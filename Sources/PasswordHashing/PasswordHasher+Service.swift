public import ServiceLifecycle

/// The hashing pool as a member of the daemon's `ServiceGroup`: it hashes from the start, and
/// on graceful shutdown (or cancellation) refuses new jobs, lets the workers finish the queued
/// ones and returns once they exit. Put it before the server in the group, so it stops only
/// after the server has stopped taking requests.
extension PasswordHasher: Service {
    public func run() async throws {
        try? await gracefulShutdown()
        await shutdown()
    }
}
