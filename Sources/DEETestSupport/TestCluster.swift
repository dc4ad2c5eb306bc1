import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A Redis Cluster of the test process's own: six `redis-server --cluster-enabled yes` on free 127.0.0.1 ports
/// (three masters, one replica each), made a cluster by `redis-cli --cluster create`, in a temp directory.
///
/// ``shared()`` starts one per test process, on first use (2–5 s); a watchdog kills every server, and removes the
/// directory, once the test process is gone, as for ``TestRedis``. Nodes may be killed (`kill -9`) and started again
/// on their port and `nodes-<port>.conf`, after which they rejoin (as replicas, when a failover replaced them).
///
/// The node timeout is 2 s (`cluster-node-timeout 2000`), so that an automatic failover takes about 4 s rather than
/// the default's 16.
public final class TestCluster: @unchecked Sendable {
    /// The client ports of the six nodes, in the order given to `redis-cli --cluster create` (which makes the first
    /// three masters).
    public let ports: [UInt16]
    /// The cluster bus port of each node (the default, port + 10000, may be above 65535 for an ephemeral port).
    public let busPorts: [UInt16]
    public let directory: URL
    public static let nodeTimeoutMilliseconds = 2000
    private let server: String
    private let cli: String
    private let lock = NSLock()
    // Guarded by `lock`.
    private var processes: [UInt16: Process] = [:]

    /// The shared cluster of this test process, started on first use.
    public static func shared() throws -> TestCluster {
        try sharedCluster.get()
    }

    private static let sharedCluster: Result<TestCluster, TestRedisError> = Result { () throws(TestRedisError) in
        try started()
    }

    /// A new cluster, tried up to `attempts` times on fresh ports: a port found free can be taken by another test's
    /// server before this one binds it (the node then exits at once).
    public static func started(attempts: Int = 3) throws(TestRedisError) -> TestCluster {
        var last = TestRedisError(description: "no attempt to start a test cluster")
        for _ in 0..<max(1, attempts) {
            do {
                return try TestCluster()
            } catch {
                last = error
            }
        }
        throw last
    }

    /// Starts six nodes and makes them a cluster; returns once every node says `cluster_state:ok`.
    public init(startupTimeout: TimeInterval = 30) throws(TestRedisError) {
        guard let server = TestRedis.findExecutable("redis-server"), let cli = TestRedis.findExecutable("redis-cli")
        else {
            throw TestRedisError(
                description: "redis-server and redis-cli must be on PATH for the cluster tests "
                    + "(Debian: apt-get install -y redis-server redis-tools)")
        }
        self.server = server
        self.cli = cli
        var taken: Set<UInt16> = []
        var all: [UInt16] = []
        while all.count < 12 {
            let port = try TestRedis.freeLoopbackPort()
            if taken.insert(port).inserted { all.append(port) }
        }
        ports = Array(all[0..<6])
        busPorts = Array(all[6..<12])
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "dee-test-cluster-\(ProcessInfo.processInfo.processIdentifier)-\(TestRedis.uniquePrefix())")
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw TestRedisError(description: "could not create \(directory.path): \(error)")
        }
        do {
            for port in ports { try start(port: port) }
            startWatchdog()
            let deadline = Date().addingTimeInterval(startupTimeout)
            for port in ports { try waitUntilAnswering(port, deadline: deadline) }
            let create = try runCLI(
                ["--cluster", "create"] + ports.map { "127.0.0.1:\($0)" } + [
                    "--cluster-replicas", "1", "--cluster-yes",
                ],
                timeout: startupTimeout)
            guard create.status == 0, create.output.contains("All 16384 slots covered") else {
                throw TestRedisError(description: "redis-cli --cluster create failed:\n\(create.output.suffix(3000))")
            }
            try waitUntilHealthy(timeout: max(1, deadline.timeIntervalSinceNow))
        } catch let error as TestRedisError {
            stop()
            throw error
        } catch {
            stop()
            throw TestRedisError(description: "\(error)")
        }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    /// A URL of one node, with `?cluster=1`.
    public var url: String { "redis://127.0.0.1:\(ports[0])?cluster=1" }

    /// Whether the node on `port` is running (as far as this process knows).
    public func isRunning(_ port: UInt16) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return processes[port]?.isRunning ?? false
    }

    /// `kill -9` of one node.
    public func killNode(_ port: UInt16) {
        lock.lock()
        let process = processes[port]
        lock.unlock()
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Starts a node again on its port and its `nodes-<port>.conf` (it rejoins the cluster), and waits until it
    /// answers.
    public func restart(_ port: UInt16, timeout: TimeInterval = 20) throws(TestRedisError) {
        guard !isRunning(port) else { return }
        try start(port: port)
        startWatchdog()
        try waitUntilAnswering(port, deadline: Date().addingTimeInterval(timeout))
    }

    /// Waits (bounded) until every running node says `cluster_state:ok`, knows all six nodes, sees every slot
    /// assigned, agrees with the others on who serves which slot and who replicates whom, and every replica's link to
    /// its master is up. (A replica whose view of its master's slots is behind is refused votes in a failover.)
    public func waitUntilHealthy(timeout: TimeInterval = 30) throws(TestRedisError) {
        let deadline = Date().addingTimeInterval(timeout)
        var last = ""
        while Date() < deadline {
            var healthy = true
            var views: Set<String> = []
            for port in ports where isRunning(port) {
                let info = (try? runCLI(["-p", String(port), "CLUSTER", "INFO"], timeout: 5).output) ?? ""
                let replication = (try? runCLI(["-p", String(port), "INFO", "replication"], timeout: 5).output) ?? ""
                let nodes = (try? runCLI(["-p", String(port), "CLUSTER", "NODES"], timeout: 5).output) ?? ""
                let linkDown = replication.contains("role:slave") && !replication.contains("master_link_status:up")
                if !info.contains("cluster_state:ok") || !info.contains("cluster_slots_ok:16384")
                    || !info.contains("cluster_known_nodes:6") || linkDown
                {
                    healthy = false
                    last = "node \(port):\n\(info)\n\(replication)"
                    break
                }
                views.insert(Self.configuration(nodes))
            }
            if healthy, views.count == 1 { return }
            if healthy { last = "the nodes disagree on the configuration:\n" + views.joined(separator: "\n--\n") }
            usleep(100_000)
        }
        throw TestRedisError(description: "the test cluster did not become healthy within \(Int(timeout)) s; \(last)")
    }

    /// A node's `CLUSTER NODES` reduced to what every node should agree on: each node's id, role, master and slots
    /// (without the `myself` flag, link states, pings, and the `[slot->-id]` markers of a migration).
    static func configuration(_ clusterNodes: String) -> String {
        clusterNodes.split(whereSeparator: \.isNewline).compactMap { line -> String? in
            let fields = line.split(separator: " ")
            guard fields.count >= 8 else { return nil }
            let role = fields[2].contains("master") ? "master" : "replica"
            let slots = fields.dropFirst(8).filter { !$0.hasPrefix("[") }.joined(separator: ",")
            return "\(fields[0]) \(role) \(fields[3]) \(slots)"
        }.sorted().joined(separator: "\n")
    }

    /// Runs `redis-cli -p port args…` and returns its output (for tests that drive the cluster as an operator).
    public func cli(_ port: UInt16, _ arguments: [String], timeout: TimeInterval = 10) throws(TestRedisError) -> String
    {
        try runCLI(["-p", String(port)] + arguments, timeout: timeout).output
    }

    /// The end of a node's log (for a failing test to show why).
    public func log(_ port: UInt16, lastCharacters: Int = 3000) -> String {
        let path = directory.appendingPathComponent("redis-\(port).out")
        return String(((try? String(contentsOf: path, encoding: .utf8)) ?? "").suffix(lastCharacters))
    }

    /// Kills every node (SIGKILL: they keep nothing worth a graceful shutdown).
    public func stop() {
        for port in ports { killNode(port) }
    }

    // MARK: - Private

    private func start(port: UInt16) throws(TestRedisError) {
        guard let index = ports.firstIndex(of: port) else {
            throw TestRedisError(description: "port \(port) is not a node of this test cluster")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: server)
        process.arguments = [
            "--cluster-enabled", "yes", "--cluster-config-file",
            directory.appendingPathComponent("nodes-\(port).conf").path,
            "--port", String(port), "--cluster-port", String(busPorts[index]), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", directory.path, "--daemonize", "no",
            "--cluster-node-timeout", String(Self.nodeTimeoutMilliseconds),
            // A replica's first sync starts at once, not after the default 5 s wait for other replicas.
            "--repl-diskless-sync-delay", "0",
        ]
        process.standardInput = FileHandle.nullDevice
        let outputPath = directory.appendingPathComponent("redis-\(port).out").path
        if !FileManager.default.fileExists(atPath: outputPath) {
            _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        }
        let output = FileHandle(forWritingAtPath: outputPath) ?? FileHandle.nullDevice
        output.seekToEndOfFile()
        process.standardOutput = output
        process.standardError = output
        do {
            try process.run()
        } catch {
            throw TestRedisError(description: "could not start \(server) on port \(port): \(error)")
        }
        lock.lock()
        processes[port] = process
        lock.unlock()
    }

    /// A watchdog shell that kills the nodes started so far (checking each pid still names a redis-server) and
    /// removes the directory once the test process is gone. It never waits on them: see ``TestRedis``.
    private func startWatchdog() {
        lock.lock()
        let pids = processes.values.filter(\.isRunning).map { String($0.processIdentifier) }
        lock.unlock()
        let watchdog = Process()
        watchdog.executableURL = URL(fileURLWithPath: "/bin/sh")
        watchdog.arguments =
            [
                "-c",
                """
                parent="$1"; dir="$2"; shift 2
                while kill -0 "$parent" 2>/dev/null; do sleep 1; done
                for pid in "$@"; do
                    [ "$(cat /proc/$pid/comm 2>/dev/null)" = redis-server ] && kill -KILL "$pid" 2>/dev/null
                done
                rm -rf "$dir"
                exit 0
                """,
                "dee-test-cluster-watchdog", String(ProcessInfo.processInfo.processIdentifier), directory.path,
            ] + pids
        watchdog.standardInput = FileHandle.nullDevice
        watchdog.standardOutput = FileHandle.nullDevice
        watchdog.standardError = FileHandle.nullDevice
        try? watchdog.run()
    }

    private func waitUntilAnswering(_ port: UInt16, deadline: Date) throws(TestRedisError) {
        while Date() < deadline {
            guard isRunning(port) else {
                let log =
                    (try? String(contentsOf: directory.appendingPathComponent("redis-\(port).out"), encoding: .utf8))
                throw TestRedisError(description: "redis-server on port \(port) exited:\n\((log ?? "").suffix(2000))")
            }
            if let reply = TestRedis.query(port: port, "PING\r\n"), reply.hasPrefix("+PONG") { return }
            usleep(50_000)
        }
        throw TestRedisError(description: "redis-server on port \(port) did not answer in time")
    }

    /// Runs redis-cli, bounded by `timeout` (then terminated).
    private func runCLI(_ arguments: [String], timeout: TimeInterval) throws(TestRedisError) -> (
        status: Int32, output: String
    ) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: cli)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        let outputPath = directory.appendingPathComponent("cli-\(TestRedis.uniquePrefix()).out")
        _ = FileManager.default.createFile(atPath: outputPath.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: outputPath) }
        guard let output = FileHandle(forWritingAtPath: outputPath.path) else {
            throw TestRedisError(description: "could not write \(outputPath.path)")
        }
        defer { try? output.close() }
        process.standardOutput = output
        process.standardError = output
        do {
            try process.run()
        } catch {
            throw TestRedisError(description: "could not run \(cli): \(error)")
        }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            throw TestRedisError(
                description: "redis-cli \(arguments.joined(separator: " ")) took over \(Int(timeout)) s")
        }
        let text = (try? String(contentsOf: outputPath, encoding: .utf8)) ?? ""
        return (process.terminationStatus, text)
    }
}
