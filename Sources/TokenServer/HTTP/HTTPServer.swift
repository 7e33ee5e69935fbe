import CodedErrors
import Glibc
public import Logging
import Metrics
public import NIOCore
import NIOPosix
public import ServiceLifecycle
import Synchronization

/// The HTTP/1.1 server: one or more listeners (Unix sockets it binds, sockets passed by
/// systemd, TCP), each with its routes, run as a ``Service``.
///
/// `run()` binds every listener, calls `onReady` once all of them accept, serves until
/// graceful shutdown (or cancellation), then stops accepting, removes the Unix socket files
/// it created, lets in-flight requests finish for at most `drainTimeout` while idle keep-alive
/// connections close, closes what is left, and returns.
///
/// Limits (see ``HTTPServerConfiguration``): 413 over `maxBodyBytes` (from `Content-Length`
/// and from the bytes received), 431 over `maxHeaderBytes`, 400 for malformed HTTP, 404 and
/// 405 with `Allow` from the router, idle connections closed after `idleTimeout`, a head slower
/// than `headerTimeout` or a body slower than `bodyTimeout` answered 408 and closed, and beyond
/// a listener's connection cap a new connection is answered 503 with `Retry-After: 1` and
/// closed. Each listener has its own cap, so clients of one cannot take another's room.
public final class HTTPServer: Service, Sendable {
    private let listeners: [HTTPListener]
    private let configuration: HTTPServerConfiguration
    private let logger: Logger
    private let onReady: @Sendable () -> Void
    private let metricsFactory: any MetricsFactory
    private let registry: ConnectionRegistry
    private let stopSignal = StopSignal()
    /// The event loops connections are served on: the caller's group when the configuration
    /// gives one, else NIO's singleton; never shut down by the server.
    private let group: any EventLoopGroup
    private let state = Mutex(RunState())

    private struct RunState {
        var started = false
        var addresses: [SocketAddress] = []
    }

    /// A bound listener and, for a socket file this server created, what to remove at the end.
    private struct Bound {
        var channel: any Channel
        var description: String
        /// The address clients use: the channel's own, except for a Unix socket bound under a
        /// staging name.
        var address: SocketAddress?
        var socketFile: (path: String, identity: FileIdentity?)?
    }

    public init(
        listeners: [HTTPListener],
        configuration: HTTPServerConfiguration = HTTPServerConfiguration(),
        logger: Logger,
        onReady: @escaping @Sendable () -> Void = {}
    ) {
        self.listeners = listeners
        self.configuration = configuration
        self.logger = logger
        self.onReady = onReady
        self.metricsFactory = configuration.metricsFactory ?? MetricsSystem.factory
        self.registry = ConnectionRegistry(
            limits: listeners.map { $0.maxConnections ?? configuration.maxConnections },
            metricsFactory: metricsFactory
        )
        self.group = configuration.eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
    }

    /// Why `run()` would refuse the directory of a Unix socket path (group or others may write
    /// it), or nil: for a daemon that wants to say so before it opens anything else. A missing
    /// directory passes (`run()` creates it 0755).
    public static func socketDirectoryProblem(of path: String) -> String? {
        let directory = UnixSocketFile.parentDirectory(of: path)
        guard access(directory, F_OK) == 0 else { return nil }
        do {
            try UnixSocketFile.checkDirectory(directory)
            return nil
        } catch {
            return error.reason
        }
    }

    /// "another tokend is serving PATH" when a server accepts on the Unix socket `path`, else
    /// nil: for a daemon that wants to stop before it opens (and migrates) its store under a
    /// running one. `run()` checks again when it binds.
    public static func socketInUseProblem(of path: String) -> String? {
        UnixSocketFile.isServed(path) ? UnixSocketFile.servedMessage(path) : nil
    }

    /// The addresses the listeners are bound to, in listener order, once `run()` has bound
    /// them (empty before, and again after shutdown). A TCP listener on port 0 shows its port.
    public var localAddresses: [SocketAddress] {
        state.withLock { $0.addresses }
    }

    /// The number of open connections.
    public var connectionCount: Int { registry.count }

    /// Starts the graceful shutdown, as a `ServiceGroup`'s graceful shutdown does; for callers
    /// that run the server outside a service group.
    public func triggerGracefulShutdown() {
        stopSignal.fire(.graceful)
    }

    /// Binds every listener, calls `onReady`, serves until graceful shutdown or cancellation,
    /// drains, and returns. Throws ``HTTPServerError`` when a listener cannot be set up (after
    /// releasing the ones already bound).
    public func run() async throws {
        let alreadyStarted = state.withLock { state in
            defer { state.started = true }
            return state.started
        }
        precondition(!alreadyStarted, "HTTPServer.run() may be called only once")

        let bound = try await bindAll()
        state.withLock { $0.addresses = bound.compactMap(\.address) }
        for listener in bound {
            logger.info("listening", metadata: ["address": "\(listener.description)"])
        }
        onReady()

        let reason = await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await self.stopSignal.wait()
            } onCancel: {
                self.stopSignal.fire(.cancelled)
            }
        } onGracefulShutdown: {
            self.stopSignal.fire(.graceful)
        }

        await shutdown(bound, drainTimeout: reason == .graceful ? configuration.drainTimeout : .zero)
    }

    // MARK: Binding

    private func bindAll() async throws -> [Bound] {
        var bound: [Bound] = []
        do {
            for (index, listener) in listeners.enumerated() {
                bound.append(try await bind(listener, index: index))
            }
        } catch {
            for listener in bound {
                try? await listener.channel.close()
                if let file = listener.socketFile { UnixSocketFile.remove(file.path, ifStill: file.identity) }
            }
            throw error
        }
        return bound
    }

    private func bind(_ listener: HTTPListener, index: Int) async throws -> Bound {
        let context = ListenerContext(
            router: listener.router,
            kind: listener.kind,
            configuration: configuration,
            logger: logger,
            registry: registry,
            metricsFactory: metricsFactory,
            addressDescription: listener.address.description,
            index: index,
            maxConnections: listener.maxConnections ?? configuration.maxConnections,
            refusals: IntervalLog(),
            timeouts: IntervalLog()
        )
        let description = "\(listener.address) (\(listener.kind.rawValue))"
        switch listener.address {
        case .unixPath(let path, let mode):
            try UnixSocketFile.prepare(path)
            // Bound in a private directory, given its mode, then linked to its final name: never
            // reachable with a wider mode than its final one (UnixSocketFile).
            let staging = try UnixSocketFile.Staging(beside: path)
            defer { staging.remove() }
            let channel: any Channel
            do {
                channel = try await makeBootstrap(context, tcp: false).bind(unixDomainSocketPath: staging.socketPath)
                    .get()
            } catch {
                throw HTTPServerError.bindFailed("cannot listen on \(path): \(error)")
            }
            do {
                try staging.publish(as: path, mode: mode)
            } catch {
                try? await channel.close()
                throw error
            }
            let identity = UnixSocketFile.identity(of: path)
            return Bound(
                channel: channel,
                description: description,
                address: try? SocketAddress(unixDomainSocketPath: path),
                socketFile: (path, identity)
            )

        case .descriptor(let fd):
            var info = stat()
            guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK else {
                throw HTTPServerError.invalidDescriptor("file descriptor \(fd) is not an open socket")
            }
            let isTCP = Self.socketFamily(fd).map { $0 == AF_INET || $0 == AF_INET6 } ?? false
            do {
                let channel = try await makeBootstrap(context, tcp: isTCP).withBoundSocket(fd).get()
                return Bound(channel: channel, description: description, address: channel.localAddress, socketFile: nil)
            } catch {
                throw HTTPServerError.invalidDescriptor("cannot listen on file descriptor \(fd): \(error)")
            }

        case .tcp(let host, let port):
            do {
                let channel = try await makeBootstrap(context, tcp: true).bind(host: host, port: port).get()
                return Bound(channel: channel, description: description, address: channel.localAddress, socketFile: nil)
            } catch {
                throw HTTPServerError.bindFailed("cannot listen on \(listener.address): \(error)")
            }
        }
    }

    private static func socketFamily(_ fd: Int32) -> Int32? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return result == 0 ? Int32(storage.ss_family) : nil
    }

    private func makeBootstrap(_ context: ListenerContext, tcp: Bool) -> ServerBootstrap {
        var bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: Int32(clamping: configuration.backlog))
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            // Backpressure: a connection whose client does not read stops being served and
            // read from once this much of its answers is queued (HTTPConnectionHandler).
            .childChannelOption(
                .writeBufferWaterMark,
                value: ChannelOptions.Types.WriteBufferWaterMark(low: 64 * 1024, high: 256 * 1024)
            )
            // A client that shuts down its side (`nc -N`, `shutdown(SHUT_WR)`) still reads the
            // answers to what it sent.
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try HTTPServer.configureConnection(channel, context)
                }
            }
        if tcp {
            bootstrap = bootstrap.childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
        }
        return bootstrap
    }

    /// Builds a connection's pipeline, or the refusal when the cap is reached. Runs on the
    /// connection's event loop.
    private static func configureConnection(_ channel: any Channel, _ context: ListenerContext) throws {
        let pipeline = channel.pipeline.syncOperations
        let configuration = context.configuration
        switch context.registry.admit(channel, listener: context.index) {
        case .accepted:
            break
        case .overCapacity:
            context.refusals.record(on: channel.eventLoop) { refused in logRefusals(refused, context) }
            HTTPMetrics.recordRefused(route: "over_capacity", status: 503, factory: context.metricsFactory)
            let refusal = HTTPError.unavailable(
                "the server has reached its limit of \(context.maxConnections) connections; retry shortly"
            )
            try pipeline.addHandler(
                ConnectionRejector(
                    response: refusal.rawResponseBytes,
                    linger: TimeAmount(configuration.lingerTimeout),
                    lingering: context.lingeringRefusals
                )
            )
            return
        case .shuttingDown:
            throw ChannelError.ioOnClosedChannel
        }
        let registry = context.registry
        channel.closeFuture.whenComplete { _ in registry.remove(channel) }

        try pipeline.addHandler(HTTPConnectionHandler(listener: context, allocator: channel.allocator))
    }

    /// One line for the connections refused at the cap since the last such line.
    private static func logRefusals(_ refused: Int, _ context: ListenerContext) {
        context.logger.warning(
            "connections refused: the connection limit is reached",
            metadata: [
                "refused": "\(refused)",
                "interval": "\(context.refusals.intervalSeconds) s",
                "limit": "\(context.maxConnections)",
                "listener": "\(context.addressDescription)",
            ]
        )
    }

    // MARK: Shutdown

    private func shutdown(_ bound: [Bound], drainTimeout: Duration) async {
        logger.info(
            "stopping: no longer accepting connections",
            metadata: ["open_connections": "\(registry.count)", "drain_timeout": "\(drainTimeout)"]
        )
        // Connections learn first (every answer from now on carries `Connection: close`), then
        // the listeners close; a connection accepted in between is refused by the registry.
        registry.quiesce()
        for listener in bound {
            try? await listener.channel.close()
            if let file = listener.socketFile { UnixSocketFile.remove(file.path, ifStill: file.identity) }
        }

        let registry = self.registry
        let logger = self.logger
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await registry.waitUntilEmpty()
                return true
            }
            group.addTask {
                if drainTimeout > .zero { try? await Task.sleep(for: drainTimeout) }
                return false
            }
            if await group.next() == false, registry.count > 0 {
                logger.warning(
                    "closing connections whose requests did not finish within the drain timeout",
                    metadata: ["connections": "\(registry.count)", "drain_timeout": "\(drainTimeout)"]
                )
                registry.closeAll()
            }
            group.cancelAll()
        }
        state.withLock { $0.addresses = [] }
        logger.info("stopped")
    }
}
