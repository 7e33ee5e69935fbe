import ArgumentParser
import Foundation
import JOSE
import Logging
import Metrics
import NIOPosix
import PasswordHashing
import PostgresStore
import Prometheus
import ServiceLifecycle
import Synchronization
import Systemd
import TokenCrypto
import TokenServer
import TokenService
import TokenStore
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// The token daemon: configuration → store → keyring → service → sockets, in one
/// ServiceGroup. SIGTERM drains and exits 0; SIGHUP reloads the key directory.
@main
struct Tokend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokend",
        abstract: "Token security daemon: introspection, revocation and refresh rotation over a Unix socket.",
        discussion: """
            Every option has an environment variable (shown in brackets); an option given on the \
            command line wins. systemd/tokend.env documents them all with their defaults.
            """,
        version: "0.1.0"
    )

    @Option(help: "API socket path [TOKEND_SOCKET] (default ./run/tokend.sock)")
    var socket: String?
    @Option(
        name: .customLong("admin-socket"),
        help: "Admin socket path [TOKEND_ADMIN_SOCKET] (default ./run/tokend-admin.sock)"
    )
    var adminSocket: String?
    @Option(help: "Optional TCP listener HOST:PORT [TOKEND_LISTEN] (default off)")
    var listen: String?
    @Option(help: "Store: sqlite:PATH or postgres://USER@HOST:PORT/DB [TOKEND_STORE] (default sqlite:./var/tokend.db)")
    var store: String?
    @Option(
        name: .customLong("rekey-to"),
        help: "Re-seal every key of the PostgreSQL keyring under the KEK in this file, then exit (no daemon)"
    )
    var rekeyTo: String?
    @Option(name: .customLong("keys-dir"), help: "Key directory [TOKEND_KEYS_DIR] (default ./keys)")
    var keysDir: String?
    @Option(name: .customLong("signing-alg"), help: "Algorithm of new keys [TOKEND_SIGNING_ALG] (default ES256)")
    var signingAlg: String?
    @Option(help: "Token issuer [TOKEND_ISSUER] (default tokend)")
    var issuer: String?
    @Option(help: "Token audience [TOKEND_AUDIENCE] (default none)")
    var audience: String?
    @Option(name: .customLong("access-policy"), help: "Access token lifetime [TOKEND_ACCESS_POLICY] (default 1h)")
    var accessPolicy: String?
    @Option(name: .customLong("refresh-policy"), help: "Refresh family lifetime [TOKEND_REFRESH_POLICY] (default 30d)")
    var refreshPolicy: String?
    @Option(name: .customLong("refresh-grace"), help: "Refresh retry window [TOKEND_REFRESH_GRACE] (default 10s)")
    var refreshGrace: String?
    @Option(name: .customLong("key-rotation"), help: "Scheduled rotation [TOKEND_KEY_ROTATION] (default off)")
    var keyRotation: String?
    @Option(name: .customLong("jwks-max-age"), help: "JWKS cache max-age [TOKEND_JWKS_MAX_AGE] (default 300s)")
    var jwksMaxAge: String?
    @Option(help: "Clock skew tolerated [TOKEND_LEEWAY] (default 30s)")
    var leeway: String?
    @Option(
        name: .customLong("event-retention"),
        help: "How long events are kept [TOKEND_EVENT_RETENTION] (default 3d)"
    )
    var eventRetention: String?
    @Option(
        name: .customLong("max-staleness"),
        help:
            "PostgreSQL: token checks 503 once behind the fleet this long, 0 never [TOKEND_MAX_STALENESS] (default 30s)"
    )
    var maxStaleness: String?
    @Option(name: .customLong("log-level"), help: "Log level [TOKEND_LOG_LEVEL] (default info)")
    var logLevel: String?
    @Option(
        name: .customLong("trusted-proxies"),
        help:
            "Whose X-Real-IP/X-Forwarded-For to believe: uid:N, unix, IPs, CIDRs [TOKEND_TRUSTED_PROXIES] (default none)"
    )
    var trustedProxies: String?

    /// Flags laid over the environment.
    func settings() -> [String: String] {
        var merged: [String: String] = [:]
        var index = 0
        while let entry = environ[index] {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                merged[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            index += 1
        }
        let flags: [(String, String?)] = [
            ("TOKEND_SOCKET", socket), ("TOKEND_ADMIN_SOCKET", adminSocket), ("TOKEND_LISTEN", listen),
            ("TOKEND_STORE", store), ("TOKEND_KEYS_DIR", keysDir), ("TOKEND_SIGNING_ALG", signingAlg),
            ("TOKEND_ISSUER", issuer), ("TOKEND_AUDIENCE", audience), ("TOKEND_ACCESS_POLICY", accessPolicy),
            ("TOKEND_REFRESH_POLICY", refreshPolicy), ("TOKEND_REFRESH_GRACE", refreshGrace),
            ("TOKEND_KEY_ROTATION", keyRotation), ("TOKEND_JWKS_MAX_AGE", jwksMaxAge), ("TOKEND_LEEWAY", leeway),
            ("TOKEND_LOG_LEVEL", logLevel), ("TOKEND_EVENT_RETENTION", eventRetention),
            ("TOKEND_TRUSTED_PROXIES", trustedProxies), ("TOKEND_MAX_STALENESS", maxStaleness),
        ]
        for (name, value) in flags { if let value { merged[name] = value } }
        return merged
    }

    func run() async throws {
        let config: TokendConfiguration
        do {
            config = try TokendConfiguration(settings())
        } catch {
            Tokend.fail("tokend: invalid configuration:\n\(error)", code: 78)
        }
        SystemdLogging.bootstrap(label: "tokend", level: config.logLevel)
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(DescribedMetricsFactory(registry: registry, help: MetricsExposition.help))
        let logger = Logger(label: "tokend")
        let notifier = SystemdNotifier.fromEnvironment(logger: logger)
        do {
            if let rekeyTo {
                try await Daemon.rekey(to: rekeyTo, config: config, logger: logger)
                return
            }
            try await Daemon(config: config, registry: registry, notifier: notifier, logger: logger).run()
        } catch let error as StartFailure {
            logger.critical("tokend cannot start", metadata: ["reason": "\(error.description)"])
            _ = notifier.status("failed: \(error.description)")
            Tokend.fail("tokend: \(error.description)", code: 1)
        }
    }

    static func fail(_ message: String, code: Int32) -> Never {
        var text = message
        if !text.hasSuffix("\n") { text += "\n" }
        fflush(nil)
        text.withCString { pointer in _ = write(2, pointer, strlen(pointer)) }
        Glibc.exit(code)
    }
}

/// A start-up failure with a message for the operator.
struct StartFailure: Error, CustomStringConvertible {
    let description: String
}

/// Wires the pieces together and runs them until SIGTERM.
struct Daemon {
    /// One event loop per CPU the daemon may run on (systemd's CPUAffinity=, taskset), shared
    /// by the HTTP listeners and the PostgreSQL store's connections: a refresh handled on a
    /// loop whose connection to PostgreSQL is on the same loop crosses no thread. They live as
    /// long as the process.
    static let eventLoops = MultiThreadedEventLoopGroup(numberOfThreads: CPUAffinity.allowedCount)

    static func openPostgres(
        _ location: PostgresLocation,
        password: TokendConfiguration.Secret?,
        config: TokendConfiguration,
        logger: Logger
    ) async throws -> PostgresTokenStore {
        do {
            return try await PostgresTokenStore.open(
                location: location,
                password: password?.value,
                logger: logger,
                eventRetention: config.eventRetention,
                operationTimeout: config.storeTimeout,
                maximumConnections: config.storeMaxConnections,
                jwksMaxAge: config.service.jwksMaxAge,
                eventLoopGroup: eventLoops
            )
        } catch {
            throw StartFailure(description: "cannot open the store TOKEND_STORE=\(location): \(error)")
        }
    }

    /// `tokend --rekey-to FILE`: re-seals every private key of the PostgreSQL keyring under the
    /// KEK in FILE, in one transaction, then exits (the daemon does not start).
    static func rekey(to file: String, config: TokendConfiguration, logger: Logger) async throws {
        guard case .postgres(let location, let password, let keys) = config.store else {
            throw StartFailure(
                description: "--rekey-to re-seals the keys of the PostgreSQL store; with sqlite the keys are files "
                    + "in the key directory (TOKEND_KEYS_DIR), protected by their mode"
            )
        }
        let newKEK: KeyEncryptionKey
        do {
            newKEK = try KeyEncryptionKey.load(
                file: file,
                credentialsDirectory: ProcessInfo.processInfo.environment["CREDENTIALS_DIRECTORY"]
            )
        } catch {
            throw StartFailure(description: "--rekey-to \(file): \(error)")
        }
        let store = try await openPostgres(location, password: password, config: config, logger: logger)
        let storage = PostgresKeyringStorage(
            store: store,
            kek: keys.current,
            previousKEKs: keys.previous.map { [$0] } ?? []
        )
        do {
            let count = try await storage.rekey(to: newKEK)
            try await store.appendEvent(
                kind: "keys_resealed",
                subject: nil,
                detail: "keys=\(count) from=\(keys.current.fingerprint) to=\(newKEK.fingerprint)",
                at: Date().timeIntervalSince1970
            )
            try? await store.close()
            print(
                """
                re-sealed \(count) signing keys under KEK \(newKEK.fingerprint), opening them with KEK \(keys.current.fingerprint)\
                \(keys.previous.map { " or \($0.fingerprint)" } ?? "").
                Every node must open keys sealed under the new KEK before it next loads the keyring (README,
                "Rekeying the KEK"): once every node runs with it as TOKEND_KEY_ENCRYPTION_KEY_FILE (credential kek),
                remove the old KEK everywhere and destroy it.
                """
            )
        } catch {
            try? await store.close()
            throw StartFailure(description: "cannot re-seal the keyring: \(error)")
        }
    }

    let config: TokendConfiguration
    let registry: PrometheusCollectorRegistry
    let notifier: SystemdNotifier
    let logger: Logger

    func run() async throws {
        let activated: [ActivatedSocket]
        do {
            activated = try SocketActivation.listenedSockets()
        } catch {
            throw StartFailure(description: "socket activation: \(error)")
        }
        // Before anything is opened or generated: the directories of the sockets bound here
        // (systemd's own sockets are its business), and no tokend serving them already (this
        // one would otherwise open, and migrate, the store under it, then fail to bind).
        for path in socketPathsToBind(activated) {
            if let problem = HTTPServer.socketDirectoryProblem(of: path) ?? HTTPServer.socketInUseProblem(of: path) {
                throw StartFailure(description: problem)
            }
        }
        let store: any TokenStore
        let keyStorage: any KeyringStorage
        let keysWhere: String
        var listener: PostgresEventListener?
        switch config.store {
        case .sqlite(let path):
            // A migration that rebuilds a table of a large database can outlast systemd's
            // start timeout (60 s in the unit): while one runs, ask for more time every 10 s
            // and say what is going on, rather than be killed and start it over.
            let keepAlive = Mutex<Task<Void, Never>?>(nil)
            defer { keepAlive.withLock { $0?.cancel() } }
            let notifier = notifier
            do {
                store = try await SQLiteTokenStore.open(
                    path: path,
                    logger: logger,
                    eventRetention: config.eventRetention
                ) { pending in
                    notifier.status("migrating the token database to \(pending.last ?? "")")
                    let task = Task {
                        while !Task.isCancelled {
                            notifier.extendTimeout(by: .seconds(30))
                            try? await Task.sleep(for: .seconds(10))
                        }
                    }
                    keepAlive.withLock { $0 = task }
                }
            } catch {
                throw StartFailure(description: "cannot open the store sqlite:\(path): \(error)")
            }
            keyStorage = KeyDirectory(path: config.keysDirectory)
            keysWhere = "the key directory \(config.keysDirectory)"
        case .postgres(let location, let password, let keys):
            let postgres = try await Self.openPostgres(location, password: password, config: config, logger: logger)
            store = postgres
            keyStorage = PostgresKeyringStorage(
                store: postgres,
                kek: keys.current,
                previousKEKs: keys.previous.map { [$0] } ?? []
            )
            keysWhere = "the keyring in \(location) (KEK \(keys.current.fingerprint))"
            listener = PostgresEventListener(store: postgres)
        }
        let follows = listener != nil
        ECDSANoncePrecomputation.isEnabled = config.ecdsaPrecompute
        let keyring: Keyring
        do {
            keyring = try await Keyring(
                storage: keyStorage,
                configuration: config.service,
                clock: .system,
                logger: logger
            )
        } catch {
            try? await store.close()
            throw StartFailure(description: "cannot load \(keysWhere): \(error)")
        }
        // On a fleet, rotation waits until every node publishes the next key (issue 12 item 5).
        if let registry = store as? any FleetRegistry { await keyring.follow(fleet: registry) }
        let users = store as? any UserStore
        let service = try await TokenService.start(
            configuration: config.service,
            store: store,
            keyring: keyring,
            refreshCustomizer: users.map { AccountRefresh(users: $0) },
            version: Tokend.configuration.version,
            logger: logger
        )
        var accountRoutes: AccountRoutes?
        // Services that must outlive the server: they stop after it, in reverse order.
        var accountServices: [any Service] = []
        if let users {
            let hasher: PasswordHasher
            do {
                var hashing = PasswordHasher.Configuration(queueCapacity: config.hashQueue)
                hashing.workers = config.hashWorkers ?? CPUAffinity.allowedCount
                hasher = try PasswordHasher(hashing)
            } catch {
                throw StartFailure(description: "cannot start the password hashing pool: \(error)")
            }
            let accounts = AccountService(
                users: users,
                tokens: service,
                hasher: hasher,
                configuration: config.accounts,
                sharedLimits: store as? any SharedRateWindows,
                logger: logger
            )
            accountRoutes = AccountRoutes(accounts: accounts, trustedProxies: config.trustedProxies, logger: logger)
            // Last sign-in times are written once the hashing pool has finished its last job.
            accountServices = [accounts.pendingSignInTimes, hasher]
        }
        let routes = TokenRoutes(service: service, registry: registry, accounts: accountRoutes, logger: logger)

        let listeners = try makeListeners(routes, activated: activated)
        let notifier = self.notifier
        let logger = self.logger
        let trustedProxies = config.trustedProxies
        var serverConfiguration = HTTPServerConfiguration()
        serverConfiguration.errorRenderer = { error, path in AccountRoutes.renderError(error, path: path) }
        serverConfiguration.eventLoopGroup = Self.eventLoops
        serverConfiguration.headerTimeout = config.headerTimeout
        serverConfiguration.bodyTimeout = config.bodyTimeout
        serverConfiguration.maxConnections = config.maxConnections
        raiseDescriptorLimit(for: listeners)
        let server = HTTPServer(
            listeners: listeners,
            configuration: serverConfiguration,
            logger: logger,
            onReady: {
                _ = notifier.ready(status: service.statusLine)
                logger.notice(
                    "tokend is ready",
                    metadata: [
                        "listeners": "\(listeners.map { "\($0.kind.rawValue)=\($0.address)" }.joined(separator: " "))",
                        "trusted_proxies": "\(trustedProxies)",
                    ]
                )
            }
        )
        let maintenance = MaintenanceService(service: service, notifier: notifier, logger: logger)
        let reload = ReloadService(service: service, notifier: notifier, logger: logger)
        // Services stop in reverse order. The watchdog goes first, so it pings while the others
        // drain; then the account services, which stop only once the server has stopped taking
        // requests: the hashing pool finishes its queue, then the pending sign-in times are
        // written (the store closes after the group). The stopping notice goes last, so it is
        // told first and sends STOPPING=1 at once.
        var services: [any Service] = []
        if notifier.watchdogInterval != nil { services.append(WatchdogService(notifier: notifier)) }
        services += accountServices
        if follows {
            let listener = config.fleetNotify ? listener : nil
            services.append(FollowerService(service: service, listener: listener, logger: logger))
        }
        if let fleet = service.fleet {
            services.append(HeartbeatService(node: fleet, service: service, logger: logger))
        }
        services += [server, maintenance, reload, StoppingNotifier(notifier: notifier)] as [any Service]
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services.map {
                    // The stopping notice ends right after it is sent; that must not cancel the drain.
                    $0 is StoppingNotifier
                        ? ServiceGroupConfiguration.ServiceConfiguration(
                            service: $0,
                            successTerminationBehavior: .ignore
                        )
                        : ServiceGroupConfiguration.ServiceConfiguration(service: $0)
                },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
        try? await store.close()
        logger.notice("tokend stopped")
    }

    /// Connection caps are only worth their name while descriptors remain: at the soft
    /// `RLIMIT_NOFILE` (often 1024) `accept` fails on every listener, the admin socket's
    /// included. The soft limit is raised to the hard one (systemd's advice for daemons), and a
    /// limit still below the caps is logged.
    func raiseDescriptorLimit(for listeners: [HTTPListener]) {
        var limit = rlimit()
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        guard getrlimit(resource, &limit) == 0 else { return }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(resource, &raised) == 0 { limit = raised }
        }
        let caps = listeners.reduce(0) { $0 + ($1.maxConnections ?? config.maxConnections) }
        // Room for the store, the key directory, the journal and the listeners themselves.
        let needed = caps + 64
        if limit.rlim_cur != rlim_t.max, limit.rlim_cur < rlim_t(needed) {
            logger.warning(
                "the open file limit is below the connection caps; the admin socket may not accept when it is reached",
                metadata: [
                    "limit": "\(limit.rlim_cur)", "connection_caps": "\(caps)",
                    "fix": "raise LimitNOFILE= (ulimit -n) to at least \(needed), or lower TOKEND_MAX_CONNECTIONS",
                ]
            )
        }
    }

    /// The Unix socket paths tokend binds itself: both without socket activation, the admin
    /// socket when systemd passes only the API one.
    func socketPathsToBind(_ activated: [ActivatedSocket]) -> [String] {
        if activated.isEmpty { return [config.socketPath, config.adminSocketPath] }
        return activated.contains(where: { $0.name == "admin" }) ? [] : [config.adminSocketPath]
    }

    /// Socket-activated fds named `api` and `admin` when systemd passes them, else the
    /// configured paths; plus the optional TCP listener.
    func makeListeners(_ routes: TokenRoutes, activated: [ActivatedSocket]) throws -> [HTTPListener] {
        var listeners: [HTTPListener] = []
        if activated.isEmpty {
            listeners.append(
                HTTPListener(address: .unixPath(config.socketPath, mode: 0o660), kind: .api, router: routes.apiRouter())
            )
            listeners.append(
                HTTPListener(
                    address: .unixPath(config.adminSocketPath, mode: 0o600),
                    kind: .admin,
                    router: routes.adminRouter(),
                    maxConnections: config.adminMaxConnections
                )
            )
        } else {
            for socket in activated {
                switch socket.name {
                case "api", "tokend":
                    listeners.append(
                        HTTPListener(address: .descriptor(socket.fd), kind: .api, router: routes.apiRouter())
                    )
                case "admin":
                    listeners.append(
                        HTTPListener(
                            address: .descriptor(socket.fd),
                            kind: .admin,
                            router: routes.adminRouter(),
                            maxConnections: config.adminMaxConnections
                        )
                    )
                default:
                    throw StartFailure(
                        description:
                            "socket activation passed an fd named \(socket.name); expected api or admin (FileDescriptorName=)"
                    )
                }
            }
            if !activated.contains(where: { $0.name == "admin" }) {
                listeners.append(
                    HTTPListener(
                        address: .unixPath(config.adminSocketPath, mode: 0o600),
                        kind: .admin,
                        router: routes.adminRouter(),
                        maxConnections: config.adminMaxConnections
                    )
                )
            }
        }
        if let (host, port) = config.listen {
            listeners.append(
                HTTPListener(address: .tcp(host: host, port: port), kind: .tcp, router: routes.apiRouter())
            )
        }
        return listeners
    }
}

/// Key retirement, scheduled rotation, compaction and health, once a minute (health every 5 s).
struct MaintenanceService: Service {
    let service: TokenService
    let notifier: SystemdNotifier
    let logger: Logger

    func run() async throws {
        var tick = 0
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(5)) }
            } catch { return }
            if Task.isShuttingDownGracefully { return }
            tick += 1
            _ = await service.health()
            _ = notifier.status(service.statusLine)
            guard tick % 12 == 0 else { continue }
            do {
                if let summary = try await service.maintainKeys() {
                    logger.notice("key maintenance", metadata: ["change": "\(summary)"])
                }
                _ = try await service.compact()
            } catch {
                logger.error("maintenance failed", metadata: ["error": "\(error)"])
            }
        }
    }
}

/// A node of a fleet follows the shared store's event log (DESIGN §10): it reads from its
/// cursor whenever another node's change is notified, once its LISTEN connection is (back) in
/// place, and at least once a second whatever the notifications do; and it says when it falls
/// behind beyond `TOKEND_MAX_STALENESS` and when it has caught up again.
struct FollowerService: Service {
    let service: TokenService
    /// Nil when TOKEND_FLEET_NOTIFY=0: then only the read every second brings changes.
    let listener: PostgresEventListener?
    let logger: Logger
    /// The longest time between two reads from the cursor.
    static let interval = Duration.seconds(1)

    func run() async throws {
        // One pending wake-up is enough: a read sees everything committed before it began.
        let (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        await withTaskGroup(of: Void.self) { group in
            if let listener { group.addTask { await listener.run { _ in wake.yield() } } }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: Self.interval)
                    wake.yield()
                }
            }
            var failing: String?
            for await _ in wakes.cancelOnGracefulShutdown() {
                do {
                    let before = service.follower?.position
                    try await service.catchUp()
                    failing = nil
                    // `--wait` learns from the heartbeat that this node applied a change: at once.
                    if service.follower?.position != before { service.fleet?.poke() }
                } catch {
                    // The store logs its own failures once; say here only what the follower met.
                    let reason = "\(error)"
                    if failing != reason {
                        logger.debug("cannot catch up with the fleet yet", metadata: ["reason": "\(reason)"])
                        failing = reason
                    }
                }
                service.noteFreshness()
            }
            group.cancelAll()
        }
    }
}

/// A node of a fleet writes its row about once a second (issue 12 item 3): id, host, pid,
/// version, applied cursor, clock offset and the keys it publishes; `tokenctl fleet` lists the
/// rows, `--wait` and key rotation read them.
struct HeartbeatService: Service {
    let node: FleetNode
    let service: TokenService
    let logger: Logger

    func run() async throws {
        logger.info("this node joins the fleet", metadata: ["node": "\(node.id)", "host": "\(node.host)"])
        await withGracefulShutdownHandler {
            await node.run(service: service, logger: logger)
        } onGracefulShutdown: {
            node.stop()
        }
    }
}

/// SIGHUP: RELOADING=1, re-read the key directory, READY=1.
struct ReloadService: Service {
    let service: TokenService
    let notifier: SystemdNotifier
    let logger: Logger

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals.cancelOnGracefulShutdown() {
            _ = notifier.reloading(status: "reloading the keyring")
            do {
                try await service.reloadKeys()
                logger.notice(
                    "keyring reloaded",
                    metadata: ["current_kid": "\(service.keyring.snapshot.signer.kid ?? "-")"]
                )
            } catch {
                logger.error("reload failed; keeping the previous keys", metadata: ["error": "\(error)"])
            }
            // STATUS= says whether the last reload failed (statusLine), until one succeeds.
            _ = notifier.ready(status: service.statusLine)
        }
    }
}

/// Sends STOPPING=1 as soon as the group starts shutting down (SIGTERM), before the server
/// drains.
struct StoppingNotifier: Service {
    let notifier: SystemdNotifier

    func run() async throws {
        try? await gracefulShutdown()
        _ = notifier.stopping(status: "draining in-flight requests")
    }
}
